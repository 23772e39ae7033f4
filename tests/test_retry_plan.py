"""Which jobs a retry runs again and which it carries over (``backend.retry.plan_retry``)."""

from __future__ import annotations

import pytest

from backend.errors import UsageError
from backend.pipeline import parse_pipeline
from backend.pipeline.gitlab.front import parse_gitlab
from backend.retry import plan_retry, recorded_jobs, retry_selection
from backend.schemas import JobRunPublic, RunPublic, StageRunPublic, Status

GITLAB = """
stages: [build, test, deploy]
default: {image: busybox}
a: {stage: build, script: ["true"]}
b: {stage: build, script: ["true"]}
c: {stage: build, script: ["true"]}
d: {stage: test, needs: [a, b, c], script: ["true"]}
e: {stage: test, needs: [a], script: ["true"]}
f: {stage: deploy, script: ["true"]}
m: {stage: deploy, when: manual, script: ["true"]}
"""

NATIVE = """
pipeline: {name: tri, stages: [one, two], image: busybox}
jobs:
  - {name: a, stage: one, script: "true"}
  - {name: b, stage: one, script: "true", needs: [a]}
  - {name: c, stage: one, script: "true"}
  - {name: d, stage: two, script: "true"}
"""


def run_of(pipeline: str, statuses: dict[str, tuple[str, Status]]) -> RunPublic:
    """A finished run whose jobs (name -> (stage, status)) are in the given order."""
    stages: dict[str, list[JobRunPublic]] = {}
    for name, (stage, status) in statuses.items():
        stages.setdefault(stage, []).append(
            JobRunPublic(
                name=name, status=status, allow_failure=False, exit_code=None, image="busybox",
                started_at=None, finished_at=None,
            )
        )
    return RunPublic(
        pipeline=pipeline, run=1, status=Status.FAILED, commit="0" * 40, branch="main",
        started_at=None, finished_at=None, worker=None,
        stages=[
            StageRunPublic(name=s, status=Status.FAILED, started_at=None, finished_at=None,
                           jobs=jobs)
            for s, jobs in stages.items()
        ],
    )  # fmt: skip


OK, FAILED, SKIPPED = Status.SUCCESS, Status.FAILED, Status.SKIPPED


def gitlab_run(**changed: Status) -> RunPublic:
    statuses = {
        "a": ("build", OK), "b": ("build", OK), "c": ("build", OK), "d": ("test", OK),
        "e": ("test", OK), "f": ("deploy", OK), "m": ("deploy", Status.MANUAL),
    }  # fmt: skip
    for name, status in changed.items():
        statuses[name] = (statuses[name][0], status)
    return run_of("p", statuses)


def test_plan_retry_reruns_the_failed_job_and_what_waits_for_it() -> None:
    pipeline = parse_gitlab(GITLAB, ".gitlab-ci.yml", name="p")
    run = gitlab_run(c=FAILED, d=SKIPPED, f=SKIPPED)

    plan = plan_retry(pipeline, run)

    # d needs c; f is in a later stage (stage order); e needs only a; m is manual: not planned
    assert plan.rerun == ["c", "d", "f"]
    assert plan.reuse == ["a", "b", "e"]
    assert plan.left_out == []


def test_plan_retry_with_job_reruns_it_and_its_dependents_only() -> None:
    pipeline = parse_gitlab(GITLAB, ".gitlab-ci.yml", name="p")

    plan = plan_retry(pipeline, gitlab_run(), job="e")

    assert plan.rerun == ["e", "f"]
    assert plan.reuse == ["a", "b", "c", "d"]


def test_plan_retry_counts_reused_jobs_as_succeeded() -> None:
    pipeline = parse_gitlab(GITLAB, ".gitlab-ci.yml", name="p")

    plan = plan_retry(pipeline, gitlab_run(a=Status.REUSED, b=Status.CANCELED, d=SKIPPED))

    assert plan.rerun == ["b", "d", "f"]
    assert "a" in plan.reuse


def test_plan_retry_of_a_successful_run_is_refused_without_job() -> None:
    pipeline = parse_gitlab(GITLAB, ".gitlab-ci.yml", name="p")

    with pytest.raises(UsageError, match="nothing to retry: every job of p#1 succeeded"):
        plan_retry(pipeline, gitlab_run())


def test_plan_retry_with_unknown_job_names_the_jobs() -> None:
    pipeline = parse_gitlab(GITLAB, ".gitlab-ci.yml", name="p")

    with pytest.raises(UsageError, match="--job zz: no such job runs in p#1"):
        plan_retry(pipeline, gitlab_run(), job="zz")


def test_plan_retry_with_job_after_a_failure_is_refused() -> None:
    pipeline = parse_gitlab(GITLAB, ".gitlab-ci.yml", name="p")
    run = gitlab_run(c=FAILED, d=SKIPPED, f=SKIPPED)

    with pytest.raises(UsageError, match="'d' waits for 'c', which did not succeed"):
        plan_retry(pipeline, run, job="d")


def test_plan_retry_with_job_leaves_out_unrelated_failures() -> None:
    text = GITLAB + "g: {stage: deploy, needs: [a], script: [\"false\"]}\n"
    pipeline = parse_gitlab(text, ".gitlab-ci.yml", name="p")
    run = gitlab_run()
    run.stages[-1].jobs.append(run_of("p", {"g": ("deploy", FAILED)}).stages[0].jobs[0])

    plan = plan_retry(pipeline, run, job="e")

    assert plan.rerun == ["e", "f"]
    assert plan.left_out == ["g"]  # it failed, and nothing re-run waits for it
    assert retry_selection(run, "e", plan) == ["a", "b", "c", "d", "e", "f"]


def test_plan_retry_native_needs_in_a_stage_and_later_stages() -> None:
    pipeline = parse_pipeline(NATIVE, ".pipelines/tri.yaml")
    run = run_of("tri", {
        "a": ("one", FAILED), "b": ("one", Status.CANCELED), "c": ("one", OK),
        "d": ("two", Status.CANCELED),
    })  # fmt: skip

    plan = plan_retry(pipeline, run)

    assert plan.rerun == ["a", "b", "d"]
    assert plan.reuse == ["c"]


def test_recorded_jobs_leaves_manual_jobs_out() -> None:
    assert recorded_jobs(gitlab_run()) == ["a", "b", "c", "d", "e", "f"]
