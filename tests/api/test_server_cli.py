"""``cicd server`` and ``cicd run --server`` as a user runs them, and the real Docker runner."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from apikit import Api, follow, submit
from prockit import free_port, stop_group
from rich.console import Console

from backend.errors import ServerError
from backend.remote import RemoteBackend
from backend.requests import PreparedRun
from backend.runner.base import JobResult, JobSpec, LineSink, Runner
from backend.schemas import Status
from backend.settings import Settings
from cicd_cli.remote import run_remote

CICD = Path(sys.executable).with_name("cicd")
SLEEPY = """\
pipeline:
  name: sleepy
  image: cicd-busybox:latest
jobs:
  - name: nap
    stage: build
    script: [echo napping, sleep 60]
"""


def docker_ids(label: str) -> list[str]:
    """Ids of every container (any state) carrying ``label``."""
    done = subprocess.run(
        ["docker", "ps", "-a", "-q", "--filter", f"label={label}"],
        capture_output=True, text=True, check=True,
    )
    return done.stdout.split()


class KeyRecorder:
    """A runner wrapper remembering the run keys (container labels) of the jobs it ran."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.keys: set[str] = set()

    def __getattr__(self, name: str) -> object:
        return getattr(self.runner, name)

    def run_job(self, spec: JobSpec, on_line: LineSink, cancel: threading.Event) -> JobResult:
        """Remember the key, run the job."""
        self.keys.add(spec.run_id)
        return self.runner.run_job(spec, on_line, cancel)


