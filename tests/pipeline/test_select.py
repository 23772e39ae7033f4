"""Job selection: --job, --with-needs and --manual on hand-built pipelines."""

from __future__ import annotations

import pytest

from backend.errors import UsageError
from backend.pipeline import Job, Pipeline, Stage, select_jobs, selection_of
from backend.pipeline.select import NOT_SELECTED


def _job(name: str, stage: str, needs: list[str] | None = None, **extra: object) -> Job:
    return Job(
        name=name, stage=stage, image="img", script=["true"], needs=needs or [],
        dag=needs is not None, **extra,
    )  # fmt: skip


MANUAL = {"when": "manual", "run": False, "skip_reason": "when: manual (start it with --manual)"}
NEVER = {"when": "never", "run": False, "skip_reason": "rules: rule 1 says never"}


@pytest.fixture
def pipeline() -> Pipeline:
    """build: compile; test: lint, unit (needs compile, lint), docs (rules never);
    deploy: ship (manual), notify (needs ship), tidy."""
    return Pipeline(
        name="demo",
        format="gitlab",
        stages=[
            Stage(name="build", jobs=[_job("compile", "build")]),
            Stage(
                name="test",
                jobs=[
                    _job("lint", "test", []),
                    _job("unit", "test", ["compile", "lint"]),
                    _job("docs", "test", **NEVER),
                ],
            ),
            Stage(
                name="deploy",
                jobs=[
                    _job("ship", "deploy", **MANUAL),
                    _job("notify", "deploy", ["ship"]),
                    _job("tidy", "deploy"),
                ],
            ),
        ],
    )


def _runs(pipeline: Pipeline) -> dict[str, str | None]:
    """Each job: None when it runs, else why not."""
    return {job.name: None if job.run else job.skip_reason for job in pipeline.jobs}


def test_select_jobs_nothing_selected_holds_manual_jobs_and_their_followers(pipeline):
    assert _runs(select_jobs(pipeline)) == {
        "compile": None,
        "lint": None,
        "unit": None,
        "docs": "rules: rule 1 says never",
        "ship": "manual: start it with --manual ship",
        "notify": "waits for manual job 'ship': start it with --manual ship",
        "tidy": None,
    }


def test_select_jobs_job_runs_only_those(pipeline):
    assert _runs(select_jobs(pipeline, ["unit", "tidy"])) == {
        "compile": NOT_SELECTED,
        "lint": NOT_SELECTED,
        "unit": None,  # its needs are not selected: it runs without waiting for them
        "docs": "rules: rule 1 says never",
        "ship": NOT_SELECTED,
        "notify": NOT_SELECTED,
        "tidy": None,
    }


def test_select_jobs_with_needs_adds_what_they_need_transitively(pipeline):
    selected = select_jobs(pipeline, ["notify"], with_needs=True)
    assert [name for name, why in _runs(selected).items() if why is None] == ["ship", "notify"]


def test_select_jobs_manual_starts_a_manual_job(pipeline):
    runs = _runs(select_jobs(pipeline, manual=["ship"]))
    assert (runs["ship"], runs["notify"], runs["compile"]) == (None, None, None)


def test_select_jobs_job_names_a_manual_job_and_starts_it(pipeline):
    assert _runs(select_jobs(pipeline, ["ship"]))["ship"] is None


def test_select_jobs_unknown_name_suggests_a_close_one(pipeline):
    with pytest.raises(UsageError) as info:
        select_jobs(pipeline, ["unti"])
    assert str(info.value) == "--job unti: no job 'unti' in pipeline 'demo'; did you mean 'unit'?"


def test_select_jobs_job_that_never_runs_is_a_usage_error(pipeline):
    with pytest.raises(UsageError) as info:
        select_jobs(pipeline, ["docs"])
    assert str(info.value) == "job 'docs' does not run in this pipeline: rules: rule 1 says never"


def test_select_jobs_manual_of_a_job_that_is_not_manual_is_a_usage_error(pipeline):
    with pytest.raises(UsageError) as info:
        select_jobs(pipeline, manual=["tidy"])
    assert str(info.value) == (
        "--manual tidy: job 'tidy' is not a manual job (when: on_success); use --job tidy"
    )


def test_select_jobs_parallel_base_name_selects_every_instance():
    jobs = [_job(f"test {i}/2", "test", node_index=i, node_total=2) for i in (1, 2)]
    pipeline = Pipeline(name="demo", stages=[Stage(name="test", jobs=[*jobs, _job("x", "test")])])
    assert _runs(select_jobs(pipeline, ["test"])) == {
        "test 1/2": None,
        "test 2/2": None,
        "x": NOT_SELECTED,
    }


def test_selection_of_gives_the_same_selection_again(pipeline):
    selected = select_jobs(pipeline, ["notify", "unit"], with_needs=True, manual=["ship"])
    names, manual = selection_of(selected)
    assert (names, manual) == (["compile", "lint", "unit", "ship", "notify"], ["ship"])
    assert select_jobs(pipeline, names, manual=manual) == selected


def test_selection_of_no_job_selection_keeps_every_job(pipeline):
    assert selection_of(select_jobs(pipeline, manual=["ship"])) == ([], ["ship"])


def test_select_jobs_blocking_manual_job_holds_later_stages():
    blocking = _job("approve", "review", **MANUAL)  # allow_failure false: GitLab blocks here
    optional = _job("preview", "review", **MANUAL, allow_failure=True)
    pipeline = Pipeline(
        name="demo",
        format="gitlab",
        stages=[
            Stage(name="review", jobs=[blocking, optional]),
            Stage(name="ship", jobs=[_job("push", "ship"), _job("notes", "ship", [])]),
        ],
    )
    assert _runs(select_jobs(pipeline)) == {
        "approve": "manual: start it with --manual approve",
        "preview": "manual: start it with --manual preview",
        "push": "waits for manual job 'approve': start it with --manual approve",
        "notes": None,  # needs: [] does not wait for earlier stages
    }
    assert _runs(select_jobs(pipeline, manual=["approve"]))["push"] is None
