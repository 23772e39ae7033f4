#!/usr/bin/env bash
# Run a real project nobody here wrote through `cicd run`: more-itertools' sdist from PyPI.
#
# Downloads the source distribution (no wheel, no dependencies), unpacks it into a fresh git
# repository OUTSIDE this one (nothing downloaded is ever committed here), adds a pipeline that
# compiles the package and runs its test suite split into parallel jobs in cicd-python:bookworm
# (Debian's python3 + pytest, nothing installed), commits, and runs it with this checkout's cicd.
# Then prints the run's report and its junit artifacts' totals. Jobs of a run share one workspace,
# so each job's artifact pattern names its own report only (reports/*.xml would also pick up the
# reports its siblings had written by the time it ended).
#
#   bench/realproject/run_realproject.sh [PACKAGE_VERSION]
#
# Environment: WORK (default: a new temp dir, kept for inspection), CICD_HOME (default
# $WORK/home), PREFECT_API_URL (default: cicd's own local Prefect server under CICD_HOME,
# stopped at the end), SHARDS (default 3: parallel jobs for tests/test_more.py).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cicd="$root/.venv/bin/cicd"
python="$root/.venv/bin/python"
version=${1:-}
shards=${SHARDS:-3}
work=${WORK:-$(mktemp -d /tmp/cicd-realproject-XXXXXX)}
export CICD_HOME=${CICD_HOME:-$work/home}
unset CICD_SERVER
mkdir -p "$work" "$CICD_HOME"
echo "work dir: $work"

# -- the project: an sdist from PyPI, unpacked into its own git repository -------------------
spec="more-itertools${version:+==$version}"
rm -rf "$work/dl" "$work/repo"
"$python" -m pip download --quiet --no-deps --no-binary :all: --dest "$work/dl" "$spec"
sdist=$(ls "$work"/dl/more_itertools-*.tar.gz)
mkdir "$work/repo"
tar -xzf "$sdist" -C "$work/repo" --strip-components=1
cd "$work/repo"
git init -q -b main

# -- its pipeline -----------------------------------------------------------------------------
mkdir -p .pipelines
{
  cat <<'EOF'
pipeline:
  name: more-itertools
  stages: [build, test]
  image: cicd-python:bookworm
  variables: {PYTHONDONTWRITEBYTECODE: "1", PYTEST_ADDOPTS: "-p no:cacheprovider"}
jobs:
  - name: compile
    stage: build
    script:
      - python3 --version
      - python3 -m compileall -q more_itertools tests
      - python3 -c "import more_itertools as m; print('more_itertools', m.__version__)"
  - name: recipes
    stage: test
    artifacts: [reports/recipes.xml]
    script:
      - mkdir -p reports
      - python3 -m pytest -q tests/test_recipes.py --junitxml=reports/recipes.xml
  - name: doctests
    stage: test
    allow_failure: true
    script:
      - python3 -m pytest -q --doctest-modules more_itertools
EOF
  # tests/test_more.py: its test classes dealt round-robin to $shards parallel jobs
  for i in $(seq 1 "$shards"); do
    cat <<EOF
  - name: more-$i-of-$shards
    stage: test
    timeout: 10m
    artifacts: [reports/more-$i.xml]
    script:
      - mkdir -p reports
      - python3 -m pytest --collect-only -q tests/test_more.py | grep -o '^tests/test_more.py::[A-Za-z0-9_]*' | sort -u | awk 'NR % $shards == $((i - 1))' > shard-$i.txt
      - echo "\$(wc -l < shard-$i.txt) test classes in this shard"
      - python3 -m pytest -q \$(cat shard-$i.txt) --junitxml=reports/more-$i.xml
EOF
  done
} > .pipelines/pipeline.yaml

git add -A . >/dev/null
git -c user.name="cicd bench" -c user.email=bench@example.invalid commit -q -m "more-itertools sdist + cicd pipeline"
echo "commit: $(git rev-parse HEAD)"

"$cicd" check
"$cicd" dry-run

# -- run it -----------------------------------------------------------------------------------
started=$EPOCHREALTIME
set +e
"$cicd" run
status=$?
set -e
ended=$EPOCHREALTIME
echo "cicd run exit status: $status, wall time: $("$python" -c "print(f'{$ended - $started:.1f}')") s"

number=$("$cicd" report -p more-itertools --format json \
  | "$python" -c 'import json,sys; print(json.load(sys.stdin)["runs"][0]["run"])')
"$cicd" report -p more-itertools --run "$number" --format json > "$work/report.json"
"$python" - "$work/report.json" <<'EOF'
import json, sys
from datetime import datetime
run = json.load(open(sys.argv[1]))
t = datetime.fromisoformat
print(f"{run['pipeline']}#{run['run']} {run['status']} "
      f"{(t(run['finished_at']) - t(run['started_at'])).total_seconds():.1f}s")
for stage in run["stages"]:
    for job in stage["jobs"]:
        took = ((t(job["finished_at"]) - t(job["started_at"])).total_seconds()
                if job["started_at"] and job["finished_at"] else float("nan"))
        print(f"  {stage['name']:6} {job['name']:14} {job['status']:8} exit={job['exit_code']} "
              f"{took:6.1f}s  {job['started_at']} -> {job['finished_at']}")
EOF

# -- the junit reports, fetched back as artifacts ---------------------------------------------
rm -rf "$work/artifacts"
"$cicd" artifacts "more-itertools#$number" --download "$work/artifacts"
"$python" - "$work/artifacts" <<'EOF'
import sys, xml.etree.ElementTree as ET
from pathlib import Path
total = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
for path in sorted(Path(sys.argv[1]).rglob("*.xml")):
    suite = ET.parse(path).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in total}
    print(f"  {path.relative_to(sys.argv[1])}: {counts}")
    for k in total:
        total[k] += counts[k]
print(f"  all shards: {total}")
EOF

# -- cicd's own local Prefect server, when this script made it start one ---------------------
if [ -z "${PREFECT_API_URL:-}" ] && [ -f "$CICD_HOME/prefect/server.json" ]; then
  pid=$("$python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' \
    "$CICD_HOME/prefect/server.json")
  kill "$pid" 2>/dev/null || true
fi
exit "$status"
