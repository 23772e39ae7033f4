#!/usr/bin/env bash
# The README's demo command: set up (venv, Docker engine, local images), then check, plan and run
# the example pipeline. Safe to run again; set-up steps that are done are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
pipeline="$PWD/examples/python-project/.pipelines/pipeline.yaml"
# The example lives in this repository: its jobs run in a checkout of the repository's HEAD.
.venv/bin/cicd check -f "$pipeline"
.venv/bin/cicd dry-run -f "$pipeline"
.venv/bin/cicd run -f "$pipeline"
