"""Helpers of the API tests: serve an app with uvicorn in a thread, make a git repo, follow runs."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from backend.events import EventHub
from backend.remote import RemoteBackend
from backend.requests import PreparedRun
from backend.runner.base import Runner
from backend.service import Service
from backend.settings import Settings
from backend.source.bundles import make_bundle

TOKEN = "s3cret-token"
IMAGE = "cicd-busybox:latest"

PIPELINE = f"""\
pipeline:
  name: demo
  image: {IMAGE}
stages: [build, test]
jobs:
  - name: compile
    stage: build
    script: [echo compiling]
    artifacts: [README]
  - name: unit
    stage: test
    script: [echo testing]
  - name: lint
    stage: test
    script: [echo linting]
    allow_failure: true
"""


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo``; its stdout."""
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True,
        env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
             "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
             "PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(repo)},
    )
    return done.stdout.strip()


def make_repo(path: Path, pipeline: str = PIPELINE) -> Path:
    """A git repository at ``path`` whose one commit holds ``.pipelines/pipeline.yaml``."""
    (path / ".pipelines").mkdir(parents=True)
    (path / ".pipelines" / "pipeline.yaml").write_text(pipeline)
    (path / "README").write_text("hello\n")
    git(path, "init", "-q", "-b", "main")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "first")
    return path


@dataclass
class Api:
    """A running API server and what it was built with."""

    url: str
    service: Service
    settings: Settings
    runner: Runner
    hub: EventHub
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def api(self) -> str:
        """The ``/api/v1`` base URL."""
        return f"{self.url}/api/v1"

    def client(self, token: str | None = None) -> httpx.Client:
        """An httpx client for the API (with a bearer token when given)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.api, headers=headers, timeout=30)

    def backend(self, token: str | None = None) -> RemoteBackend:
        """A ``RemoteBackend`` on this server."""
        return RemoteBackend(self.url, token=token)

    def app_state(self, name: str) -> Any:
        """An attribute of the served app's ``state`` (launcher, followers, ...)."""
        return getattr(self.server.config.app.state, name)

    def stop(self) -> None:
        """Shut the server down (lifespan shutdown included) and wait for its thread."""
        self.server.should_exit = True
        self.thread.join(30)


def serve(app: Any) -> tuple[str, uvicorn.Server, threading.Thread]:
    """Serve ``app`` on a free loopback port in a background thread; (url, server, thread)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test API server did not start")
        time.sleep(0.02)
    return f"http://127.0.0.1:{port}", server, thread


def submit(api: Api, prepared: PreparedRun, bundle: bool = True) -> dict[str, Any]:
    """Submit ``prepared`` (with a bundle of its commit) through ``RemoteBackend``."""
    return api.backend().submit(prepared, make_bundle(prepared.source) if bundle else None)


def follow(api: Api, pipeline: str, number: int, timeout: float = 60) -> list[dict[str, Any]]:
    """Every event of a run as decoded JSON, read from the NDJSON stream to its end."""
    import json

    events = []
    with api.client() as client, client.stream(
        "GET", f"/runs/{pipeline}/{number}/events", timeout=timeout
    ) as reply:
        assert reply.status_code == 200, reply.read()
        assert reply.headers["content-type"].startswith("application/x-ndjson")
        for line in reply.iter_lines():
            if line.strip():
                events.append(json.loads(line))
    return events
