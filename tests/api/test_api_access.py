"""Health, the bearer token, 404s and one-line errors, OpenAPI, RemoteBackend's errors."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from apikit import TOKEN, Api, follow, submit

from backend.errors import NotFound, ServerError
from backend.remote import RemoteBackend
from backend.requests import PreparedRun


def closed_port_url() -> str:
    """A loopback URL nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_health_is_ok_when_store_and_prefect_answer(api: Api, prefect_api: str) -> None:
    with api.client() as client:
        reply = client.get("/health")
    assert reply.status_code == 200
    body = reply.json()
    assert body["status"] == "ok"
    assert body["store"] == {"ok": True, "detail": None}
    assert body["prefect"] == {"ok": True, "detail": None}
    assert body["prefect_url"] == prefect_api


def test_health_is_503_degraded_when_prefect_is_down(start_api: Callable[..., Api]) -> None:
    down = closed_port_url() + "/api"
    api = start_api(prefect_url=down)
    with api.client() as client:
        reply = client.get("/health")
    assert reply.status_code == 503
    body = reply.json()
    assert (body["status"], body["store"]["ok"], body["prefect"]["ok"]) == ("degraded", True, False)
    assert body["prefect"]["detail"].startswith(f"cannot reach {down}: ")


def test_health_follows_prefect_going_down_and_up_again(start_api: Callable[..., Api]) -> None:
    # the route keeps one HTTP client for its Prefect probes: it must not keep the answers
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/api/health" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    def serve(port: int = 0) -> http.server.ThreadingHTTPServer:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Health)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    prefect = serve()
    port = prefect.server_address[1]
    api = start_api(prefect_url=f"http://127.0.0.1:{port}/api")
    with api.client() as client:
        statuses = [client.get("/health").status_code]
        prefect.shutdown()
        prefect.server_close()
        statuses.append(client.get("/health").status_code)
        prefect = serve(port)
        try:
            statuses.append(client.get("/health").status_code)
        finally:
            prefect.shutdown()
            prefect.server_close()
    assert statuses == [200, 503, 200]


def test_health_needs_no_token(start_api: Callable[..., Api], prefect_api: str) -> None:
    api = start_api(token=TOKEN)
    with api.client() as client:
        assert client.get("/health").status_code == 200


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x"])
def test_auth_without_the_right_token_is_401(
    start_api: Callable[..., Api], header: str | None
) -> None:
    api = start_api(token=TOKEN)
    with api.client() as client:
        reply = client.get("/pipelines", headers={"Authorization": header} if header else {})
    assert reply.status_code == 401
    assert reply.headers["www-authenticate"] == "Bearer"
    assert reply.json() == {
        "detail": "missing or wrong API token: send 'Authorization: Bearer <CICD_API_TOKEN>'"
    }


