#!/usr/bin/env bash
# Make sure a Docker engine answers: install Debian's docker.io and start dockerd when needed.
# Idempotent: returns at once when `docker info` already answers.
set -euo pipefail
CICD_SCRIPT_NAME=engine
. "$(dirname "$0")/lib.sh"

DOCKERD_LOG=${CICD_DOCKERD_LOG:-/var/log/cicd-dockerd.log}
WAIT_SECONDS=${CICD_DOCKERD_WAIT:-60}

engine_answers() { docker info >/dev/null 2>&1; }

if command -v docker >/dev/null 2>&1 && engine_answers; then
    step "docker engine running (${DOCKER_HOST:-unix:///var/run/docker.sock})"
    exit 0
fi

if [ -n "${DOCKER_HOST:-}" ] && [ "$DOCKER_HOST" != "unix:///var/run/docker.sock" ]; then
    die "no Docker engine answers at DOCKER_HOST=$DOCKER_HOST; start it, or unset DOCKER_HOST to use a local one"
fi
if ! is_root; then
    reason=$(docker info 2>&1 >/dev/null | grep -v '^$' | tail -n1 || true)
    die "no Docker engine answers (${reason:-docker not installed}); start dockerd as root, or run this script as root"
fi

apt_ensure docker.io

if ! pgrep -x dockerd >/dev/null; then
    # A killed daemon leaves its pid file behind and the next dockerd refuses to start.
    rm -f /var/run/docker.pid
    step "starting dockerd (log: $DOCKERD_LOG)"
    setsid nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
fi

for _ in $(seq $((WAIT_SECONDS * 4))); do
    if engine_answers; then
        step "docker engine running (unix:///var/run/docker.sock)"
        exit 0
    fi
    sleep 0.25
done
die "dockerd did not answer within ${WAIT_SECONDS}s; see the end of $DOCKERD_LOG"
