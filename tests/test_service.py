"""``Service``'s seams without Prefect or Docker: start, duplicate, execute, settle, cancel.

A real ``Service`` over a SQLite store in a temporary ``CICD_HOME``, a ``FakeRunner``, and
``servicekit.plain_flow`` in place of the Prefect flow (the ``flow`` seam), on a real git
repository read by ``prepare_run`` as ``cicd run`` reads it.
"""

from __future__ import annotations

import inspect
import socket
import sqlite3
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from servicekit import make_repo, plain_flow

from backend.errors import UsageError
from backend.leftovers import DEAD_OWNER
from backend.recording import Event
from backend.requests import PreparedRun, prepare_run
from backend.runner.base import FakeOutcome
from backend.runner.fake import FakeRunner
from backend.runs import RunRef
from backend.schemas import Status
from backend.service import Service, Submission, request_key
from backend.settings import Settings
from backend.source.workspace import Source
from backend.store import Store
from backend.store.protocol import HistoryStore


def make_service(home: Path, runner: FakeRunner | None = None, flow=plain_flow) -> Service:
    return Service(Settings(home=home), runner=runner or FakeRunner(), flow=flow)


def prepared(tmp_path: Path, **options) -> PreparedRun:
    repo = tmp_path / "repo"
    if not repo.exists():
        make_repo(repo)
    return prepare_run(cwd=repo, cache_dir=tmp_path / "cache", **options)


def stored_error(home: Path) -> str | None:
    """The error column of the only run in the SQLite store under ``home``."""
    with sqlite3.connect(home / "cicd.db") as db:
        (value,) = db.execute("SELECT error FROM pipeline_runs").fetchone()
    return value


def job_statuses(service: Service, submission: Submission) -> dict[str, Status]:
    run = service.run(submission.pipeline, submission.number)
    return {job.name: job.status for stage in run.stages for job in stage.jobs}


# -- start ----------------------------------------------------------------------------------------


def test_start_records_a_pending_run_with_its_plan(tmp_path: Path) -> None:
    service = make_service(tmp_path / "home")
    run = prepared(tmp_path)

    submission = service.start(run.request, run.source)

    assert submission.ref == RunRef("demo", 1) and not submission.duplicate
    assert submission.git_dir == run.source.git_dir
    assert {stage: [j.name for j in jobs] for stage, jobs in submission.stage_order.items()} == {
        "build": ["compile"],
        "test": ["unit", "lint"],
    }
    record = service.run("demo", 1)
    assert record.status is Status.PENDING
    assert record.worker == service.worker
    assert job_statuses(service, submission) == dict.fromkeys(
        ["compile", "unit", "lint"], Status.PENDING
    )


def test_start_identical_open_run_is_a_duplicate(tmp_path: Path) -> None:
    service = make_service(tmp_path / "home")
    run = prepared(tmp_path)
    first = service.start(run.request, run.source)

    again = service.start(run.request, run.source)

    assert again.duplicate and (again.run_id, again.ref) == (first.run_id, first.ref)
    assert again.request is None  # nothing to execute: the first one runs
    with pytest.raises(ValueError, match="was not started here"):
        service.execute(again)


def test_start_forced_identical_run_is_a_new_run(tmp_path: Path) -> None:
    service = make_service(tmp_path / "home")
    run = prepared(tmp_path)
    service.start(run.request, run.source)
    forced = prepared(tmp_path, force=True)

    again = service.start(forced.request, forced.source)

    assert not again.duplicate and again.ref == RunRef("demo", 2)


def test_start_other_job_selection_is_another_run(tmp_path: Path) -> None:
    service = make_service(tmp_path / "home")
    first = prepared(tmp_path, select=["compile"])
    second = prepared(tmp_path, select=["unit"])

    a = service.start(first.request, first.source)
    b = service.start(second.request, second.source)

    assert (a.duplicate, b.duplicate, b.number) == (False, False, 2)


