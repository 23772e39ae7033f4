"""Team mode: a server hands the runs it is sent to a Prefect work pool, and workers run them.

``cicd server --pool NAME`` records each submitted run as every server does (``Service.start``:
PENDING, keyed, planned), then, instead of executing it, keeps a *handoff* (the request with its
secrets, in this process's memory only, and where the commit is) and queues a flow run of the
deployment ``cicd-run/NAME`` on the pool. A ``cicd worker --pool NAME`` on any machine takes the
flow run (``flows/pool.py``), claims the handoff over the API (``backend/api/routes/workers.py``),
fetches the commit as a git bundle, executes the run in its own ``CICD_HOME`` against the shared
history store (``CICD_DATABASE_URL``), ships the run's events while it runs and its logs and
artifacts when it ends (``backend/worker.py``), and renews the run's lease (``heartbeat_at``)
every ``CICD_WORKER_LEASE``/4 seconds. ``Reaper`` settles a run whose lease ran out (its worker
died) as FAILED within a lease and a bit.

Queued runs are PENDING until a worker claims one: with every worker busy (``--limit``) they wait
on the pool, in the Prefect UI as Scheduled flow runs. A handoff lives in memory only, so secrets
are never written anywhere: runs still waiting when the server restarts cannot be executed any
more and are settled FAILED at its start (``PoolDispatch.prepare``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from backend.errors import CicdError, NotFound
from backend.schemas import Status
from backend.service import Service, Submission
from backend.source.workspace import Source

log = logging.getLogger("cicd.pool")
QUEUED_PREFIX = "pool:"  # a run's ``worker`` while it waits on a pool: ``pool:NAME``
RESTARTED = "the server restarted before a worker took this run: submit it again"


class Gone(CicdError):
    """A handoff that no worker may take (any more): unknown, taken, or the run has ended."""


@dataclass
class Handoff:
    """A run waiting on the pool for a worker, or being executed by one."""

    submission: Submission
    source: Source
    flow_run_id: str | None = None
    worker: str | None = None  # who claimed it


class PoolDispatch:
    """The handoffs of one server and the flow runs that carry them to the pool ``pool``."""

    def __init__(self, pool: str, service: Service) -> None:
        self.pool = pool
        self.service = service
        self._deployment: str | None = None
        self._handoffs: dict[str, Handoff] = {}
        self._lock = threading.Lock()

    def prepare(self) -> list[str]:
        """Create the pool and its run deployment (Prefect must answer); settle the runs a
        previous server of this pool left waiting. Returns the names settled."""
        from flows.worker import ensure_run_deployment

        self._deployment = ensure_run_deployment(self.pool)
        settled = []
        store = self.service.store
        for run_id, pipeline, number, _ in store.open_runs():
            run = store.get_run(pipeline, number)
            if run.worker == QUEUED_PREFIX + self.pool and store.settle_run(
                run_id, Status.FAILED, error=RESTARTED, if_open=True
            ):
                settled.append(f"{pipeline}#{number}")
        return settled

    def dispatch(self, submission: Submission, source: Source) -> None:
        """Keep the handoff and queue its flow run on the pool."""
        from flows.worker import dispatch_flow_run

        if self._deployment is None:
            raise CicdError("the pool's deployment was not prepared")
        handoff = Handoff(submission, source)
        with self._lock:
            self._handoffs[submission.name] = handoff
        self.service.store.set_run(submission.run_id, worker=QUEUED_PREFIX + self.pool)
        try:
            handoff.flow_run_id = dispatch_flow_run(
                self._deployment, f"{submission.name} (dispatch)", submission.pipeline,
                submission.number,
            )
        except BaseException:
            self.forget(submission.name)
            raise

    def claim(self, name: str, worker: str) -> Handoff:
        """Give run ``name`` to ``worker``, once; its lease starts now. ``Gone`` otherwise."""
        with self._lock:
            handoff = self._handoffs.get(name)
            if handoff is None:
                raise Gone(f"{name} is not waiting for a worker on this server")
            if handoff.worker is not None:
                raise Gone(f"{name} was taken by {handoff.worker}")
            run = self.service.store.get_run(handoff.submission.pipeline, handoff.submission.number)
            if run.status.finished:
                self._handoffs.pop(name, None)
                raise Gone(f"{name} has ended ({run.status.value}): nothing to execute")
            handoff.worker = worker
        self.service.store.set_run(
            handoff.submission.run_id, worker=worker, heartbeat_at=datetime.now(UTC)
        )
        return handoff

    def claimed(self, name: str, worker: str) -> Handoff:
        """The handoff ``worker`` claimed (for its bundle); ``Gone`` for anyone else."""
        with self._lock:
            handoff = self._handoffs.get(name)
        if handoff is None or handoff.worker != worker:
            raise Gone(f"{name} is not claimed by {worker}")
        return handoff

    def forget(self, name: str) -> Handoff | None:
        """Drop a handoff (its run ended)."""
        with self._lock:
            return self._handoffs.pop(name, None)

    def withdraw(self, name: str) -> bool:
        """Take back a run no worker has claimed yet (it was canceled): its flow run is
        canceled too. False when a worker has it (cancel through Prefect then)."""
        from flows.worker import cancel_flow_run

        with self._lock:
            handoff = self._handoffs.get(name)
            if handoff is None or handoff.worker is not None:
                return False
            self._handoffs.pop(name)
        if handoff.flow_run_id:
            try:
                cancel_flow_run(handoff.flow_run_id, f"{name} was canceled before it started")
            except Exception as exc:  # the claim is refused anyway
                log.warning("cannot cancel the pool flow run of %s: %s", name, exc)
        return True

    def flow_run_of(self, name: str) -> str | None:
        """The id of the flow run that carries run ``name`` to the pool."""
        with self._lock:
            handoff = self._handoffs.get(name)
        return handoff.flow_run_id if handoff else None


class Reaper:
    """Settles runs whose worker stopped renewing their lease, every ``lease / 6`` seconds."""

    def __init__(
        self,
        service: Service,
        lease: float,
        on_settled: Callable[[str, str], None],
        flow_run_of: Callable[[str], str | None] = lambda name: None,
    ) -> None:
        self.service = service
        self.lease = lease
        self.on_settled = on_settled  # (run name, error)
        self.flow_run_of = flow_run_of
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Check in a background thread until ``stop``."""
        self._thread = threading.Thread(target=self._loop, name="cicd-reaper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop checking."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(max(1.0, self.lease / 6)):
            try:
                self.reap()
            except Exception as exc:  # the store is away for a moment: try again next time
                log.warning("cannot check the workers' leases: %s", exc)

    def reap(self, now: datetime | None = None) -> list[str]:
        """Settle every run whose lease ran out; return their names."""
        from backend.leftovers import crash_flow_run

        now = now or datetime.now(UTC)
        store = self.service.store
        settled = []
        for run_id, pipeline, number, worker, flow_run_id in store.lapsed_runs(
            now - timedelta(seconds=self.lease)
        ):
            name = f"{pipeline}#{number}"
            error = (
                f"worker {worker} stopped renewing its lease for {self.lease:g} s "
                "(it died, or lost the database): its containers go when it restarts"
            )
            if not store.settle_run(run_id, Status.FAILED, error=error, if_open=True):
                continue
            log.warning("%s: %s", name, error)
            for flow_run in (flow_run_id, self.flow_run_of(name)):
                if flow_run:
                    crash_flow_run(self.service.settings.home, name, flow_run)
            self.on_settled(name, error)
            settled.append(name)
        return settled


def run_of(service: Service, name: str) -> tuple[str, int]:
    """``(pipeline, number)`` of a run name that exists; ``NotFound`` otherwise."""
    pipeline, _, number = name.rpartition("#")
    if not pipeline or not number.isdigit():
        raise NotFound(f"no run named {name!r}")
    service.store.get_run(pipeline, int(number))
    return pipeline, int(number)
