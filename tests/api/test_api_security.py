"""Web pages cannot drive the API; followers cannot exhaust it; crash errors keep secrets hidden."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from apikit import TOKEN, Api, follow, submit
from prefectkit import job_task_running

from backend.api import create_app
from backend.requests import PreparedRun
from backend.runner.base import FakeOutcome
from backend.runner.fake import FakeRunner
from backend.schemas import Status
from backend.service import Service
from backend.settings import Settings
from backend.source.bundles import make_bundle

EVIL = "http://evil.example"


def wait_for(check: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
    """Poll ``check`` until it holds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def port_of(api: Api) -> int:
    """The port the test server listens on."""
    return int(api.url.rsplit(":", 1)[1])


# -- web pages --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": EVIL},
        {"Origin": "null"},
        {"Origin": "http://localhost:3000", "Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "cross-site"},
    ],
)
def test_submit_from_a_web_page_is_401_and_starts_nothing(
    api: Api, repo: Path, prepare: Callable[..., PreparedRun], headers: dict[str, str]
) -> None:
    # a "simple" cross-site request: a multipart form POST, no preflight, no token
    prepared = prepare(repo)
    with api.client() as client:
        reply = client.post(
            "/runs", headers=headers, data={"request": prepared.request.model_dump_json()},
            files={"bundle": ("b", make_bundle(prepared.source), "application/octet-stream")},
        )
    assert reply.status_code == 401
    detail = reply.json()["detail"]
    assert detail.startswith("requests from web pages are refused (")
    assert "\n" not in detail
    assert api.service.pipelines().pipelines == []
    assert api.runner.calls == []  # type: ignore[attr-defined]


def test_read_from_a_web_page_is_401_even_with_the_token(start_api: Callable[..., Api]) -> None:
    api = start_api(token=TOKEN)
    with api.client(TOKEN) as client:
        assert client.get("/pipelines", headers={"Origin": EVIL}).status_code == 401
        assert client.post("/runs/p/1/cancel", headers={"Origin": EVIL}).status_code == 401


def test_request_from_the_servers_own_origin_is_accepted(api: Api) -> None:
    # the API's own /docs page calls it: same scheme, host and port
    with api.client() as client:
        headers = {"Origin": api.url, "Sec-Fetch-Site": "same-origin"}
        reply = client.get("/pipelines", headers=headers)
    assert reply.status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.2:{port}"])
def test_foreign_host_is_400_with_one_line(api: Api, host: str) -> None:
    # DNS rebinding: a page whose name now resolves to 127.0.0.1 sends its own Host
    shown = host.format(port=port_of(api))
    with api.client() as client:
        reply = client.get("/pipelines", headers={"Host": shown})
        health = client.get("/health", headers={"Host": shown})
    assert reply.status_code == 400
    assert reply.json() == {
        "detail": f"Host '{shown}' is not a name this server answers to: "
        "add it to CICD_ALLOWED_HOSTS on the server"
    }
    assert health.status_code == 400


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "localhost"])
def test_loopback_host_and_the_token_are_accepted(
    start_api: Callable[..., Api], host: str
) -> None:
    api = start_api(token=TOKEN)
    with api.client(TOKEN) as client:
        reply = client.get("/pipelines", headers={"Host": host.format(port=port_of(api))})
    assert reply.status_code == 200
    assert reply.json() == {"pipelines": [], "next": None}


def test_allowed_hosts_setting_adds_names(start_api: Callable[..., Api]) -> None:
    api = start_api(allowed_hosts="ci.example.com, *.corp.example")
    with api.client() as client:
        codes = [
            client.get("/pipelines", headers={"Host": host}).status_code
            for host in ("ci.example.com", "build.corp.example:8765", "ci.example.org")
        ]
    assert codes == [200, 200, 400]


