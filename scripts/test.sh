#!/usr/bin/env bash
# The README's test command (CI runs it too): set up (venv, Docker engine, local images,
# PostgreSQL), then run the whole test suite and the linter. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
envs=$(scripts/setup.sh --postgres)
env $envs .venv/bin/pytest -q "$@"
.venv/bin/ruff check .
