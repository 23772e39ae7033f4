"""Limits of a server: bundle and request sizes (413), runs at once and queued (429)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from apikit import Api, follow, submit

from backend.errors import ServerError
from backend.requests import PreparedRun
from backend.runner.base import FakeOutcome
from backend.runner.fake import FakeRunner
from backend.schemas import Status
from backend.source.bundles import make_bundle

LIMIT = 4096


def uploads(api: Api) -> list[Path]:
    """Files left in the server's upload folder."""
    folder = api.settings.home / "uploads"
    return sorted(folder.iterdir()) if folder.exists() else []


def test_submit_of_a_bundle_over_the_limit_is_413_and_records_nothing(
    start_api: Callable[..., Api], repo: Path, prepare: Callable[..., PreparedRun]
) -> None:
    api = start_api(max_upload_bytes=LIMIT)
    prepared = prepare(repo)
    bundle = make_bundle(prepared.source) + b"\0" * (LIMIT * 4)
    with api.client() as client:
        reply = client.post(
            "/runs", data={"request": prepared.request.model_dump_json()},
            files={"bundle": ("b", bundle)},
        )
    assert reply.status_code == 413
    assert reply.json() == {"detail": f"the bundle is larger than the server takes ({LIMIT} bytes)"}
    assert api.service.pipelines().pipelines == []
    assert uploads(api) == []


def test_submit_streamed_without_length_over_the_limit_is_413(
    start_api: Callable[..., Api], repo: Path, prepare: Callable[..., PreparedRun]
) -> None:
    api = start_api(max_upload_bytes=LIMIT)
    prepared = prepare(repo)
    boundary = "x-cicd-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="request"\r\n\r\n'
        f"{prepared.request.model_dump_json()}\r\n"
        f'--{boundary}\r\nContent-Disposition: form-data; name="bundle"; filename="b"\r\n\r\n'
    ).encode()

    def body() -> Iterator[bytes]:  # chunked: the server only learns the size by reading
        yield head
        for _ in range(64):
            yield b"\0" * 1024

    with api.client() as client:
        reply = client.post(
            "/runs", content=body(),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
    assert reply.status_code == 413
    assert reply.json() == {"detail": f"the bundle is larger than the server takes ({LIMIT} bytes)"}
    assert api.service.pipelines().pipelines == []
    assert uploads(api) == []


def test_submit_with_a_huge_content_length_is_413_before_reading(
    start_api: Callable[..., Api],
) -> None:
    api = start_api(max_upload_bytes=LIMIT)
    port = int(api.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        # headers only: the 300 MB never come, the answer must not wait for them
        sock.sendall(
            b"POST /api/v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 300000000\r\n\r\n"
        )
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):  # head and body may
            chunk = sock.recv(65536)  # come in two packets
            if not chunk:
                break
            answer += chunk
    answer = answer.decode()
    assert answer.startswith("HTTP/1.1 413 ")
    assert '{"detail":"the submission is larger than the server takes (' in answer


def test_submit_of_a_request_field_over_10_mib_is_413(
    start_api: Callable[..., Api],
) -> None:
    api = start_api()
    with api.client() as client:
        reply = client.post(
            "/runs", data={"request": "x" * (10 * 1024 * 1024 + 1)}, files={"bundle": ("b", b"")}
        )
    assert reply.status_code == 413
    assert reply.json() == {
        "detail": "the 'request' field is larger than the server takes (10485760 bytes)"
    }


@pytest.mark.parametrize(
    ("files", "detail"),
    [
        ({"other": ("o", b"x")}, "unexpected form part 'other': send the field 'request' and "
                                 "the file 'bundle' only"),
        ({"bundle": ("b", b"x"), "request": ("r", b"{}")}, "unexpected form part 'request': "
                                 "send the field 'request' and the file 'bundle' only"),
    ],
)
def test_submit_with_unexpected_parts_is_400_with_one_line(
    start_api: Callable[..., Api], files: dict[str, tuple[str, bytes]], detail: str
) -> None:
    api = start_api()
    with api.client() as client:
        reply = client.post("/runs", data={"request": "{}"}, files=files)
    assert (reply.status_code, reply.json()) == (400, {"detail": detail})
    assert uploads(api) == []


def test_submit_leaves_no_upload_behind(
    api: Api, repo: Path, prepare: Callable[..., PreparedRun]
) -> None:
    submit(api, prepare(repo))
    assert follow(api, "demo", 1)[-1]["status"] == "SUCCESS"
    assert uploads(api) == []


def test_launcher_queues_runs_beyond_max_runs_and_refuses_beyond_max_queue(
    start_api: Callable[..., Api], prefect_api: str, repo: Path,
    prepare: Callable[..., PreparedRun],
) -> None:
    runner = FakeRunner(outcomes={"compile": FakeOutcome(lines=["busy"], seconds=1.5)})
    api = start_api(runner=runner, max_runs=1, max_queue=1)
    forced = prepare(repo, force=True)
    first = submit(api, forced)
    second = submit(api, forced)
    with pytest.raises(ServerError) as caught:
        submit(api, forced)

    assert (first["name"], second["name"]) == ("demo#1", "demo#2")
    assert str(caught.value) == (
        f"cicd server at {api.url} failed (HTTP 429): the server is busy: 1 runs executing, "
        "1 queued (CICD_MAX_RUNS=1, CICD_MAX_QUEUE=1); submit again when some have ended"
    )
    assert api.service.run("demo", 2).status is Status.PENDING  # waiting, visibly
    assert [run.run for run in api.service.runs("demo").runs] == [2, 1]  # no third run
    events = follow(api, "demo", 2)
    assert events[0]["kind"] == "warning"
    assert events[0]["text"] == (
        "queued: 1 runs are executing (CICD_MAX_RUNS) and 0 wait before this one; "
        "it starts when a slot frees"
    )
    assert events[-1]["status"] == "SUCCESS"
    one, two = api.service.run("demo", 1), api.service.run("demo", 2)
    assert one.finished_at is not None and two.started_at is not None
    assert two.started_at >= one.finished_at  # the second ran after the first
    assert submit(api, forced)["name"] == "demo#3"  # slots free again


def test_cancel_of_a_queued_run_ends_it_canceled_at_once(
    start_api: Callable[..., Api], prefect_api: str, repo: Path,
    prepare: Callable[..., PreparedRun],
) -> None:
    runner = FakeRunner(outcomes={"compile": FakeOutcome(seconds=60)})
    api = start_api(runner=runner, max_runs=1, max_queue=5)
    forced = prepare(repo, force=True)
    submit(api, forced)
    submit(api, forced)
    started = time.monotonic()
    assert api.backend().cancel("demo", 2) is Status.CANCELED
    assert follow(api, "demo", 2, timeout=10)[-1]["status"] == "CANCELED"
    assert time.monotonic() - started < 5
    assert api.app_state("launcher").queued() == []
    assert [call.spec.job for call in runner.calls if call.spec.run_id.endswith("-2")] == []
