"""Real projects' ``.gitlab-ci.yml`` run by cicd and by gitlab-ci-local, side by side.

    .venv/bin/python bench/gitlab_projects.py [--runs N] [--only PROJECT] [--json]
                                              [--skip-gcl] [--skip-cicd]

Each project is a pure-Python library's source distribution from PyPI (downloaded once into
``bench/_work/sdists``, never committed), unpacked into a fresh git repository with the
pipeline of ``examples/gitlab/<project>.gitlab-ci.yml`` as its ``.gitlab-ci.yml``: lint, tests
split over parallel jobs with JUnit reports, a build whose artifacts (and dotenv) reach later
jobs, an allowed failure, a job with a service. For N runs it measures (median wall seconds):

- cicd cold: ``cicd run`` with a fresh CICD_HOME (it starts its local Prefect server);
- cicd warm: a second ``cicd run`` with the same CICD_HOME, once the first has been mirrored
  into Prefect (a cold run may end before that);
- gcl: gitlab-ci-local 4.70.1 on the same file (its artifacts need rsync in its helper image:
  ``tools.ensure_gcl_helper`` builds one locally).

and each job's outcome under both tools (they must agree: the outcome GitLab gives). Nothing
here asserts; tests/e2e/test_gitlab_projects.py checks the outcomes.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import tools

EXAMPLES = tools.REPO_ROOT / "examples" / "gitlab"
SDISTS = tools.WORK / "sdists"
# project -> the PyPI requirement of its sdist (pinned: the pipelines are written for them)
PROJECTS = {"more-itertools": "more-itertools==11.2.1", "six": "six==1.17.0"}


def sdist(project: str) -> Path:
    """The project's sdist, downloaded from PyPI on first use."""
    stem = PROJECTS[project].split("==")[0].replace("-", "_")
    found = sorted(SDISTS.glob(f"{stem}-*.tar.gz"))
    if not found:
        SDISTS.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary",
                ":all:",
                "--dest",
                str(SDISTS),
                PROJECTS[project],
            ],
            check=True,
        )
        found = sorted(SDISTS.glob(f"{stem}-*.tar.gz"))
    return found[-1]


def make_repo(project: str) -> Path:
    """A fresh git repository: the sdist's files plus the example ``.gitlab-ci.yml``."""
    repo = Path(tempfile.mkdtemp(prefix=f"cicd-bench-{project}-"))
    with tarfile.open(sdist(project)) as archive:
        top = archive.getnames()[0].split("/")[0]
        archive.extractall(repo, filter="data")
    source = repo / top
    for item in source.iterdir():
        item.rename(repo / item.name)
    source.rmdir()
    shutil.copy(EXAMPLES / f"{project}.gitlab-ci.yml", repo / ".gitlab-ci.yml")
    with (repo / ".gitignore").open("a") as ignore:
        ignore.write("\n.gitlab-ci-local/\n")
    env = {**tools.os.environ, **tools._GIT_ENV}
    for command in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        ["git", "commit", "-q", "-m", "import"],
    ):
        subprocess.run(command, cwd=repo, env=env, check=True, capture_output=True)
    return repo


_RUN_NAME = re.compile(r"^(\S+)#(\d+) (?:SUCCESS|FAILED|CANCELED)\b", re.MULTILINE)


