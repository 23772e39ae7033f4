"""A ``cicd worker``'s side of team mode: execute a run a server handed to the pool.

The flow ``flows/pool.py`` calls ``execute_handed_run`` in the worker's flow-run process:

1. claim the run from the server (``CICD_SERVER``, ``CICD_API_TOKEN``): its request, secrets
   included (kept in memory only), and the server's home key;
2. fetch the commit as a git bundle into this worker's ``CICD_HOME/repos``;
3. execute it through ``Service.execute`` like every run, against the shared store, while a
   thread renews the run's lease (``heartbeat_at``) every ``CICD_WORKER_LEASE``/4 seconds and a
   ``Shipper`` sends the run's events to the server in batches (every ``SHIP_EVERY`` seconds);
4. at the end send the run's logs and artifacts (one tar) and then its ``run_finished``, so a
   follower that sees the end finds everything on the server.

A worker whose ``CICD_HOME`` is the server's (one machine, one home) ships events only. A marker
file per run (``CICD_HOME/worker/runs/RUN_ID``) lets a restarted worker remove the containers
and workspace of the runs it was executing when it died (``reap_claimed``).
"""

from __future__ import annotations

import logging
import os
import socket
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from backend.errors import CicdError, ServerError, UsageError
from backend.events import event_to_json
from backend.recording import Event
from backend.remote import RemoteBackend, _segment
from backend.runs import RunRef
from backend.schemas import Status
from backend.service import RunRequest, Service
from backend.settings import Settings

log = logging.getLogger("cicd.worker")
SHIP_EVERY = 0.25  # seconds between two batches of events
BATCH = 2000  # events in one request at most


def worker_name(settings: Settings) -> str:
    """This worker's name: ``--name`` / CICD_WORKER_NAME, else ``host/worker-PID``."""
    return settings.worker_name or f"{socket.gethostname()}/worker-{os.getpid()}"


class WorkerLink(RemoteBackend):
    """The server's worker routes (``/api/v1/workers``)."""

    def __init__(self, url: str, token: str | None, worker: str) -> None:
        super().__init__(url, token)
        self.worker = worker

    def _run(self, ref: RunRef) -> str:
        return f"/workers/runs/{_segment(ref.pipeline)}/{ref.number}"

    def claim(self, ref: RunRef) -> dict[str, Any] | None:
        """The claimed run (run_id, request, home_key); None when it is not to be executed
        (taken, ended or unknown to the server: the answer says why, logged)."""
        body = {"pipeline": ref.pipeline, "number": ref.number, "worker": self.worker}
        try:
            reply = self._client.post("/workers/claim", json=body)
        except Exception as exc:
            raise ServerError(f"cannot reach cicd server at {self.url}: {exc}") from None
        if reply.status_code in (404, 409):
            log.warning("%s: not executed here: %s", ref, reply.json().get("detail"))
            return None
        self._fail(reply)
        claimed: dict[str, Any] = reply.json()
        return claimed

    def bundle(self, ref: RunRef, dest: Path) -> None:
        """Save the claimed run's bundle to ``dest``."""
        reply = self._request("GET", self._run(ref) + "/bundle", params={"worker": self.worker})
        dest.write_bytes(reply.content)

    def send_events(self, ref: RunRef, events: list[Event], log_lines: bool) -> None:
        """Hand a batch of the run's events to the server."""
        body = "\n".join(event_to_json(event) for event in events).encode()
        self._request(
            "POST", self._run(ref) + "/events", content=body,
            params={"worker": self.worker, "log": str(log_lines).lower()},
            headers={"Content-Type": "application/x-ndjson"},
        )

    def upload_files(self, ref: RunRef, archive: Path, root: Path) -> None:
        """Send the run's logs and artifacts (a tar made by ``pack_run_files``)."""
        with archive.open("rb") as handle:
            self._request(
                "PUT", self._run(ref) + "/files", content=handle,
                params={"worker": self.worker, "root": str(root)},
                headers={"Content-Type": "application/x-tar"},
                timeout=None,
            )