def wait_for(check: Callable[[], bool], timeout: float = 60, what: str = "condition") -> None:
    """Poll ``check`` until it holds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_server_refuses_all_interfaces_without_a_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CICD_API_TOKEN"}
    env["CICD_HOME"] = str(tmp_path / "home")
    done = subprocess.run(
        [str(CICD), "server", "--host", "0.0.0.0"], capture_output=True, text=True, env=env,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr == (
        "error: refusing to listen on 0.0.0.0 without an API token: set CICD_API_TOKEN "
        "(or listen on 127.0.0.1)\n"
    )
    assert not (tmp_path / "home").exists()  # refused before touching anything


def start_server(
    env: dict[str, str], port: int, *args: str
) -> subprocess.Popen[bytes]:
    """``cicd server --port PORT`` in its own process group, once its health route answers."""
    proc = subprocess.Popen(
        [str(CICD), "server", "--port", str(port), *args], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, start_new_session=True,
    )
    backend = RemoteBackend(f"http://127.0.0.1:{port}")

    def healthy() -> bool:
        if proc.poll() is not None:
            output = proc.stdout.read() if proc.stdout else b""
            raise AssertionError(f"cicd server exited: {output!r}")
        try:
            return backend.health()["status"] in ("ok", "degraded")
        except ServerError:
            return False

    try:
        wait_for(healthy, what="server health")
    except BaseException:
        stop_group(proc, signal.SIGKILL)
        raise
    return proc


def test_server_without_token_generates_one_and_local_cli_uses_it(
    prefect_api: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k not in ("CICD_API_TOKEN", "CICD_SERVER")}
    env["CICD_HOME"] = str(home)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(env, port)
    try:
        token_file = home / "server" / "token"
        assert token_file.stat().st_mode & 0o777 == 0o600
        assert (home / "server").stat().st_mode & 0o777 == 0o700
        token = token_file.read_text().strip()
        assert len(token) >= 40

        anonymous = httpx.post(f"{url}/api/v1/runs", data={"request": "{}"}, timeout=10)
        wrong = httpx.get(
            f"{url}/api/v1/pipelines", headers={"Authorization": "Bearer nope"}, timeout=10
        )
        assert (anonymous.status_code, wrong.status_code) == (401, 401)

        report = subprocess.run(
            [str(CICD), "report", "--server", url], capture_output=True, text=True, env=env,
            timeout=60,
        )
        assert (report.returncode, report.stdout, report.stderr) == (0, "no runs yet\n", "")

        other = {**env, "CICD_HOME": str(tmp_path / "other-home")}  # has no token file
        refused = subprocess.run(
            [str(CICD), "report", "--server", url], capture_output=True, text=True, env=other,
            timeout=60,
        )
        assert refused.returncode == 1
        assert refused.stderr == (
            f"error: cicd server at {url} refused the request: missing or wrong API token: "
            "send 'Authorization: Bearer <CICD_API_TOKEN>'\n"
        )
    finally:
        output = stop_group(proc, signal.SIGINT)
    assert token.encode() not in output  # printed nowhere, only kept in the file
    assert f"generated in {token_file}".encode() in output

    again = start_server(env, port)  # a restarted server keeps the token its clients know
    try:
        assert token_file.read_text().strip() == token
    finally:
        stop_group(again, signal.SIGINT)


def test_server_all_interfaces_with_a_token_answers_by_machine_name(
    prefect_api: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k != "CICD_SERVER"}
    env.update(CICD_HOME=str(home), CICD_API_TOKEN="team-token-1234567890")
    port = free_port()
    proc = start_server(env, port, "--host", "0.0.0.0")
    try:
        url = f"http://127.0.0.1:{port}/api/v1/pipelines"
        named = {"Host": f"{socket.gethostname()}:{port}"}  # how another machine reaches it
        anonymous = httpx.get(url, headers=named, timeout=10)
        allowed = httpx.get(
            url, headers={**named, "Authorization": "Bearer team-token-1234567890"}, timeout=10
        )
        assert (anonymous.status_code, allowed.status_code) == (401, 200), allowed.text
        assert not (home / "server" / "token").exists()  # the operator's token, none generated
    finally:
        output = stop_group(proc, signal.SIGINT)
    assert b"token       required (CICD_API_TOKEN)" in output


def test_cicd_run_server_prints_like_embedded_and_exits_with_the_run(
    api: Api, repo: Path
) -> None:
    env = {**os.environ, "CICD_HOME": str(repo.parent / "client-home")}
    done = subprocess.run(
        [str(CICD), "run", "--server", api.url], cwd=repo, capture_output=True, text=True,
        env=env, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    sha = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert lines[0] == f"demo#1  .pipelines/pipeline.yaml at {sha[:12]} on main"
    assert "compile | compiling" in lines
    assert re.fullmatch(r"demo#1 SUCCESS in \d+\.\d\ds", lines[-1])


def test_run_remote_duplicate_says_so_and_interrupt_cancels(
    start_api: Callable[..., Api], prefect_api: str, repo: Path,
    prepare: Callable[..., PreparedRun],
) -> None:
    from backend.runner.base import FakeOutcome
    from backend.runner.fake import FakeRunner

    api = start_api(runner=FakeRunner(outcomes={"compile": FakeOutcome(seconds=60)}))
    prepared = prepare(repo)
    submit(api, prepared)
    console = Console(record=True, width=200)

    code = run_remote(api.url, Settings(home=repo.parent / "c"), prepared, console)

    short = prepared.request.commit[:12]
    assert code == 0
    assert console.export_text() == (
        f"demo#1 is already running (commit {short} on main); use --force to start another\n"
    )
    def interrupt_once_running() -> None:  # run_remote's handler is set before a job starts
        wait_for(lambda: api.service.run("demo", 2).status is Status.RUNNING
                 if any(r.run == 2 for r in api.service.runs("demo").runs) else False)
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=interrupt_once_running, daemon=True).start()
    forced = prepare(repo, force=True)
    code = run_remote(api.url, Settings(home=repo.parent / "c"), forced, console)
    assert code == 130
    assert follow(api, "demo", 2)[-1]["status"] == "CANCELED"


def test_remote_events_of_a_dead_server_is_one_line(repo: Path) -> None:
    backend = RemoteBackend(f"http://127.0.0.1:{free_port()}")
    message = r"^cannot reach cicd server at http://127\.0\.0\.1:\d+: connection refused$"
    with pytest.raises(ServerError, match=message):
        list(backend.events("demo", 1))


@pytest.mark.docker
def test_cancel_through_the_api_removes_the_docker_container(
    start_api: Callable[..., Api], prefect_api: str, docker_runner: Runner, tmp_path: Path,
    prepare: Callable[..., PreparedRun],
) -> None:
    from apikit import make_repo

    runner = KeyRecorder(docker_runner)
    api = start_api(runner=runner)
    submit(api, prepare(make_repo(tmp_path / "sleepy", SLEEPY)))
    backend = api.backend()
    wait_for(lambda: backend.job("sleepy", 1, "nap").status is Status.RUNNING, what="job start")
    (key,) = runner.keys
    wait_for(lambda: bool(docker_ids(f"cicd.run={key}")), what="container")

    assert backend.cancel("sleepy", 1) is Status.RUNNING
    events = list(backend.events("sleepy", 1))

    assert events[-1].status is Status.CANCELED
    assert backend.run("sleepy", 1).status is Status.CANCELED
    assert docker_ids(f"cicd.run={key}") == []


@pytest.mark.docker
def test_server_killed_mid_run_is_settled_and_cleaned_at_restart(
    prefect_api: str, tmp_path: Path, prepare: Callable[..., PreparedRun]
) -> None:
    from apikit import make_repo

    home = tmp_path / "home"
    env = {**os.environ, "CICD_HOME": str(home)}
    env.pop("CICD_API_TOKEN", None)
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [str(CICD), "server", "--port", str(port)], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        backend = RemoteBackend(url)

        def healthy() -> bool:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else b""
            try:
                return backend.health()["status"] == "ok"
            except ServerError:
                return False

        wait_for(healthy, what="server health")
        return proc

    first = start()
    try:
        backend = RemoteBackend(url, token=(home / "server" / "token").read_text().strip())
        from backend.source.bundles import make_bundle

        prepared = prepare(make_repo(tmp_path / "sleepy", SLEEPY))
        backend.submit(prepared, make_bundle(prepared.source))
        wait_for(lambda: backend.job("sleepy", 1, "nap").status is Status.RUNNING, what="job")
        workspaces = home / "workspaces"
        (key,) = [p.name for p in workspaces.iterdir()]  # a run's workspace is named by its key
        wait_for(lambda: bool(docker_ids(f"cicd.run={key}")), what="container")
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    second = start()
    try:
        run = backend.run("sleepy", 1)
        assert run.status is Status.FAILED
        assert {j.name: j.status for s in run.stages for j in s.jobs} == {"nap": Status.CANCELED}
        assert docker_ids(f"cicd.run={key}") == []
        assert not (workspaces / key).exists()
    finally:
        output = stop_group(second, signal.SIGINT)
    assert b"settled 1 run(s) a stopped server left running: sleepy#1" in output


def test_server_half_open_connections_are_closed_and_health_still_answers(
    prefect_api: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("CICD_API_TOKEN", "CICD_SERVER")}
    env.update(CICD_HOME=str(tmp_path / "home"), CICD_HEAD_TIMEOUT="2")
    port = free_port()
    proc = start_server(env, port)
    stalled: list[socket.socket] = []
    try:
        for number in range(300):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            if number % 10:  # and every tenth one sends nothing at all
                sock.sendall(b"GET /api/v1/hea")
            stalled.append(sock)
        opened = time.monotonic()

        started = time.monotonic()
        reply = httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=5)
        assert reply.status_code == 200, reply.text
        assert time.monotonic() - started < 1.0

        for sock in stalled:  # held open meanwhile, not refused
            sock.setblocking(False)
            with pytest.raises(BlockingIOError):
                sock.recv(1)
        for sock in stalled:
            sock.settimeout(max(0.1, opened + 2 + 3 - time.monotonic()))
            assert sock.recv(1) == b"", "a stalled connection was answered"
        closed_after = time.monotonic() - opened
        assert closed_after < 5, f"stalled connections closed only after {closed_after:.1f}s"
    finally:
        for sock in stalled:
            sock.close()
        stop_group(proc, signal.SIGINT)