def test_start_secret_name_not_a_shell_name_records_nothing(tmp_path: Path) -> None:
    service = make_service(tmp_path / "home")
    run = prepared(tmp_path, secrets={"NOT-A-NAME": "x"})

    with pytest.raises(UsageError, match="NOT-A-NAME"):
        service.start(run.request, run.source)

    assert service.store.open_runs() == []


def test_request_key_same_for_url_with_and_without_credentials(tmp_path: Path) -> None:
    run = prepared(tmp_path)
    commit, git_dir = run.source.commit, run.source.git_dir
    raw = Source("https://bot:t0ken@git.example.com/team/app.git", "main", commit, git_dir)
    redacted = Source("https://bot:***@git.example.com/team/app.git", "main", commit, git_dir)
    other = Source("https://git.example.com/team/other.git", "main", commit, git_dir)

    assert request_key(run.request, raw) == request_key(run.request, redacted)
    assert request_key(run.request, raw) != request_key(run.request, other)


# -- execute --------------------------------------------------------------------------------------


def test_execute_runs_every_job_and_records_success(tmp_path: Path) -> None:
    runner = FakeRunner()
    service = make_service(tmp_path / "home", runner)
    run = prepared(tmp_path)
    submission = service.start(run.request, run.source)
    events: list[Event] = []

    status = service.execute(submission, sinks=[events.append])

    assert status is Status.SUCCESS
    assert service.run("demo", 1).status is Status.SUCCESS
    assert job_statuses(service, submission) == dict.fromkeys(
        ["compile", "unit", "lint"], Status.SUCCESS
    )
    assert [call.spec.job for call in runner.calls] == ["compile", "unit", "lint"]
    assert {call.spec.run_id for call in runner.calls} == {service.run_key(submission.run_id)}
    assert events[0].kind == "run_started" and events[-1].kind == "run_finished"
    assert not (service.settings.workspaces_dir / service.run_key(submission.run_id)).exists()


def test_execute_run_finished_handed_on_at_the_runs_end_before_the_flow_returns(
    tmp_path: Path,
) -> None:
    # what a flow does after recording the run's end (Prefect artifacts, its own end) is its
    # mirror: the client hears run_finished, with nothing of the run left, before that
    from backend.execution import end_run

    events: list[Event] = []
    seen_at_end: list[object] = []

    def flow(ctx) -> Status:
        status = plain_flow(ctx)  # ends the run with end_run, as the Prefect flow does
        seen_at_end.extend([[e.kind for e in events][-1], workspace.exists()])
        assert end_run(ctx, Status.FAILED) is status  # recorded once: the flow keeps it
        return status

    service = make_service(tmp_path / "home", flow=flow)
    run = prepared(tmp_path)
    submission = service.start(run.request, run.source)
    workspace = service.settings.workspaces_dir / service.run_key(submission.run_id)

    status = service.execute(submission, sinks=[events.append])

    assert status is Status.SUCCESS
    assert seen_at_end == ["run_finished", False]
    assert [e.kind for e in events].count("run_finished") == 1
    assert service.run("demo", 1).status is Status.SUCCESS


def test_execute_failing_job_fails_the_run_and_cancels_the_rest(tmp_path: Path) -> None:
    runner = FakeRunner(outcomes={"compile": FakeOutcome(exit_code=2)})
    service = make_service(tmp_path / "home", runner)
    run = prepared(tmp_path)
    submission = service.start(run.request, run.source)

    status = service.execute(submission)

    assert status is Status.FAILED
    assert job_statuses(service, submission) == {
        "compile": Status.FAILED,
        "unit": Status.CANCELED,
        "lint": Status.CANCELED,
    }


def test_execute_flow_raising_settles_the_run_failed_and_raises(tmp_path: Path) -> None:
    def broken(ctx) -> Status:
        raise RuntimeError("the flow broke")

    service = make_service(tmp_path / "home", flow=broken)
    run = prepared(tmp_path)
    submission = service.start(run.request, run.source)

    with pytest.raises(RuntimeError, match="the flow broke"):
        service.execute(submission)

    record = service.run("demo", 1)
    assert record.status is Status.FAILED and record.finished_at is not None
    assert set(job_statuses(service, submission).values()) == {Status.CANCELED}
    assert service.store.open_runs() == []


