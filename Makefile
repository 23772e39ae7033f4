# Quick start: `make demo` runs the example pipeline, `make test` runs the whole test suite.
# Both prepare the machine first (scripts/setup.sh: virtualenv, Docker engine, local images).

SHELL := /bin/bash
BIN := $(CURDIR)/.venv/bin
PIPELINE := $(CURDIR)/examples/python-project/.pipelines/pipeline.yaml

.PHONY: setup demo test lint

setup:
	@scripts/setup.sh

# The example lives in this repository: its jobs run in a checkout of the repository's HEAD.
demo: setup
	$(BIN)/cicd check -f $(PIPELINE)
	$(BIN)/cicd dry-run -f $(PIPELINE)
	$(BIN)/cicd run -f $(PIPELINE)

# The store tests also run against PostgreSQL: setup prints CICD_TEST_POSTGRES_URL=... for env.
test:
	@set -e; envs=$$(scripts/setup.sh --postgres); \
	echo "env $$envs .venv/bin/pytest -q"; env $$envs $(BIN)/pytest -q; \
	$(MAKE) --no-print-directory lint

lint:
	@scripts/setup.sh --venv-only
	$(BIN)/ruff check .