def test_host_guard_of_a_non_loopback_bind_takes_its_address_and_the_connections(
    tmp_path: Path,
) -> None:
    # bound (as far as the app knows) to 192.0.2.1; the connection arrives on 127.0.0.2
    settings = Settings(home=tmp_path / "home", api_token=TOKEN)
    app = create_app(Service(settings, runner=FakeRunner(), mode="server"), settings,
                     host="192.0.2.1")
    sock = socket.socket()
    sock.bind(("127.0.0.2", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, what="the server")
        with httpx.Client(base_url=f"http://127.0.0.2:{port}/api/v1", timeout=10,
                          headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            codes = {
                host: client.get("/pipelines", headers={"Host": host}).status_code
                for host in (f"192.0.2.1:{port}", f"127.0.0.2:{port}", "localhost", "evil.example")
            }
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
    assert codes == {
        f"192.0.2.1:{port}": 200, f"127.0.0.2:{port}": 200, "localhost": 400, "evil.example": 400
    }


# -- followers ---------------------------------------------------------------------------------


def _attach(api: Api, path: str) -> tuple[socket.socket, int]:
    """Open a raw HTTP/1.1 request on ``path`` (no thread of ours reads it); its status."""
    sock = socket.create_connection(("127.0.0.1", port_of(api)), timeout=10)
    sock.sendall(f"GET /api/v1{path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    head = b""
    while b"\r\n" not in head:
        data = sock.recv(1)
        assert data, "the server closed the connection"
        head += data
    return sock, int(head.split()[1])


def _health_seconds(api: Api) -> float:
    started = time.monotonic()
    with api.client() as client:
        reply = client.get("/health", timeout=5)
    assert reply.status_code in (200, 503)
    return time.monotonic() - started


def test_followers_of_a_quiet_job_neither_freeze_the_api_nor_hold_threads(
    start_api: Callable[..., Api], prefect_api: str, repo: Path,
    prepare: Callable[..., PreparedRun],
) -> None:
    runner = FakeRunner(outcomes={"compile": FakeOutcome(lines=["started"], seconds=600)})
    api = start_api(runner=runner, max_followers=64)
    submit(api, prepare(repo))
    wait_for(lambda: api.service.job("demo", 1, "compile").status is Status.RUNNING)
    # the job starts before its flow (backend/headstart.py): the baseline is taken once the
    # flow's task runs it, with every thread of Prefect's that it took
    wait_for(lambda: all(f for _, _, _, f in api.service.store.open_runs()), what="its flow run")
    flow_run = next(f for _, _, _, f in api.service.store.open_runs())
    wait_for(lambda: job_task_running(str(flow_run), "compile"), what="the job's Prefect task")
    _health_seconds(api)
    baseline = threading.active_count()

    paths = ["/runs/demo/1/jobs/compile/log?follow=true", "/runs/demo/1/events"]
    attached = [_attach(api, paths[i % 2]) for i in range(100)]
    try:
        statuses = [code for _, code in attached]
        assert statuses.count(200) == 64 and statuses.count(429) == 36
        assert _health_seconds(api) < 1.0
        assert api.app_state("followers").count == 64
    finally:
        for sock, _ in attached:
            sock.close()
    wait_for(lambda: api.app_state("followers").count == 0, what="followers to end")
    # idle worker threads of the short calls are let go after 10 s, at the next call
    time.sleep(10.5)
    _health_seconds(api)
    wait_for(lambda: threading.active_count() <= baseline, timeout=5, what="threads to go")


def test_follower_beyond_the_cap_is_429_with_one_line(
    start_api: Callable[..., Api], prefect_api: str, repo: Path,
    prepare: Callable[..., PreparedRun],
) -> None:
    runner = FakeRunner(outcomes={"compile": FakeOutcome(lines=["started"], seconds=600)})
    api = start_api(runner=runner, max_followers=1)
    submit(api, prepare(repo))
    wait_for(lambda: api.service.job("demo", 1, "compile").status is Status.RUNNING)
    first, code = _attach(api, "/runs/demo/1/events")
    try:
        assert code == 200
        with api.client() as client:
            reply = client.get("/runs/demo/1/jobs/compile/log", params={"follow": "true"})
            plain = client.get("/runs/demo/1/jobs/compile/log")  # not following: no place taken
    finally:
        first.close()
    assert reply.status_code == 429
    assert reply.headers["retry-after"] == "5"
    assert reply.json() == {
        "detail": "too many log and event streams open (1, CICD_MAX_FOLLOWERS): "
        "try again when some have ended"
    }
    assert plain.status_code == 200


def test_log_follow_streams_new_lines_and_ends_with_the_job(
    start_api: Callable[..., Api], prefect_api: str, repo: Path,
    prepare: Callable[..., PreparedRun],
) -> None:
    runner = FakeRunner(outcomes={"compile": FakeOutcome(lines=["one", "two"], seconds=1.5)})
    api = start_api(runner=runner)
    submit(api, prepare(repo))
    path = "/runs/demo/1/jobs/compile/log"
    with api.client() as client, client.stream("GET", path, params={"follow": "true"}) as reply:
        lines = list(reply.iter_lines())
    assert [line.split(" ", 1)[1] for line in lines] == [
        "one", "two", "cicd: collected 1 artifact file(s)"
    ]
    assert api.service.job("demo", 1, "compile").status is Status.SUCCESS


# -- crash errors ------------------------------------------------------------------------------

SECRET = "pa55-w0rd-of-the-run"


class CrashingService(Service):
    """A service whose execution breaks with an error that quotes the run's secret."""

    def execute(self, submission: Any, sinks: Any = None) -> Status:
        """Fail at once, quoting the secret."""
        raise RuntimeError(f"cannot log in with {submission.request.secrets['TOKEN']}")


def test_launcher_masks_secrets_in_a_crash_error(
    start_api: Callable[..., Api], repo: Path, prepare: Callable[..., PreparedRun]
) -> None:
    api = start_api(service_class=CrashingService)
    submit(api, prepare(repo, secrets={"TOKEN": SECRET}))
    events = follow(api, "demo", 1)
    assert events[-1]["kind"] == "run_finished"
    assert events[-1]["text"] == "cannot log in with ****"
    assert api.service.run("demo", 1).status is Status.FAILED
    stored = [p for p in api.settings.home.rglob("*") if p.is_file() and SECRET.encode() in
              p.read_bytes()]
    assert stored == []


def test_health_needs_no_token_and_ignores_origin(start_api: Callable[..., Api]) -> None:
    api = start_api(token=TOKEN)
    with httpx.Client(base_url=api.api, timeout=10) as client:
        assert client.get("/health", headers={"Origin": EVIL}).status_code in (200, 503)