def test_auth_token_is_compared_in_constant_time(
    start_api: Callable[..., Api], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a == comparison returns at the first differing byte, so its timing leaks the token
    import backend.api.deps as deps

    compared: list[tuple[bytes, bytes]] = []
    real = deps.hmac.compare_digest

    def spy(given: bytes, expected: bytes) -> bool:
        compared.append((given, expected))
        return real(given, expected)

    monkeypatch.setattr(deps.hmac, "compare_digest", spy)
    api = start_api(token=TOKEN)
    with api.client("x" + TOKEN[1:]) as client:
        assert client.get("/pipelines").status_code == 401
    with api.client(TOKEN) as client:
        assert client.get("/pipelines").status_code == 200
    assert compared == [(("x" + TOKEN[1:]).encode(), TOKEN.encode()), (TOKEN.encode(),) * 2]


def test_auth_with_the_token_is_accepted(start_api: Callable[..., Api]) -> None:
    api = start_api(token=TOKEN)
    with api.client(TOKEN) as client:
        assert client.get("/pipelines").json() == {"pipelines": [], "next": None}
    assert api.backend(TOKEN).pipelines().pipelines == []


def test_auth_protects_every_route_but_health(start_api: Callable[..., Api]) -> None:
    api = start_api(token=TOKEN)
    paths = [
        ("GET", "/pipelines"), ("GET", "/pipelines/p/runs"), ("GET", "/runs?pipeline=p"),
        ("POST", "/runs"), ("GET", "/runs/p/1"), ("GET", "/runs/p/1/stages/s"),
        ("GET", "/runs/p/1/jobs/j"), ("GET", "/runs/p/1/jobs/j/log"), ("GET", "/runs/p/1/events"),
        ("POST", "/runs/p/1/cancel"), ("GET", "/runs/p/1/artifacts"),
        ("GET", "/runs/p/1/artifacts/j/a.txt"),
    ]
    with api.client() as client:
        codes = {path: client.request(method, path).status_code for method, path in paths}
    assert set(codes.values()) == {401}, codes


def test_remote_backend_without_token_says_the_server_refused(
    start_api: Callable[..., Api],
) -> None:
    api = start_api(token=TOKEN)
    with pytest.raises(ServerError) as caught:
        api.backend().pipelines()
    assert str(caught.value) == (
        f"cicd server at {api.url} refused the request: "
        "missing or wrong API token: send 'Authorization: Bearer <CICD_API_TOKEN>'"
    )


def test_remote_backend_unreachable_server_is_one_line() -> None:
    url = closed_port_url()
    with pytest.raises(ServerError) as caught:
        RemoteBackend(url).pipelines()
    assert str(caught.value) == f"cannot reach cicd server at {url}: connection refused"


NOT_FOUND = [
    ("/pipelines/nope/runs", "no runs of pipeline 'nope'"),
    ("/runs?pipeline=nope", "no runs of pipeline 'nope'"),
    ("/runs/nope/1", "no run 'nope#1'"),
    ("/runs/demo/9", "no run 'demo#9'"),
    ("/runs/demo/1/stages/nope", "no stage 'nope' in run 'demo#1'"),
    ("/runs/demo/1/jobs/nope", "no job 'nope' in run 'demo#1'"),
    ("/runs/demo/1/jobs/nope/log", "no job 'nope' in run 'demo#1'"),
    ("/runs/demo/9/events", "no run 'demo#9'"),
    ("/runs/demo/1/artifacts?job=nope", "no job 'nope' in run 'demo#1'"),
    ("/runs/demo/1/artifacts/compile/nope.txt",
     "no artifact 'nope.txt' of job 'compile' in run 'demo#1'"),
    ("/runs/demo/1/artifacts/compile/..%2F..%2Fetc%2Fpasswd",
     "no artifact '../../etc/passwd' of job 'compile' in run 'demo#1'"),
]


def test_unknown_things_are_404_with_one_line(
    api: Api, repo: Path, prepare: Callable[..., PreparedRun]
) -> None:
    submit(api, prepare(repo))
    follow(api, "demo", 1)  # one real run, then every unknown thing around it
    with api.client() as client:
        replies = {path: client.get(path) for path, _ in NOT_FOUND}
    got = {path: (reply.status_code, reply.json()) for path, reply in replies.items()}
    assert got == {path: (404, {"detail": detail}) for path, detail in NOT_FOUND}


def test_remote_backend_raises_not_found_like_the_local_one(
    api: Api, repo: Path, prepare: Callable[..., PreparedRun]
) -> None:
    submit(api, prepare(repo))
    follow(api, "demo", 1)
    backend = api.backend()
    for call, message in [
        (lambda: backend.run("demo", 9), "no run 'demo#9'"),
        (lambda: backend.stage("demo", 1, "x"), "no stage 'x' in run 'demo#1'"),
        (lambda: backend.job("demo", 1, "x"), "no job 'x' in run 'demo#1'"),
        (lambda: list(backend.log("demo", 1, "x")), "no job 'x' in run 'demo#1'"),
        (lambda: backend.cancel("demo", 9), "no run 'demo#9'"),
    ]:
        with pytest.raises(NotFound) as caught:
            call()
        assert str(caught.value) == message


def test_bad_path_parameter_is_422_with_one_line(api: Api) -> None:
    with api.client() as client:
        reply = client.get("/runs/demo/one")
    assert reply.status_code == 422
    assert reply.json() == {
        "detail": "path.number: Input should be a valid integer, "
        "unable to parse string as an integer"
    }


def test_openapi_documents_every_route_with_its_docstring(api: Api) -> None:
    with api.client() as client:
        document = client.get(api.url + "/openapi.json").json()
    operations = [op for path in document["paths"].values() for op in path.values()]
    # 13, the ?job= forms of job, log and artifact download, the two webhooks, flaky tests,
    # the four routes of team mode's workers and retry
    assert len(operations) == 24
    assert all(op.get("description") for op in operations)
    assert all(path.startswith("/api/v1/") for path in document["paths"])
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
