"""The history store: every run, stage, job and artifact the backend has recorded.

``Store`` is synchronous and thread-safe: one engine per store, one connection (and transaction)
per call. Every SQLAlchemy failure leaves it as a one-line :class:`StoreError`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

from alembic.util import CommandError
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from backend.errors import NotFound, StoreError
from backend.schemas import (
    ArtifactPublic,
    FlakyTestsPublic,
    JobRunPublic,
    JobTestsPublic,
    PipelinesPublic,
    RunPublic,
    RunsPublic,
    StageRunPublic,
    Status,
)
from backend.store import flaky, queries
from backend.store.engine import make_engine, mask_url, reading, writing
from backend.store.migrate import upgrade
from backend.store.records import JobRow, NumberTaken, ReusedArtifact, insert_run
from backend.store.tables import (
    artifacts,
    job_runs,
    pipeline_runs,
    stage_runs,
    webhook_deliveries,
)

P = ParamSpec("P")
R = TypeVar("R")
_Method = Callable[Concatenate["Store", P], R]

_OPEN = (Status.PENDING.value, Status.RUNNING.value)
_NUMBER_ATTEMPTS = 100


def _reason(exc: BaseException) -> str:
    """The first line of what the database (or driver) said."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    source = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = [line.strip() for line in str(source).splitlines() if line.strip()]
    return lines[0] if lines else type(source).__name__


