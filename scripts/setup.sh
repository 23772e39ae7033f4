#!/usr/bin/env bash
# Prepare this machine to run cicd, its demo and its tests. Idempotent and quick to re-run.
#
#   scripts/setup.sh [--postgres] [--no-images] [--venv-only]
#
# Steps: the virtualenv .venv (re-installs only when pyproject.toml changed), a running Docker
# engine (scripts/engine.sh), the local images (scripts/images.sh) and, with --postgres, a local
# PostgreSQL test database (scripts/postgres.sh); --venv-only stops after the virtualenv.
# Progress goes to stderr, one line per step; stdout carries only KEY=VALUE lines for the
# caller's environment, e.g.
#   env $(scripts/setup.sh --postgres) .venv/bin/pytest   (scripts/test.sh does this)
set -euo pipefail
CICD_SCRIPT_NAME=setup
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
repo=$(dirname "$here")

with_postgres=0
with_images=1
with_engine=1
for arg in "$@"; do
    case "$arg" in
        --postgres) with_postgres=1 ;;
        --no-images) with_images=0 ;;
        --venv-only) with_engine=0 with_images=0 ;;
        -h | --help) sed -n '2,12s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) die "unknown option '$arg' (try --help)" ;;
    esac
done

ensure_venv() {
    local venv="$repo/.venv" python=${PYTHON:-python3} stamp hash
    stamp="$venv/.cicd-pyproject.sha256"
    hash=$(sha256sum "$repo/pyproject.toml" | cut -d' ' -f1)
    if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$hash" ]; then
        step "venv .venv up to date"
        return
    fi
    if [ ! -x "$venv/bin/python" ]; then
        command -v "$python" >/dev/null || apt_ensure python3
        "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
            || die "$python is older than 3.11; set PYTHON to a newer interpreter"
        # Debian's python3 cannot create a virtualenv without python3-venv (ensurepip).
        "$python" -c 'import ensurepip' 2>/dev/null || apt_ensure python3-venv
        step "creating venv .venv"
        "$python" -m venv "$venv"
    fi
    step "installing cicd into .venv (pip install -e '.[dev]')"
    local log="$venv/pip-install.log"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$repo[dev]" >"$log" 2>&1 \
        || die "pip install failed; see $log"
    echo "$hash" >"$stamp"
}

ensure_venv
if [ "$with_engine" = 1 ]; then
    "$here/engine.sh" >&2
fi
if [ "$with_images" = 1 ]; then
    "$here/images.sh" >&2
fi
if [ "$with_postgres" = 1 ]; then
    "$here/postgres.sh"  # prints its KEY=VALUE line
fi