def cicd_outcomes(repo: Path, home: Path, output: str) -> dict[str, str]:
    """Each job's status in the run whose summary ends ``output``, from ``cicd report``."""
    found = _RUN_NAME.findall(output)
    if not found:
        return {}
    pipeline, number = found[-1]
    done = subprocess.run(
        [str(tools.CICD), "report", "-p", pipeline, "--run", number, "--format", "json"],
        cwd=repo,
        env=tools.cicd_env(home),
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        return {}
    return {
        job["name"]: _cicd_word(job)
        for stage in report.get("stages", [])
        for job in stage.get("jobs", [])
    }


def _cicd_word(job: dict) -> str:
    status = job.get("status", "?")
    if status == "FAILED" and job.get("allow_failure"):
        return "WARN"  # gitlab-ci-local's word for an allowed failure
    return {"SUCCESS": "PASS", "FAILED": "FAIL"}.get(status, status)


_GCL_SUMMARY = re.compile(r"^\s*(PASS|FAIL|WARN)\s+(.+?)\s*$")


def gcl_outcomes(output: str) -> dict[str, str]:
    """Each job's outcome from gitlab-ci-local's summary (`` PASS  job``)."""
    outcomes = {}
    for line in output.splitlines():
        match = _GCL_SUMMARY.match(line)
        if match:
            # it names parallel: N jobs "job: [i/N]" where GitLab names them "job i/N"
            name = re.split(r"\s{2,}", match.group(2))[0]  # a failed one: name, then why
            name = re.sub(r"^(.*): \[(\d+/\d+)\]$", r"\1 \2", name)
            outcomes[name] = match.group(1)
    return outcomes


def measure(project: str, runs: int, do_cicd: bool, do_gcl: bool) -> dict:
    """Median wall times of ``runs`` runs of ``project`` under each tool, and job outcomes."""
    result: dict = {
        "pipeline": f"gitlab:{project}",
        "runs": runs,
        "cicd_cold": [],
        "cicd_warm": [],
        "gcl": [],
        "outcomes": {},
        "failures": [],
    }
    if do_cicd:
        repo = make_repo(project)
        try:
            for i in range(runs):
                home = tools.new_home()
                try:
                    for kind in ("cold", "warm"):
                        t = tools.run_cicd(repo, home)
                        print(
                            f"  {project} {i + 1}/{runs}: cicd {kind} {t.seconds:.2f}s "
                            f"(exit {t.returncode})",
                            file=sys.stderr,
                        )
                        result[f"cicd_{kind}"].append(t.seconds)
                        result["outcomes"]["cicd"] = cicd_outcomes(repo, home, t.tail)
                        if kind == "cold":  # warm: the daemon and its Prefect server idle
                            tools.wait_mirrored(home)
                finally:
                    tools.stop_cicd_home(home)
        finally:
            shutil.rmtree(repo, ignore_errors=True)
    if do_gcl:
        for i in range(runs):
            repo = make_repo(project)
            try:
                home = repo / ".gitlab-ci-local" / "home"
                home.mkdir(parents=True)
                # not --quiet: the summary of PASS/FAIL/WARN per job ends its output
                command = [c for c in tools.gcl_command() if c != "--quiet"]
                t = tools.timed(command, repo, tools.gcl_env(home))
                print(
                    f"  {project} {i + 1}/{runs}: gitlab-ci-local {t.seconds:.2f}s "
                    f"(exit {t.returncode})",
                    file=sys.stderr,
                )
                result["gcl"].append(t.seconds)
                result["outcomes"]["gcl"] = gcl_outcomes(t.tail)
            finally:
                tools.cleanup_gcl(repo)
    for key in ("cicd_cold", "cicd_warm", "gcl"):
        result[f"median_{key}"] = statistics.median(result[key]) if result[key] else None
    cold, gcl = result["median_cicd_cold"], result["median_gcl"]
    result["cold_over_gcl"] = cold / gcl if cold and gcl else None
    return result


def _fmt(value: float | None, suffix: str = "s") -> str:
    return "-" if value is None else f"{value:.2f}{suffix}"


def table(results: list[dict]) -> str:
    """The figures as a text table, then each job's outcome under both tools."""
    lines = [
        "project | cicd cold | cicd warm | gitlab-ci-local | cold/gcl",
        "--------+-----------+-----------+-----------------+---------",
    ]
    for r in results:
        lines.append(
            " | ".join(
                [
                    r["pipeline"],
                    _fmt(r["median_cicd_cold"]),
                    _fmt(r["median_cicd_warm"]),
                    _fmt(r["median_gcl"]),
                    _fmt(r["cold_over_gcl"], "x"),
                ]
            )
        )
    for r in results:
        cicd, gcl = r["outcomes"].get("cicd", {}), r["outcomes"].get("gcl", {})
        lines.append(f"\n{r['pipeline']}: job | cicd | gitlab-ci-local")
        for job in sorted(set(cicd) | set(gcl)):
            mark = "" if cicd.get(job) == gcl.get(job) else "   <- differs"
            lines.append(f"  {job} | {cicd.get(job, '-')} | {gcl.get(job, '-')}{mark}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per tool (median; default 3)")
    parser.add_argument("--only", action="append", choices=sorted(PROJECTS))
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--skip-cicd", action="store_true")
    parser.add_argument("--skip-gcl", action="store_true")
    args = parser.parse_args()
    if not args.skip_gcl:
        tools.ensure_gcl()
    results = [
        measure(p, args.runs, not args.skip_cicd, not args.skip_gcl)
        for p in args.only or list(PROJECTS)
    ]
    print(json.dumps(results, indent=2) if args.json else table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
