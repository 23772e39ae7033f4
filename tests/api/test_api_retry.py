"""``POST /runs/{pipeline}/{number}/retry`` over HTTP, on a server that keeps submitted commits."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from apikit import Api, follow, submit

from backend.requests import PreparedRun
from backend.runner.base import FakeOutcome
from backend.runner.fake import FakeRunner
from backend.schemas import Status


@pytest.fixture
def failing(start_api: Callable[..., Api], prefect_api: str) -> Api:
    """A server whose ``unit`` job fails (exit 1, after 0.5 s) and whose other jobs succeed."""
    # unit fails after lint has ended: fail-fast cancels nothing
    return start_api(runner=FakeRunner(outcomes={"unit": FakeOutcome(exit_code=1, seconds=0.5)}))


def statuses(api: Api, number: int) -> dict[str, Status]:
    run = api.service.run("demo", number)
    return {job.name: job.status for stage in run.stages for job in stage.jobs}


def test_retry_route_reruns_the_failed_job_from_the_bundled_commit(
    failing: Api, repo: Path, prepare: Callable[..., PreparedRun]
) -> None:
    submit(failing, prepare(repo, env={"COLOUR": "red"}))
    follow(failing, "demo", 1)
    assert statuses(failing, 1)["unit"] is Status.FAILED

    with failing.client() as client:
        reply = client.post("/runs/demo/1/retry", json={"env": {"FIXED": "1"}})

    assert reply.status_code == 202, reply.text
    assert reply.json() == {"pipeline": "demo", "run": 2, "name": "demo#2", "duplicate": False}
    follow(failing, "demo", 2)
    # unit failed again (the fake fails it every time); lint, beside it, is carried over
    assert statuses(failing, 2) == {
        "compile": Status.REUSED, "unit": Status.FAILED, "lint": Status.REUSED,
    }  # fmt: skip
    run = failing.service.run("demo", 2)
    assert (run.retry_of, run.commit) == (1, failing.service.run("demo", 1).commit)
    assert failing.service.store.run_env("demo", 2) == {"COLOUR": "red", "FIXED": "1"}
    # the reused job's artifact is the new run's too
    assert [a.path for a in failing.service.artifacts("demo", 2, "compile")] == ["README"]
    # the re-run jobs saw both runs' variables
    runner = failing.runner
    assert isinstance(runner, FakeRunner)
    assert [c.spec.job for c in runner.calls].count("compile") == 1  # it ran once, in demo#1
    unit = [c.spec for c in runner.calls if c.spec.job == "unit"][-1]
    assert unit.env["COLOUR"] == "red" and unit.env["FIXED"] == "1"


def test_retry_route_refusals_are_one_line(
    failing: Api, repo: Path, prepare: Callable[..., PreparedRun]
) -> None:
    submit(failing, prepare(repo))
    follow(failing, "demo", 1)
    with failing.client() as client:
        unknown_job = client.post("/runs/demo/1/retry", json={"job": "nope"})
        unknown_run = client.post("/runs/demo/9/retry")
        extra = client.post("/runs/demo/1/retry", json={"jobz": "unit"})
        garbage = client.post("/runs/demo/1/retry", content=b"{not json")
        huge = client.post("/runs/demo/1/retry", content=b"x" * (1024 * 1024 + 1))

    assert unknown_job.status_code == 400
    assert unknown_job.json()["detail"].startswith(
        "cannot retry demo#1: --job nope: no such job runs in demo#1"
    )
    assert unknown_run.status_code == 404
    assert (extra.status_code, garbage.status_code, huge.status_code) == (422, 422, 413)
    for reply in (unknown_job, unknown_run, extra, garbage, huge):
        assert "\n" not in reply.json()["detail"]
    assert [r.run for r in failing.service.runs("demo").runs] == [1]  # nothing recorded


def test_retry_route_without_the_commit_is_422(
    failing: Api, repo: Path, prepare: Callable[..., PreparedRun]
) -> None:
    submit(failing, prepare(repo))
    follow(failing, "demo", 1)
    import shutil

    # the bundled commit is gone, and a team server never reads the client's path itself
    shutil.rmtree(failing.settings.home / "repos")

    with failing.client() as client:
        reply = client.post("/runs/demo/1/retry")

    assert reply.status_code == 422, reply.text
    assert reply.json()["detail"].startswith("cannot retry demo#1: ")
    assert "(cicd retry demo#1 --server URL, run from the repository, sends the commit)" in (
        reply.json()["detail"]
    )