def test_execute_run_canceled_while_waiting_is_not_executed(tmp_path: Path) -> None:
    calls: list[str] = []

    def flow(ctx) -> Status:
        calls.append(ctx.key)
        return plain_flow(ctx)

    service = make_service(tmp_path / "home", flow=flow)
    run = prepared(tmp_path)
    submission = service.start(run.request, run.source)
    assert service.cancel("demo", 1) is Status.CANCELED

    status = service.execute(submission)

    assert (status, calls) == (Status.CANCELED, [])
    assert set(job_statuses(service, submission).values()) == {Status.CANCELED}


# -- cancel, settle, reconcile --------------------------------------------------------------------


def test_cancel_executing_run_stops_its_running_job(tmp_path: Path) -> None:
    runner = FakeRunner(outcomes={"compile": FakeOutcome(seconds=60)})
    service = make_service(tmp_path / "home", runner)
    run = prepared(tmp_path)
    submission = service.start(run.request, run.source)
    result: list[Status] = []
    thread = threading.Thread(target=lambda: result.append(service.execute(submission)))
    thread.start()
    deadline = time.monotonic() + 10
    while not runner.calls and time.monotonic() < deadline:
        time.sleep(0.01)
    assert runner.calls, "the job never started"

    began = time.monotonic()
    answer = service.cancel("demo", 1)
    thread.join(10)

    assert answer is Status.RUNNING  # asked: the executing thread settles it
    assert time.monotonic() - began < 5
    assert result == [Status.CANCELED]
    assert service.run("demo", 1).status is Status.CANCELED
    assert job_statuses(service, submission)["compile"] is Status.CANCELED


def test_cancel_finished_run_returns_its_status(tmp_path: Path) -> None:
    service = make_service(tmp_path / "home")
    run = prepared(tmp_path)
    service.execute(service.start(run.request, run.source))

    assert service.cancel("demo", 1) is Status.SUCCESS


def test_settle_open_run_once(tmp_path: Path) -> None:
    service = make_service(tmp_path / "home")
    run = prepared(tmp_path)
    submission = service.start(run.request, run.source)

    first = service.settle(submission, "the thread broke")
    second = service.settle(submission, "again")

    assert (first, second) == (True, False)
    assert service.run("demo", 1).status is Status.FAILED
    assert stored_error(service.settings.home) == "the thread broke"


def test_reconcile_run_of_a_dead_process_failed(tmp_path: Path) -> None:
    service = make_service(tmp_path / "home")
    run = prepared(tmp_path)
    submission = service.start(run.request, run.source)
    child = subprocess.Popen(["true"])
    child.wait()
    service.store.set_run(
        submission.run_id, status=Status.RUNNING, worker=f"{socket.gethostname()}/cli-{child.pid}"
    )
    workspace = service.settings.workspaces_dir / service.run_key(submission.run_id)
    workspace.mkdir(parents=True)

    settled = service.reconcile()

    assert settled == ["demo#1"]
    assert service.run("demo", 1).status is Status.FAILED
    assert not workspace.exists()
    assert stored_error(service.settings.home) == DEAD_OWNER
    assert service.reconcile() == []


def test_reconcile_run_of_this_live_process_kept(tmp_path: Path) -> None:
    service = make_service(tmp_path / "home")
    other = make_service(tmp_path / "home")  # another Service of this process, e.g. a server
    run = prepared(tmp_path)
    service.start(run.request, run.source)
    service.store.set_run(1, status=Status.RUNNING, worker=f"{socket.gethostname()}/cli-1")

    assert other.reconcile() == []  # pid 1 runs: its owner is alive
    assert service.run("demo", 1).status is Status.RUNNING


# -- the store's type -----------------------------------------------------------------------------


