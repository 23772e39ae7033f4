"""Submitting runs over HTTP and following them: events, report JSON, logs, duplicates, cancel."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from apikit import Api, follow, git, submit

from backend.requests import PreparedRun
from backend.runner.base import FakeOutcome
from backend.runner.fake import FakeRunner
from backend.schemas import Status
from backend.source.bundles import make_bundle

SUMMARY = ("pipeline", "run", "status", "commit", "branch", "started_at", "finished_at", "worker")
ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00"


def kinds(events: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    """(kind, job or stage) of each event, lines left out."""
    return [(e["kind"], e["job"] or e["stage"]) for e in events if e["kind"] != "line"]


def test_submit_with_bundle_runs_to_its_end_through_the_events_stream(
    api: Api, repo: Path, prepare: Callable[..., PreparedRun]
) -> None:
    prepared = prepare(repo)
    reply = submit(api, prepared)
    assert reply == {"pipeline": "demo", "run": 1, "name": "demo#1", "duplicate": False}

    events = follow(api, "demo", 1)

    seen = kinds(events)
    assert seen[:6] + seen[10:] == [
        ("run_started", None),
        ("stage_started", "build"),
        ("job_started", "compile"),
        ("job_finished", "compile"),
        ("stage_finished", "build"),
        ("stage_started", "test"),
        ("stage_finished", "test"),
        ("run_finished", None),
    ]
    assert sorted(seen[6:10]) == [  # unit and lint run in parallel
        ("job_finished", "lint"), ("job_finished", "unit"),
        ("job_started", "lint"), ("job_started", "unit"),
    ]
    lines = [(e["job"], e["text"]) for e in events if e["kind"] == "line"]
    assert ("compile", "compiling") in lines and ("unit", "3 passed") in lines
    assert events[-1]["status"] == "SUCCESS"
    assert all(e["run"] == "demo#1" for e in events)


def test_events_after_skips_the_first_k(
    api: Api, repo: Path, prepare: Callable[..., PreparedRun]
) -> None:
    submit(api, prepare(repo))
    everything = follow(api, "demo", 1)
    with api.client() as client:
        tail = client.get("/runs/demo/1/events", params={"after": len(everything) - 2}).text
    assert len(tail.splitlines()) == 2
    assert '"kind":"run_finished"' in tail.splitlines()[-1]


def test_events_of_a_run_not_in_memory_is_one_run_finished_from_the_store(
    api: Api, repo: Path, prepare: Callable[..., PreparedRun]
) -> None:
    submit(api, prepare(repo))
    follow(api, "demo", 1)
    fresh = type(api.hub)()  # as after a restart: the run's events are gone from memory
    api.server.config.app.state.hub = fresh

    events = follow(api, "demo", 1)

    assert len(events) == 1
    assert events[0]["kind"] == "run_finished" and events[0]["status"] == "SUCCESS"


def test_run_report_json_has_the_spec_shape(
    api: Api, repo: Path, prepare: Callable[..., PreparedRun]
) -> None:
    prepared = prepare(repo)
    submit(api, prepared)
    follow(api, "demo", 1)

    with api.client() as client:
        run = client.get("/runs/demo/1").json()

    assert list(run) == [
        "pipeline", "run", "status", "commit", "branch", "started_at", "finished_at", "worker",
        "stages", "repo", "file", "overrides", "retry_of",
    ]
    assert (run["file"], run["overrides"], run["retry_of"]) == (
        ".pipelines/pipeline.yaml", [], None
    )
    assert (run["pipeline"], run["run"], run["status"]) == ("demo", 1, "SUCCESS")
    assert (run["commit"], run["branch"]) == (prepared.request.commit, "main")
    assert run["worker"] == api.service.worker
    assert [s["name"] for s in run["stages"]] == ["build", "test"]
    stage = run["stages"][1]
    assert list(stage) == ["name", "status", "started_at", "finished_at", "jobs"]
    job = {j["name"]: j for j in stage["jobs"]}["lint"]
    assert list(job) == [
        "name", "status", "allow_failure", "exit_code", "image", "started_at", "finished_at",
        "allowed", "error", "tests", "junit", "memory_peak_bytes", "cpu_seconds", "needs",
        "reused_from",
    ]
    assert job | {"started_at": None, "finished_at": None} == {
        "name": "lint", "status": "FAILED", "allow_failure": True, "exit_code": 1,
        "image": "cicd-busybox:latest", "started_at": None, "finished_at": None,
        "allowed": True, "error": "allowed to fail", "tests": None,
        "junit": None, "memory_peak_bytes": None, "cpu_seconds": None, "needs": None,
        "reused_from": None,
    }
    import re

    assert re.fullmatch(ISO, run["started_at"]) and re.fullmatch(ISO, job["finished_at"])


def test_stage_and_job_routes_narrow_the_same_objects(
    api: Api, repo: Path, prepare: Callable[..., PreparedRun]
) -> None:
    submit(api, prepare(repo))
    follow(api, "demo", 1)
    with api.client() as client:
        run = client.get("/runs/demo/1").json()
        stage = client.get("/runs/demo/1/stages/test").json()
        job = client.get("/runs/demo/1/jobs/compile").json()
        runs = client.get("/pipelines/demo/runs").json()
        pipelines = client.get("/pipelines").json()
    assert stage == run["stages"][1]
    assert job == run["stages"][0]["jobs"][0]
    assert runs == {
        "pipeline": "demo", "runs": [{k: v for k, v in run.items() if k in SUMMARY}], "next": None
    }
    assert [p["pipeline"] for p in pipelines["pipelines"]] == ["demo"]


def test_job_log_is_streamed_with_timestamps(
    api: Api, repo: Path, prepare: Callable[..., PreparedRun]
) -> None:
    submit(api, prepare(repo))
    follow(api, "demo", 1)

    with api.client() as client:
        reply = client.get("/runs/demo/1/jobs/unit/log")

    assert reply.status_code == 200
    assert reply.headers["content-type"] == "text/plain; charset=utf-8"
    texts = [line.split(" ", 1)[1] for line in reply.text.splitlines()]
    assert texts == ["3 passed"]
    assert list(api.backend().log("demo", 1, "unit")) == reply.text.splitlines()


def test_job_log_follow_streams_until_the_job_ends(
    start_api: Callable[..., Api], prefect_api: str, repo: Path,
    prepare: Callable[..., PreparedRun],
) -> None:
    runner = FakeRunner(outcomes={"compile": FakeOutcome(lines=["first"], seconds=1.5)})
    api = start_api(runner=runner)
    submit(api, prepare(repo))
    backend = api.backend()
    deadline = time.monotonic() + 30
    while backend.job("demo", 1, "compile").status is not Status.RUNNING:
        assert time.monotonic() < deadline
        time.sleep(0.05)

    lines = list(backend.log("demo", 1, "compile", follow=True))

    assert [line.split(" ", 1)[1] for line in lines] == [
        "first", "cicd: collected 1 artifact file(s)",
    ]
    assert backend.job("demo", 1, "compile").status is Status.SUCCESS


def test_duplicate_submission_returns_the_running_run_and_force_starts_another(
    start_api: Callable[..., Api], prefect_api: str, repo: Path,
    prepare: Callable[..., PreparedRun],
) -> None:
    api = start_api(runner=FakeRunner(outcomes={"compile": FakeOutcome(seconds=2)}))
    first = submit(api, prepare(repo))
    again = submit(api, prepare(repo))
    forced = submit(api, prepare(repo, force=True))

    assert (first["name"], first["duplicate"]) == ("demo#1", False)
    assert (again["name"], again["duplicate"]) == ("demo#1", True)
    assert (forced["name"], forced["duplicate"]) == ("demo#2", False)
    assert follow(api, "demo", 1)[-1]["status"] == "SUCCESS"
    assert follow(api, "demo", 2)[-1]["status"] == "SUCCESS"


def test_duplicate_submission_of_another_job_selection_is_a_new_run(
    start_api: Callable[..., Api], prefect_api: str, repo: Path,
    prepare: Callable[..., PreparedRun],
) -> None:
    # `cicd run --job compile` and `--job unit` of one commit are two runs, not one
    api = start_api(runner=FakeRunner(outcomes={"compile": FakeOutcome(seconds=2)}))
    first = submit(api, prepare(repo, select=["compile"]))
    other = submit(api, prepare(repo, select=["unit"]))
    same = submit(api, prepare(repo, select=["compile"]))

    assert (first["name"], first["duplicate"]) == ("demo#1", False)
    assert (other["name"], other["duplicate"]) == ("demo#2", False)
    assert (same["name"], same["duplicate"]) == ("demo#1", True)
    assert follow(api, "demo", 1)[-1]["status"] == "SUCCESS"
    assert follow(api, "demo", 2)[-1]["status"] == "SUCCESS"


def test_submit_without_bundle_finds_a_local_repo_the_server_can_read(
    start_api: Callable[..., Api], prefect_api: str, repo: Path,
    prepare: Callable[..., PreparedRun],
) -> None:
    api = start_api(local_paths=True)  # only the local daemon reads repositories by path
    reply = submit(api, prepare(repo), bundle=False)
    assert reply["name"] == "demo#1"
    assert follow(api, "demo", 1)[-1]["status"] == "SUCCESS"


def test_submit_of_an_unknown_commit_is_422_with_one_line(
    start_api: Callable[..., Api], prefect_api: str, repo: Path, tmp_path: Path,
    prepare: Callable[..., PreparedRun],
) -> None:
    api = start_api(local_paths=True)  # only the local daemon reads repositories by path
    prepared = prepare(repo)
    request = prepared.request.model_copy(update={"repo": str(tmp_path / "elsewhere")})
    with api.client() as client:
        reply = client.post("/runs", data={"request": request.model_dump_json()})
    assert reply.status_code == 422
    detail = reply.json()["detail"]
    assert "\n" not in detail and "elsewhere is not a git repository" in detail


def test_submit_with_a_bundle_missing_the_commit_is_422(
    api: Api, repo: Path, prepare: Callable[..., PreparedRun]
) -> None:
    prepared = prepare(repo)
    request = prepared.request.model_copy(update={"commit": "f" * 40})
    with api.client() as client:
        reply = client.post(
            "/runs", data={"request": request.model_dump_json()},
            files={"bundle": ("b", make_bundle(prepared.source))},
        )
    assert reply.status_code == 422
    assert reply.json() == {
        "detail": f"commit '{'f' * 40}' not found in the bundle for {prepared.request.repo}"
    }


def test_submit_of_a_malformed_request_is_422_with_one_line(api: Api) -> None:
    with api.client() as client:
        reply = client.post("/runs", data={"request": '{"file": 3}'})
    assert reply.status_code == 422
    detail = reply.json()["detail"]
    assert "\n" not in detail and detail.startswith("request.pipeline: Field required")


def test_submit_runs_the_committed_file_not_the_one_sent(
    api: Api, repo: Path, prepare: Callable[..., PreparedRun]
) -> None:
    prepared = prepare(repo)
    sent = prepared.request.pipeline
    only_build = sent.model_copy(update={"stages": sent.stages[:1]})  # not what is committed
    tampered = prepared.request.model_copy(update={"pipeline": only_build})
    with api.client() as client:
        reply = client.post(
            "/runs", data={"request": tampered.model_dump_json()},
            files={"bundle": ("b", make_bundle(prepared.source))},
        )
    assert reply.status_code == 202
    follow(api, "demo", 1)
    assert [s.name for s in api.service.run("demo", 1).stages] == ["build", "test"]


def test_cancel_through_the_api_ends_the_run_canceled(
    start_api: Callable[..., Api], prefect_api: str, repo: Path,
    prepare: Callable[..., PreparedRun],
) -> None:
    api = start_api(runner=FakeRunner(outcomes={"compile": FakeOutcome(seconds=60)}))
    submit(api, prepare(repo))
    backend = api.backend()
    deadline = time.monotonic() + 30
    while backend.job("demo", 1, "compile").status is not Status.RUNNING:
        assert time.monotonic() < deadline
        time.sleep(0.05)

    started = time.monotonic()
    with api.client() as client:
        reply = client.post("/runs/demo/1/cancel")
    events = follow(api, "demo", 1)

    assert reply.json() == {"pipeline": "demo", "run": 1, "status": "RUNNING"}
    assert time.monotonic() - started < 10
    assert events[-1]["status"] == "CANCELED"
    run = backend.run("demo", 1)
    assert run.status is Status.CANCELED
    assert {j.name: j.status for s in run.stages for j in s.jobs} == {
        "compile": Status.CANCELED, "unit": Status.CANCELED, "lint": Status.CANCELED,
    }
    assert backend.cancel("demo", 1) is Status.CANCELED  # already over: says so


def test_server_shutdown_cancels_runs_still_going(
    start_api: Callable[..., Api], prefect_api: str, repo: Path,
    prepare: Callable[..., PreparedRun],
) -> None:
    api = start_api(runner=FakeRunner(outcomes={"compile": FakeOutcome(seconds=60)}))
    submit(api, prepare(repo))
    deadline = time.monotonic() + 30
    while api.service.job("demo", 1, "compile").status is not Status.RUNNING:
        assert time.monotonic() < deadline
        time.sleep(0.05)

    api.stop()

    assert api.service.run("demo", 1).status is Status.CANCELED


@pytest.mark.parametrize("branch", ["main", None])
def test_submitted_branch_is_recorded(
    api: Api, repo: Path, prepare: Callable[..., PreparedRun], branch: str | None
) -> None:
    commit = git(repo, "rev-parse", "HEAD")
    prepared = prepare(repo, commit=commit) if branch is None else prepare(repo)
    submit(api, prepared)
    follow(api, "demo", 1)
    assert api.service.run("demo", 1).branch == prepared.request.branch


def test_artifacts_are_listed_and_downloaded(
    api: Api, repo: Path, tmp_path: Path, prepare: Callable[..., PreparedRun]
) -> None:
    submit(api, prepare(repo))
    follow(api, "demo", 1)
    backend = api.backend()

    with api.client() as client:
        listed = client.get("/runs/demo/1/artifacts").json()
        only = client.get("/runs/demo/1/artifacts", params={"job": "unit"}).json()
        reply = client.get("/runs/demo/1/artifacts/compile/README")
    backend.download_artifact("demo", 1, "compile", "README", tmp_path / "got" / "README")

    assert listed == [{
        "job": "compile", "path": "README", "size": 6,
        "sha256": "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03",
    }]
    assert only == []
    assert (reply.status_code, reply.content) == (200, b"hello\n")
    assert reply.headers["content-disposition"] == 'attachment; filename="README"'
    assert (tmp_path / "got" / "README").read_bytes() == b"hello\n"
    assert [a.path for a in backend.artifacts("demo", 1, job="compile")] == ["README"]