class Shipper:
    """A sink that sends a run's events to the server in batches, from one thread.

    ``run_finished`` is held back until ``finish`` (after the files went), so a follower that
    sees the end finds the logs and artifacts on the server. Shipping is best effort: a batch
    the server does not take is logged and dropped, never failing the run (the store has the
    truth; the files go at the end).
    """

    def __init__(self, link: WorkerLink, ref: RunRef, log_lines: bool) -> None:
        self.link, self.ref, self.log_lines = link, ref, log_lines
        self._pending: list[Event] = []
        self._finished: Event | None = None
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="cicd-ship", daemon=True)
        self._thread.start()

    def __call__(self, event: Event) -> None:
        with self._cond:
            if event.kind == "run_finished":
                self._finished = event
            else:
                self._pending.append(event)

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait(SHIP_EVERY)
                batch, self._pending = self._pending[:BATCH], self._pending[BATCH:]
                closed = self._closed and not self._pending
            if batch:
                try:
                    self.link.send_events(self.ref, batch, self.log_lines)
                except CicdError as exc:
                    log.warning("%s: %d events not shipped: %s", self.ref, len(batch), exc)
            if closed:
                return

    def drain(self) -> None:
        """Send every event but the end, and stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=60)

    def finish(self, status: Status, error: str | None) -> None:
        """Send ``run_finished`` (the one the run emitted, or one made of ``status``)."""
        event = self._finished or Event("run_finished", str(self.ref), status=status, text=error)
        try:
            self.link.send_events(self.ref, [event], self.log_lines)
        except CicdError as exc:
            log.warning("%s: its end was not shipped: %s", self.ref, exc)


@contextmanager
def lease(service: Service, run_id: int, every: float) -> Iterator[None]:
    """Renew run ``run_id``'s lease every ``every`` seconds while the block runs."""
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(every):
            try:
                service.store.set_run(run_id, heartbeat_at=datetime.now(UTC))
            except Exception as exc:  # the store is away for a moment: the lease says so
                log.warning("cannot renew the lease of run %d: %s", run_id, exc)

    thread = threading.Thread(target=renew, name="cicd-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def pack_run_files(settings: Settings, ref: RunRef, run_id: int, dest: Path) -> None:
    """Tar the run's log folder and artifacts folder (relative to ``CICD_HOME``) into ``dest``."""
    from backend.api.routes.workers import run_folders

    with tarfile.open(dest, "w") as archive:
        for folder in run_folders(ref.pipeline, ref.number, run_id):
            path = settings.home / folder
            if path.is_dir():
                archive.add(path, arcname=str(folder))


def _markers(settings: Settings) -> Path:
    return settings.home / "worker" / "runs"


def execute_handed_run(settings: Settings, pipeline: str, number: int) -> Status | None:
    """Claim run ``pipeline#number`` from the server and execute it here; its status, or None
    when it was not this worker's to execute."""
    from backend.source.bundles import source_from_bundle

    if not settings.server:
        raise UsageError("a worker of a server's pool needs CICD_SERVER (and CICD_API_TOKEN)")
    ref = RunRef(pipeline, number)
    name = worker_name(settings)
    link = WorkerLink(settings.server, settings.api_token, name)
    settings.ensure_home()
    service = Service(settings, mode="worker")
    service.worker = name
    try:
        claimed = link.claim(ref)
        if claimed is None:
            return None
        run_id = int(claimed["run_id"])
        marker = _markers(settings) / str(run_id)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"{ref}\n")
        same_home = claimed["home_key"] == service.run_key(0).rpartition("-")[0]
        shipper = Shipper(link, ref, log_lines=not same_home)
        status, error = Status.FAILED, None
        try:
            request = RunRequest.model_validate(claimed["request"])
            cache = settings.home / "repos"
            cache.mkdir(parents=True, exist_ok=True)
            bundle = cache / f"claimed-{run_id}.bundle"
            try:
                link.bundle(ref, bundle)
                source = source_from_bundle(
                    bundle, request.commit, request.branch, request.repo, cache
                )
            finally:
                bundle.unlink(missing_ok=True)
            submission = service.resume(run_id, ref, request, source)
            with lease(service, run_id, settings.worker_lease / 4):
                status = service.execute(submission, sinks=[shipper])
        except BaseException as exc:
            error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            service.store.settle_run(run_id, Status.FAILED, error=error, if_open=True)
            raise
        finally:
            shipper.drain()
            if not same_home:
                _ship_files(settings, link, ref, run_id)
            shipper.finish(status, error)
            marker.unlink(missing_ok=True)
        return status
    finally:
        link.close()


def _ship_files(settings: Settings, link: WorkerLink, ref: RunRef, run_id: int) -> None:
    archive = settings.home / "worker" / f"files-{run_id}.tar"
    try:
        pack_run_files(settings, ref, run_id, archive)
        link.upload_files(ref, archive, settings.home)
    except (CicdError, OSError) as exc:
        log.error("%s: logs and artifacts stay on this worker (%s): %s", ref, settings.home, exc)
    finally:
        archive.unlink(missing_ok=True)


def reap_claimed(service: Service) -> list[str]:
    """Remove what the runs this worker's home was executing when it died left behind
    (containers, networks, workspaces), and settle those still open. Returns their names."""
    from backend.leftovers import DEAD_OWNER, clean_leftovers

    reaped = []
    folder = _markers(service.settings)
    for marker in sorted(folder.glob("*")) if folder.is_dir() else []:
        if not marker.name.isdigit():
            continue
        run_id = int(marker.name)
        key = service.run_key(run_id)
        clean_leftovers(service.runner, service.settings.workspaces_dir / key, key)
        try:
            service.store.settle_run(run_id, Status.FAILED, error=DEAD_OWNER, if_open=True)
        except CicdError:
            pass  # the run is gone from the store: nothing to settle
        reaped.append(marker.read_text().strip() or f"run {run_id}")
        marker.unlink(missing_ok=True)
    return reaped

