"""Real-world ``.gitlab-ci.yml`` files, planned as GitLab would plan them.

Each folder of ``realworld/`` holds a well-known project's GitLab CI file and its local
includes (structure kept; images, scripts and server-side includes swapped for local ones, as
each file's header says) and ``expected.json``, written by hand from GitLab's documented
semantics, not from cicd's output. For each context (a branch push, a tag, a merge request, a
schedule...) it lists the jobs GitLab creates (parallel and matrix names included) with their
stage, ``when``, ``needs`` (null: the job has no ``needs:`` key) and ``after`` (the jobs it
waits for: its needs, or every created job of the earlier stages), the jobs the file defines
that GitLab leaves out, and ``_notes`` on the entries that are not obvious. A manual job's
``blocks`` says whether GitLab holds what comes after it until it is run (``allow_failure:
false``, the default of ``rules: when: manual``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from backend.errors import PipelineInvalid
from backend.pipeline.discover import DirectorySource
from backend.pipeline.gitlab.front import GitlabContext, load_gitlab
from backend.pipeline.model import Job, Pipeline
from backend.pipeline.plan import plan_pipeline
from backend.pipeline.select import select_jobs

REALWORLD = Path(__file__).parent / "realworld"
PROJECTS = sorted(p.name for p in REALWORLD.iterdir() if (p / "expected.json").is_file())
GITLAB_FILE = ".gitlab-ci.yml"
MANUAL_REASON = "when: manual"  # how the model says "created, waiting for --manual"

# Cases that fail for a feature cicd does not have yet, each with that feature:
# (project, context name, test) -> reason. strict: the day it works, the mark must go.
# (project, context, test) -> the missing feature, for cases cicd cannot plan as GitLab yet
XFAIL: dict[tuple[str, str, str], str] = {}


def _expected(project: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((REALWORLD / project / "expected.json").read_text())
    return data


def _cases(test: str, *, blocked: bool = False) -> list[Any]:
    """One parameter per (project, context) of the expected files; ``blocked``: workflow ones."""
    params = []
    for project in PROJECTS:
        for case in _expected(project)["contexts"]:
            if bool(case.get("workflow_blocks")) != blocked:
                continue
            reason = XFAIL.get((project, case["name"], test))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            params.append(pytest.param(project, case, id=f"{project}-{case['name']}", marks=marks))
    return params


def _load(project: str, case: dict[str, Any]) -> Pipeline:
    """The project's file under the case's context, includes read from its folder."""
    source = DirectorySource(REALWORLD / project)
    context = GitlabContext(**case["context"])
    return load_gitlab(GITLAB_FILE, source, name=project, context=context)


def _created(job: Job) -> bool:
    """Whether GitLab would create the job: it runs, or waits as a manual job.

    The model keeps the jobs rules/only/except leave out, not run; only the skip reason tells
    them from the manual jobs, which are not run either until ``--manual`` starts them.
    """
    return job.run or (job.when == "manual" and (job.skip_reason or "").startswith(MANUAL_REASON))


@pytest.mark.parametrize(("project", "case"), _cases("jobs"))
def test_realworld_jobs_as_gitlab_creates_them(project: str, case: dict[str, Any]) -> None:
    pipeline = _load(project, case)
    expected = case["jobs"]
    jobs = {job.name: job for job in pipeline.jobs}

    assert sorted(n for n, j in jobs.items() if _created(j)) == sorted(expected)
    assert sorted(n for n, j in jobs.items() if not _created(j)) == case["not_created"]
    shown = {
        name: {
            "stage": jobs[name].stage,
            "when": jobs[name].when,
            "run": jobs[name].run,
            "needs": sorted(jobs[name].needs) if jobs[name].dag else None,
        }
        for name in expected
    }
    assert shown == {
        name: {
            "stage": spec["stage"],
            "when": spec["when"],
            "run": spec["when"] != "manual",
            "needs": spec["needs"],
        }
        for name, spec in expected.items()
    }
    created_stages = [s.name for s in pipeline.stages if any(_created(j) for j in s.jobs)]
    assert created_stages == case["stages"]


@pytest.mark.parametrize(("project", "case"), _cases("plan"))
def test_realworld_plan_waits_as_gitlab(project: str, case: dict[str, Any]) -> None:
    """Each job that runs waits for what GitLab makes it wait for.

    Manual jobs are not started here, so they run nothing and wait for nothing. A job after a
    manual job that blocks (GitLab holds the pipeline until someone starts it) cannot start in a
    local run either: cicd plans it as not run, naming the manual job to start with --manual.
    A job after a manual job that does not block waits only for the others (GitLab goes past it).
    """
    # as cicd dry-run and run plan it: the selection step (none here) decides manual jobs
    pipeline = select_jobs(_load(project, case), [], with_needs=False, manual=[])
    plan = plan_pipeline(pipeline)
    expected = case["jobs"]
    manual = {name for name, spec in expected.items() if spec["when"] == "manual"}
    blocking = {name for name in manual if expected[name].get("blocks")}
    held: set[str] = set()  # after a blocking manual job, directly or through held jobs
    while grown := {
        name for name, spec in expected.items()
        if name not in manual | held and any(n in blocking | held for n in spec["after"])
    }:
        held |= grown
    running = set(expected) - manual - held

    for name in held:
        job = pipeline.job(name)
        assert not job.run, f"{name} starts although a blocking manual job is not started"
        assert (job.skip_reason or "").startswith("waits for manual job '"), job.skip_reason
    assert {name: sorted(plan.after.get(name, ())) for name in running} == {
        name: [n for n in expected[name]["after"] if n in running] for name in running
    }
    assert sorted(plan.after) == sorted(running)


@pytest.mark.parametrize(("project", "case"), _cases("workflow", blocked=True))
def test_realworld_workflow_rules_create_no_pipeline(project: str, case: dict[str, Any]) -> None:
    with pytest.raises(PipelineInvalid) as caught:
        _load(project, case)

    messages = [p.message for p in caught.value.problems]
    assert len(messages) == 1
    assert messages[0].startswith("workflow:rules: this pipeline does not run for ")


def _cicd(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m cicd_cli ARGS`` in ``cwd``, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "cicd_cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "120", "NO_COLOR": "1"},
    )


def _cli_params(test: str) -> list[Any]:
    params = []
    for project in PROJECTS:
        reason = XFAIL.get((project, "", test))
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        params.append(pytest.param(project, id=project, marks=marks))
    return params


@pytest.fixture
def checkout(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """A copy of the project's folder, the work tree ``cicd`` is run in."""
    folder = tmp_path / request.node.callspec.params["project"]
    shutil.copytree(REALWORLD / request.node.callspec.params["project"], folder)
    (folder / "expected.json").unlink()
    return folder


@pytest.mark.parametrize("project", _cli_params("check"))
def test_realworld_cli_check_accepts_file(project: str, checkout: Path) -> None:
    result = _cicd("check", "-f", GITLAB_FILE, cwd=checkout)

    assert (result.returncode, result.stderr) == (0, "")


@pytest.mark.parametrize("project", _cli_params("dry-run"))
def test_realworld_cli_dry_run_plans_file(project: str, checkout: Path) -> None:
    result = _cicd("dry-run", "-f", GITLAB_FILE, "--format", "json", cwd=checkout)

    assert (result.returncode, result.stderr) == (0, "")
    planned = {
        job["name"] for stage in json.loads(result.stdout)["stages"] for job in stage["jobs"]
    }
    first = _expected(project)["contexts"][0]  # a push to main, what a plain checkout is
    assert set(first["jobs"]) <= planned
