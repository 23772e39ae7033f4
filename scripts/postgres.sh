#!/usr/bin/env bash
# Make sure a local PostgreSQL serves a `cicd_test` database for the PostgreSQL store tests.
# Installs Debian's postgresql when missing, starts its cluster, creates role and database once.
# Prints `CICD_TEST_POSTGRES_URL=<url>` on stdout (progress goes to stderr).
set -euo pipefail
CICD_SCRIPT_NAME=postgres
. "$(dirname "$0")/lib.sh"

NAME=cicd_test  # role, password and database

apt_ensure postgresql

# First cluster of the newest installed version: "VER NAME PORT STATUS OWNER DATADIR LOGFILE".
cluster=$(pg_lsclusters -h | sort -k1,1nr | head -n1)
if [ -z "$cluster" ]; then
    is_root || die "no PostgreSQL cluster exists; create one as root (pg_createcluster)"
    version=$(ls /usr/lib/postgresql | sort -n | tail -n1)
    step "creating cluster $version/main"
    pg_createcluster "$version" main >/dev/null
    cluster=$(pg_lsclusters -h | sort -k1,1nr | head -n1)
fi
read -r version cluster_name port status _ <<<"$cluster"

if [ "$status" != online ]; then
    is_root || die "PostgreSQL cluster $version/$cluster_name is $status; start it as root"
    step "starting cluster $version/$cluster_name"
    # pg_ctlcluster prints notices ("Removed stale pid file.") on stdout, which is ours for the URL.
    pg_ctlcluster "$version" "$cluster_name" start >&2
fi

psql_admin() { runuser -u postgres -- psql -p "$port" -v ON_ERROR_STOP=1 -tAq "$@"; }

if is_root; then
    if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$NAME'")" != 1 ]; then
        step "creating role $NAME"
        psql_admin -c "CREATE ROLE $NAME LOGIN CREATEDB PASSWORD '$NAME'" >&2
    fi
    if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$NAME'")" != 1 ]; then
        step "creating database $NAME"
        psql_admin -c "CREATE DATABASE $NAME OWNER $NAME" >&2
    fi
fi

step "cluster $version/$cluster_name online on 127.0.0.1:$port, database $NAME ready"
echo "CICD_TEST_POSTGRES_URL=postgresql+psycopg://$NAME:$NAME@127.0.0.1:$port/$NAME"
