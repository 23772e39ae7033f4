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
# Graphviz's dot reads `cicd dry-run --format dot` in a test (skipped without it): installed
# where this may install Debian packages (root), as in CI
if [ "$(id -u)" -eq 0 ] && ! command -v dot >/dev/null; then
    (CICD_SCRIPT_NAME=test; source scripts/lib.sh; apt_ensure graphviz)
fi
.venv/bin/pytest -q "$@"
.venv/bin/ruff check .
.venv/bin/mypy backend cicd_cli flows