def _guarded(action: str) -> Callable[[_Method[P, R]], _Method[P, R]]:
    """Turn SQLAlchemy errors of a ``Store`` method into ``StoreError: cannot <action> ...``."""

    def decorate(method: _Method[P, R]) -> _Method[P, R]:
        @functools.wraps(method)
        def wrapper(self: Store, *args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return method(self, *args, **kwargs)
            except SQLAlchemyError as exc:
                raise StoreError(
                    f"cannot {action} the history store at {self.shown_url}: {_reason(exc)}"
                ) from exc

        return wrapper

    return decorate


_read = _guarded("read")
_write = _guarded("write to")


def _now() -> datetime:
    return datetime.now(UTC)


def _changes(**fields: Any) -> dict[str, Any]:
    """The fields that were given (not None), statuses as their text."""
    return {
        key: value.value if isinstance(value, Status) else value
        for key, value in fields.items()
        if value is not None
    }


class Store:
    """The history store at a SQLAlchemy URL (``sqlite:///...`` or ``postgresql+psycopg://...``).

    Opening it creates a SQLite file's folder and brings the schema up to date (alembic
    ``upgrade head``); it raises StoreError if the database cannot be used.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.shown_url = mask_url(url)
        try:
            self._engine = make_engine(url)
            upgrade(self._engine)
        except (SQLAlchemyError, CommandError, OSError, ImportError) as exc:
            raise StoreError(
                f"cannot open the history store at {self.shown_url}: {_reason(exc)}"
            ) from exc

    def close(self) -> None:
        """Close every pooled connection; the store can still be used (it reconnects)."""
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.shown_url!r})"

    # -- writes --------------------------------------------------------------------------------

    @_guarded("record a run in")
    def create_run(
        self,
        pipeline: str,
        stages: list[tuple[str, list[JobRow]]],
        *,
        repo: str,
        branch: str | None,
        commit: str,
        file: str,
        request_key: str,
        overrides: list[str] | None = None,
        env: dict[str, str] | None = None,
        retry_of: int | None = None,
    ) -> tuple[int, int]:
        """Record a new PENDING run with its stages and jobs, all or nothing; ``(run_id, number)``.

        ``stages`` is ``[(stage, [(job, image, allow_failure), ...]), ...]`` in plan order (a
        job may add a status to start settled, e.g. MANUAL; see ``insert_run``). The
        run gets the next number of its pipeline, also under concurrent submissions. ``env``
        is its ``--env`` values (never secrets), ``retry_of`` the number of the run it retries.
        """
        row = {
            "pipeline": pipeline,
            "status": Status.PENDING.value,
            "repo": repo,
            "branch": branch,
            "commit": commit,
            "file": file,
            "request_key": request_key,
            "overrides": json.dumps(list(overrides or [])),
            "env": json.dumps(dict(env or {})),
            "retry_of": retry_of,
            "created_at": _now(),
        }
        for _ in range(_NUMBER_ATTEMPTS):
            try:
                with writing(self._engine) as connection:
                    return insert_run(connection, row, stages)
            except NumberTaken:
                continue
        raise StoreError(
            f"cannot record a run in the history store at {self.shown_url}: "
            f"no free run number for pipeline '{pipeline}' after {_NUMBER_ATTEMPTS} attempts"
        )

    @_write
    def set_run(
        self,
        run_id: int,
        *,
        status: Status | None = None,
        started_at: datetime | None = None,
        finished_at: datetime | None = None,
        worker: str | None = None,
        error: str | None = None,
        flow_run_id: str | None = None,
        heartbeat_at: datetime | None = None,
    ) -> None:
        """Change the given fields of a run (the others keep their values)."""
        values = _changes(
            status=status,
            started_at=started_at,
            finished_at=finished_at,
            worker=worker,
            error=error,
            flow_run_id=flow_run_id,
            heartbeat_at=heartbeat_at,
        )
        with writing(self._engine) as connection:
            if not values:
                queries.run_ref(connection, run_id)
                return
            changed = connection.execute(
                update(pipeline_runs).where(pipeline_runs.c.id == run_id).values(**values)
            ).rowcount
            if not changed:
                raise NotFound(f"no run with id {run_id}")

    @_write
    def set_stage(
        self,
        run_id: int,
        stage: str,
        *,
        status: Status | None = None,
        started_at: datetime | None = None,
        finished_at: datetime | None = None,
    ) -> None:
        """Change the given fields of one stage of a run."""
        values = _changes(status=status, started_at=started_at, finished_at=finished_at)
        with writing(self._engine) as connection:
            where = (stage_runs.c.run_id == run_id, stage_runs.c.name == stage)
            found: int | None
            if values:
                found = connection.execute(
                    update(stage_runs).where(*where).values(**values)
                ).rowcount
            else:
                found = connection.scalar(select(func.count()).where(*where))
            if not found:
                ref = queries.run_name(*queries.run_ref(connection, run_id))
                raise NotFound(f"no stage '{stage}' in run '{ref}'")

    @_write
    def set_job(
        self,
        run_id: int,
        job: str,
        *,
        status: Status | None = None,
        exit_code: int | None = None,
        started_at: datetime | None = None,
        finished_at: datetime | None = None,
        error: str | None = None,
        log_path: str | None = None,
        attempts: int | None = None,
        worker: str | None = None,
        allowed: bool | None = None,
        memory_peak_bytes: int | None = None,
        cpu_seconds: float | None = None,
    ) -> None:
        """Change the given fields of one job of a run (``memory_peak_bytes`` and
        ``cpu_seconds``: what its container used)."""
        values = _changes(
            status=status,
            exit_code=exit_code,
            started_at=started_at,
            finished_at=finished_at,
            error=error,
            log_path=log_path,
            attempts=attempts,
            worker=worker,
            allowed=allowed,
            memory_peak_bytes=memory_peak_bytes,
            cpu_seconds=cpu_seconds,
        )
        with writing(self._engine) as connection:
            if not values:
                queries.job_row(connection, run_id, job, job_runs.c.id)
                return
            changed = connection.execute(
                update(job_runs)
                .where(job_runs.c.run_id == run_id, job_runs.c.name == job)
                .values(**values)
            ).rowcount
            if not changed:
                queries.job_row(connection, run_id, job, job_runs.c.id)  # raises NotFound

    @_write
    def reuse_job(self, run_id: int, job: str, source_run_id: int) -> list[ReusedArtifact]:
        """Record ``job`` of run ``run_id`` as REUSED from the same job of run
        ``source_run_id`` (cicd retry): its exit code, log, JUnit counts and the number of the
        run that really ran it are carried over. Returns the source job's artifacts, for the
        caller to keep and record as this run's (``add_artifact``)."""
        with writing(self._engine) as connection:
            source = queries.job_row(
                connection,
                source_run_id,
                job,
                job_runs.c.id,
                job_runs.c.status,
                job_runs.c.exit_code,
                job_runs.c.log_path,
                job_runs.c.reused_from,
                *queries.TEST_COLUMNS,
            )
            origin = connection.scalar(
                select(pipeline_runs.c.number).where(pipeline_runs.c.id == source_run_id)
            )
            carried = {column.name: getattr(source, column.name) for column in queries.TEST_COLUMNS}
            changed = connection.execute(
                update(job_runs)
                .where(job_runs.c.run_id == run_id, job_runs.c.name == job)
                .values(
                    status=Status.REUSED.value,
                    exit_code=source.exit_code,
                    log_path=source.log_path,
                    reused_from=source.reused_from or origin,
                    attempts=0,
                    error=None,
                    **carried,
                )
            ).rowcount
            if not changed:
                queries.job_row(connection, run_id, job, job_runs.c.id)  # raises NotFound
            rows = connection.execute(
                select(
                    artifacts.c.path,
                    artifacts.c.size,
                    artifacts.c.sha256,
                    artifacts.c.stored_path,
                    artifacts.c.name,
                    artifacts.c.expires_at,
                    artifacts.c.kind,
                )
                .where(artifacts.c.job_run_id == source.id)
                .order_by(artifacts.c.path)
            )
            return [ReusedArtifact(**row._mapping) for row in rows]

    @_write
    def set_job_tests(self, run_id: int, job: str, tests: JobTestsPublic) -> None:
        """Record what the JUnit reports of one job of a run counted."""
        with writing(self._engine) as connection:
            job_id = queries.job_row(connection, run_id, job, job_runs.c.id).id
            connection.execute(
                update(job_runs)
                .where(job_runs.c.id == job_id)
                .values(
                    tests_total=tests.total,
                    tests_failed=tests.failed,
                    tests_errors=tests.errors,
                    tests_skipped=tests.skipped,
                    tests_time=tests.time,
                    tests_failed_names=json.dumps(tests.failed_names),
                )
            )

    @_write
    def add_test_cases(self, run_id: int, job: str, cases: list[tuple[str, str]]) -> int:
        """Keep the outcome of each test case of one job of a run (``(classname.name,
        passed|failed|error|skipped)``, the first 5000), replacing any kept before."""
        with writing(self._engine) as connection:
            return flaky.replace_cases(connection, run_id, job, cases)

    @_write
    def settle_run(
        self,
        run_id: int,
        status: Status,
        *,
        error: str | None = None,
        at: datetime | None = None,
        if_open: bool = False,
    ) -> bool:
        """End a run that will not end by itself, in one transaction; True if it changed.

        The run gets ``status``, its finish time (``at``, default now) and ``error`` (when
        given); every stage and job of it still PENDING or RUNNING becomes CANCELED. With
        ``if_open`` a run already finished keeps its status (its open parts are still closed).
        The one place that settles a run whose execution ended, broke, was canceled before it
        started, or whose process died.
        """
        status = Status(status)
        if not status.finished:
            raise ValueError(f"settle_run needs a finished status, not {status}")
        at = at or _now()
        with writing(self._engine) as connection:
            queries.run_ref(connection, run_id)  # NotFound for an unknown run
            where = [pipeline_runs.c.id == run_id]
            if if_open:
                where.append(pipeline_runs.c.status.in_(_OPEN))
            changed = connection.execute(
                update(pipeline_runs)
                .where(*where)
                .values(**_changes(status=status, finished_at=at, error=error))
            ).rowcount
            for table in (job_runs, stage_runs):
                connection.execute(
                    update(table)
                    .where(table.c.run_id == run_id, table.c.status.in_(_OPEN))
                    .values(
                        status=Status.CANCELED.value,
                        finished_at=func.coalesce(table.c.finished_at, at),
                    )
                )
        return bool(changed)

    @_write
    def add_artifact(
        self,
        run_id: int,
        job: str,
        path: str,
        size: int,
        sha256: str,
        stored_path: str,
        *,
        name: str | None = None,
        expires_at: datetime | None = None,
        kind: str = "file",
    ) -> None:
        """Record a collected artifact of a job (replacing an earlier record of the same path).

        ``name`` is the job's ``artifacts:name``, ``expires_at`` when ``cicd gc`` may remove it
        (None: never), ``kind`` ``file`` or ``dotenv`` (a ``reports: dotenv`` file).
        """
        with writing(self._engine) as connection:
            job_id = queries.job_row(connection, run_id, job, job_runs.c.id).id
            connection.execute(
                delete(artifacts).where(artifacts.c.job_run_id == job_id, artifacts.c.path == path)
            )
            connection.execute(
                insert(artifacts).values(
                    job_run_id=job_id,
                    path=path,
                    size=size,
                    sha256=sha256,
                    stored_path=stored_path,
                    name=name,
                    expires_at=expires_at,
                    kind=kind,
                )
            )

    @_read
    def expired_artifacts(self, now: datetime, limit: int = 1000) -> list[tuple[int, str]]:
        """``(id, stored_path)`` of up to ``limit`` artifacts expired at ``now``."""
        with reading(self._engine) as connection:
            rows = connection.execute(
                select(artifacts.c.id, artifacts.c.stored_path)
                .where(artifacts.c.expires_at.is_not(None), artifacts.c.expires_at <= now)
                .order_by(artifacts.c.id)
                .limit(limit)
            )
            return [(row.id, row.stored_path) for row in rows]

    @_write
    def delete_artifacts(self, ids: list[int]) -> int:
        """Forget the artifact records ``ids``; return how many there were."""
        if not ids:
            return 0
        with writing(self._engine) as connection:
            result = connection.execute(delete(artifacts).where(artifacts.c.id.in_(ids)))
            return int(result.rowcount or 0)

    # -- webhook deliveries ------------------------------------------------------------------

    @_write
    def claim_delivery(self, provider: str, delivery: str, keep: int = 10_000) -> list[str] | None:
        """Remember webhook delivery ``delivery`` of ``provider``: None when it is new, else
        the runs (``NAME#N``) it started the first time. Only the newest ``keep`` are kept."""
        from sqlalchemy.exc import IntegrityError

        try:
            with writing(self._engine) as connection:
                inserted = connection.execute(
                    insert(webhook_deliveries).values(
                        provider=provider, delivery=delivery, received_at=_now(), runs="[]"
                    )
                ).inserted_primary_key
                new_id = int(inserted[0]) if inserted is not None else 0
                connection.execute(
                    delete(webhook_deliveries).where(webhook_deliveries.c.id <= new_id - keep)
                )
                return None
        except IntegrityError:
            with reading(self._engine) as connection:
                runs = connection.scalar(
                    select(webhook_deliveries.c.runs).where(
                        webhook_deliveries.c.provider == provider,
                        webhook_deliveries.c.delivery == delivery,
                    )
                )
            return list(json.loads(runs)) if runs is not None else []

    @_write
    def settle_delivery(self, provider: str, delivery: str, runs: list[str] | None) -> None:
        """Record the runs a claimed delivery started; ``runs`` None forgets the delivery (it
        started nothing and failed: the sender may deliver it again)."""
        where = (
            webhook_deliveries.c.provider == provider,
            webhook_deliveries.c.delivery == delivery,
        )
        with writing(self._engine) as connection:
            if runs is None:
                connection.execute(delete(webhook_deliveries).where(*where))
            else:
                connection.execute(
                    update(webhook_deliveries).where(*where).values(runs=json.dumps(runs))
                )

    # -- reads ---------------------------------------------------------------------------------

    @_read
    def find_active_duplicate(self, request_key: str) -> tuple[int, int] | None:
        """``(run_id, number)`` of a PENDING or RUNNING run with this request key, if any."""
        with reading(self._engine) as connection:
            row = connection.execute(
                select(pipeline_runs.c.id, pipeline_runs.c.number)
                .where(
                    pipeline_runs.c.request_key == request_key,
                    pipeline_runs.c.status.in_(_OPEN),
                )
                .order_by(pipeline_runs.c.id.desc())
                .limit(1)
            ).first()
        return None if row is None else (row.id, row.number)

    @_read
    def open_runs(self) -> list[tuple[int, str, int, str | None]]:
        """``(run_id, pipeline, number, flow_run_id)`` of every PENDING or RUNNING run."""
        with reading(self._engine) as connection:
            rows = connection.execute(
                select(
                    pipeline_runs.c.id,
                    pipeline_runs.c.pipeline,
                    pipeline_runs.c.number,
                    pipeline_runs.c.flow_run_id,
                )
                .where(pipeline_runs.c.status.in_(_OPEN))
                .order_by(pipeline_runs.c.id)
            )
            return [(r.id, r.pipeline, r.number, r.flow_run_id) for r in rows]

    @_read
    def lapsed_runs(self, before: datetime) -> list[tuple[int, str, int, str | None, str | None]]:
        """``(run_id, pipeline, number, worker, flow_run_id)`` of every open run whose worker
        took a lease (``heartbeat_at``) and last renewed it before ``before``."""
        with reading(self._engine) as connection:
            rows = connection.execute(
                select(
                    pipeline_runs.c.id,
                    pipeline_runs.c.pipeline,
                    pipeline_runs.c.number,
                    pipeline_runs.c.worker,
                    pipeline_runs.c.flow_run_id,
                )
                .where(pipeline_runs.c.status.in_(_OPEN))
                .where(pipeline_runs.c.heartbeat_at.is_not(None))
                .where(pipeline_runs.c.heartbeat_at < before)
                .order_by(pipeline_runs.c.id)
            )
            return [(r.id, r.pipeline, r.number, r.worker, r.flow_run_id) for r in rows]

    @_write
    def rehome_files(self, run_id: int, old_root: str, new_root: str) -> int:
        """Point a run's log and artifact paths under ``old_root`` to ``new_root`` instead
        (a worker's files, shipped to the server's CICD_HOME); returns the rows changed."""
        old = old_root.rstrip("/") + "/"
        new = new_root.rstrip("/") + "/"
        changed = 0
        with writing(self._engine) as connection:
            jobs = connection.execute(
                select(job_runs.c.id, job_runs.c.log_path).where(job_runs.c.run_id == run_id)
            ).all()
            for job_id, path in jobs:
                if path and path.startswith(old):
                    connection.execute(
                        update(job_runs).where(job_runs.c.id == job_id)
                        .values(log_path=new + path[len(old):])
                    )
                    changed += 1
            files = connection.execute(
                select(artifacts.c.id, artifacts.c.stored_path)
                .where(artifacts.c.job_run_id.in_([job_id for job_id, _ in jobs]))
            ).all()
            for artifact_id, path in files:
                if path.startswith(old):
                    connection.execute(
                        update(artifacts).where(artifacts.c.id == artifact_id)
                        .values(stored_path=new + path[len(old):])
                    )
                    changed += 1
        return changed

    @_read
    def list_pipelines(
        self, limit: int | None = None, cursor: str | None = None
    ) -> PipelinesPublic:
        """Every pipeline with runs, by name (a page: ``limit`` after ``cursor``)."""
        with reading(self._engine) as connection:
            return queries.list_pipelines(connection, limit, cursor)

    @_read
    def list_runs(
        self,
        pipeline: str | None,
        limit: int | None = None,
        *,
        cursor: str | None = None,
        status: Status | None = None,
        branch: str | None = None,
        since: datetime | None = None,
    ) -> RunsPublic:
        """Runs newest first, of a pipeline or (None) of all, filtered, a page at a time.

        At most ``limit`` after ``cursor`` (the ``next`` of the page before); NotFound if the
        pipeline named has no run at all (queries.list_runs).
        """
        with reading(self._engine) as connection:
            return queries.list_runs(
                connection, pipeline, limit, cursor=cursor, status=status, branch=branch,
                since=since,
            )

    @_read
    def flaky_tests(self, pipeline: str, last: int = 50) -> FlakyTestsPublic:
        """Tests of ``pipeline`` that both passed and failed on one commit, or flipped from
        run to run, over its ``last`` newest runs (NotFound: the pipeline has no run)."""
        with reading(self._engine) as connection:
            return flaky.flaky_tests(connection, pipeline, last)

    @_read
    def get_run(self, pipeline: str, number: int) -> RunPublic:
        """Run ``pipeline#number`` with its stages and jobs."""
        with reading(self._engine) as connection:
            return queries.get_run(connection, pipeline, number)

    @_read
    def get_stage(self, pipeline: str, number: int, stage: str) -> StageRunPublic:
        """One stage of run ``pipeline#number`` with its jobs."""
        with reading(self._engine) as connection:
            return queries.get_stage(connection, pipeline, number, stage)

    @_read
    def get_job(self, pipeline: str, number: int, job: str) -> JobRunPublic:
        """One job of run ``pipeline#number``."""
        with reading(self._engine) as connection:
            return queries.get_job(connection, pipeline, number, job)

    @_read
    def run_env(self, pipeline: str, number: int) -> dict[str, str]:
        """The ``--env`` values run ``pipeline#number`` was given."""
        with reading(self._engine) as connection:
            return queries.run_env(connection, pipeline, number)

    @_read
    def run_id(self, pipeline: str, number: int) -> int:
        """The id of run ``pipeline#number``."""
        with reading(self._engine) as connection:
            return queries.run_id(connection, pipeline, number)

    @_read
    def job_log_path(self, pipeline: str, number: int, job: str) -> str | None:
        """Where the log of a job of run ``pipeline#number`` is (None before it started)."""
        with reading(self._engine) as connection:
            the_run = queries.run_id(connection, pipeline, number)
            path = queries.job_row(connection, the_run, job, job_runs.c.log_path).log_path
            return None if path is None else str(path)

    @_read
    def list_artifacts(
        self, pipeline: str, number: int, job: str | None = None
    ) -> list[ArtifactPublic]:
        """Artifacts of run ``pipeline#number``, or of one of its jobs."""
        with reading(self._engine) as connection:
            return queries.list_artifacts(connection, pipeline, number, job)

    @_read
    def artifact_file(self, pipeline: str, number: int, job: str, path: str) -> str:
        """Where artifact ``path`` of a job of run ``pipeline#number`` is stored."""
        with reading(self._engine) as connection:
            return queries.artifact_file(connection, pipeline, number, job, path)
