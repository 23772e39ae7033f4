#!/usr/bin/env bash
# The README's test command (CI runs it too): set up (venv, Docker engine, local images,
# PostgreSQL), then run the whole test suite, the linter and the type checker (mypy, configured
# in pyproject.toml). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# setup.sh prints only KEY=VALUE lines on stdout (progress goes to stderr); anything else is a bug.
envs=$(scripts/setup.sh --postgres)
while IFS= read -r line; do
    case "$line" in
        "") ;;
        [A-Za-z_]*=*) export "${line?}" ;;
        *) echo "test: error: unexpected line from scripts/setup.sh: $line" >&2; exit 1 ;;
    esac
done <<<"$envs"
.venv/bin/pytest -q "$@"
.venv/bin/ruff check .
.venv/bin/mypy backend cicd_cli flows
