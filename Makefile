# Shortcuts for the README's two commands (scripts/demo.sh, scripts/test.sh) and the linter.

.PHONY: setup demo test lint

setup:
	@scripts/setup.sh

demo:
	@scripts/demo.sh

test:
	@scripts/test.sh

lint:
	@scripts/setup.sh --venv-only >/dev/null
	.venv/bin/ruff check .