def test_store_has_every_method_of_history_store_with_compatible_parameters(
    tmp_path: Path,
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'cicd.db'}")
    problems = []
    for name, wanted in inspect.getmembers(HistoryStore, inspect.isfunction):
        if name.startswith("_"):
            continue
        have = getattr(store, name, None)
        if have is None:
            problems.append(f"{name}: missing")
            continue
        params = inspect.signature(have).parameters
        takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
        for param in list(inspect.signature(wanted).parameters.values())[1:]:
            if param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
                continue
            if param.name not in params and not takes_kwargs:
                problems.append(f"{name}: no parameter {param.name}")
            elif param.name in params and params[param.name].default != param.default:
                problems.append(f"{name}: {param.name} defaults differ")

    assert isinstance(store, HistoryStore)
    assert problems == []


# -- names ----------------------------------------------------------------------------------------


def test_run_ref_parse_round_trip() -> None:
    ref = RunRef.parse("deploy/staging#12")

    assert ref == RunRef("deploy/staging", 12)
    assert (ref.name, str(ref)) == ("deploy/staging#12", "deploy/staging#12")


@pytest.mark.parametrize("name", ["build", "build#", "#3", "build#x", "build#-1", ""])
def test_run_ref_parse_not_a_run_name_usage_error(name: str) -> None:
    with pytest.raises(UsageError, match="is not a run name: expected NAME#N"):
        RunRef.parse(name)


# -- interruptible: GitLab's auto-cancel of redundant pipelines --------------------------------

GITLAB_INTERRUPTIBLE = """
stages: [build, test]
build:
  stage: build
  interruptible: BUILD
  script: [echo build]
test:
  stage: test
  interruptible: true
  script: [echo test]
"""


def gitlab_repo(tmp_path: Path, build_interruptible: bool) -> Path:
    """A repository whose one commit holds a ``.gitlab-ci.yml`` (test is interruptible)."""
    repo = tmp_path / "gitlab"
    repo.mkdir()
    text = GITLAB_INTERRUPTIBLE.replace("BUILD", "true" if build_interruptible else "false")
    (repo / ".gitlab-ci.yml").write_text(text)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "HOME": str(repo),
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
           "PATH": "/usr/bin:/bin:/usr/local/bin"}  # fmt: skip
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "first"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True, env=env, capture_output=True)
    return repo


@pytest.mark.parametrize("build_interruptible", [True, False])
def test_start_newer_run_cancels_older_whose_started_jobs_are_interruptible(
    tmp_path: Path, build_interruptible: bool
) -> None:
    service = make_service(tmp_path / "home")
    repo = gitlab_repo(tmp_path, build_interruptible)
    one = prepare_run(cwd=repo, cache_dir=tmp_path / "cache")
    first = service.start(one.request, one.source)
    now = datetime.now(UTC)
    service.store.set_job(first.run_id, "build", status=Status.RUNNING, started_at=now)
    second = service.start(one.request.model_copy(update={"force": True}), one.source)
    old = service.run(first.pipeline, first.number).status
    # build has started: the older run goes only when build is interruptible too
    assert old is (Status.CANCELED if build_interruptible else Status.PENDING)
    assert service.run(second.pipeline, second.number).status is Status.PENDING


def test_start_newer_run_other_branch_or_no_interruptible_job_cancels_nothing(
    tmp_path: Path,
) -> None:
    service = make_service(tmp_path / "home")
    repo = gitlab_repo(tmp_path, build_interruptible=True)
    one = prepare_run(cwd=repo, cache_dir=tmp_path / "cache")
    first = service.start(one.request, one.source)
    other_branch = one.request.model_copy(update={"force": True, "branch": "feature"})
    service.start(other_branch, one.source)
    assert service.run(first.pipeline, first.number).status is Status.PENDING
    plain = one.request.pipeline.model_copy(update={"stages": [
        stage.model_copy(update={"jobs": [j.model_copy(update={"interruptible": False})
                                          for j in stage.jobs]})
        for stage in one.request.pipeline.stages]})  # fmt: skip
    service.start(one.request.model_copy(update={"force": True, "pipeline": plain}), one.source)
    assert service.run(first.pipeline, first.number).status is Status.PENDING
