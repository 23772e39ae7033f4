"""Run ``cicd`` with timing instrumentation attached from outside (used by where_time_goes.py).

    CICD_BENCH_PROBE_OUT=DIR python -X importtime bench/probe.py run [cicd options...]

Nothing in cicd is changed: this wrapper, before cicd is imported,

- wraps the HTTP clients: ``httpx`` (Prefect API calls) and ``requests`` (the docker SDK);
- listens to SQLAlchemy cursor events (history store writes and reads);
- wraps ``subprocess.Popen`` (git);
- wraps named cicd functions (phases: prepare, submit, checkout, images, each job...) as their
  modules are imported (a meta-path hook), skipping any that do not exist (cicd changes);
- profiles every thread with cProfile (``threading.setprofile``).

At the end it writes DIR/events.json (one row per call: category, name, start, duration, thread)
and DIR/cicd.prof (pstats of all threads merged), then exits with cicd's exit status.
"""

from __future__ import annotations

import cProfile
import functools
import importlib.abc
import importlib.machinery
import inspect
import json
import os
import re
import sys
import threading
import time

T0 = time.perf_counter()
EPOCH0 = time.time()
OUT = os.environ.get("CICD_BENCH_PROBE_OUT", ".")
EVENTS: list[tuple[str, str, float, float, str]] = []

# module -> attribute paths to time ("Class.method" or "function")
PHASES = {
    "flows.prefect_api": ["configure_prefect", "start_local_server", "read_local_server"],
    "backend.requests": ["prepare_run"],
    "backend.service": [
        "Service.reconcile",
        "Service.submit",
        "Service.execute",
        "Service.run",
        "Service.store",
        "Service.runner",
    ],
    "backend.source.workspace": ["checkout", "remove_tree"],
    "flows.pipeline": ["run_pipeline", "stage_flow", "pipeline_flow", "job_task", "register"],
    "backend.execution": ["prepare_images", "execute_job", "_collect_artifacts", "_settle"],
    "backend.runner.docker": [
        "DockerRunner.run_job",
        "DockerRunner.ensure_images",
        "DockerRunner.remove_run_containers",
        "DockerRunner._create",
        "DockerRunner.check",
    ],
    "backend.recording": [
        "StoreWriter.flush",
        "StoreWriter.close",
        "Recorder.run_started",
        "Recorder.run_finished",
        "Recorder.stage_started",
        "Recorder.stage_finished",
    ],
    "backend.store.store": ["Store.__init__"],
    "backend.store.migrate": ["upgrade", "migrate", "ensure_schema"],
    "cicd_cli.render": ["summary_table"],
}


def record(category: str, name: str, start: float, end: float) -> None:
    EVENTS.append((category, name, start - T0, end - start, threading.current_thread().name))


def _timed(category: str, name: str, fn):
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                record(category, name, start, time.perf_counter())

        return async_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            record(category, name, start, time.perf_counter())

    return wrapper


def _patch_module(module) -> None:
    for path in PHASES.get(module.__name__, []):
        owner, _, attr = path.rpartition(".")
        target = getattr(module, owner, None) if owner else module
        if target is None:
            continue
        raw = target.__dict__.get(attr) if isinstance(target, type) else getattr(target, attr, None)
        if raw is None:
            continue
        label = f"{module.__name__.rsplit('.', 1)[-1]}.{path}"
        try:
            if isinstance(raw, property):
                setattr(target, attr, property(_timed("phase", label, raw.fget), raw.fset))
            elif hasattr(raw, "fn") and callable(raw.fn):  # a Prefect flow or task
                raw.fn = _timed("phase", label, raw.fn)
            elif callable(raw):
                setattr(target, attr, _timed("phase", label, raw))
        except (AttributeError, TypeError):
            pass


class _PatchingFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name not in PHASES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            _patch_module(module)

        spec.loader.exec_module = exec_and_patch
        return spec


_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{64}")


def _docker_path(url: str) -> str:
    path = url.split("?", 1)[0]
    path = re.sub(r"^.*?/v\d+\.\d+", "", path.replace("http+docker://localhost", ""))
    path = re.sub(r"/containers/(?!create|json)[^/]+", "/containers/{id}", path)
    path = re.sub(r"/images/.+/json", "/images/{name}/json", path)
    return _ID.sub("{id}", path)


def _install_http() -> None:
    import httpx
    import requests

    send = requests.Session.send

    def requests_send(self, request, **kwargs):
        start = time.perf_counter()
        status = "error"
        try:
            response = send(self, request, **kwargs)
            status = str(response.status_code)
            return response
        finally:
            name = f"{request.method} {_docker_path(request.url)}"
            if not status.startswith("2"):
                name += f" -> {status}"
            record("docker", name, start, time.perf_counter())

    requests.Session.send = requests_send

    def name_of(request, status: str) -> str:
        path = _ID.sub("{id}", request.url.path)
        return f"{request.method} {path}" + ("" if status.startswith("2") else f" -> {status}")

    async_send = httpx.AsyncClient.send

    async def httpx_async_send(self, request, **kwargs):
        start = time.perf_counter()
        status = "error"
        try:
            response = await async_send(self, request, **kwargs)
            status = str(response.status_code)
            return response
        finally:
            record("prefect-api", name_of(request, status), start, time.perf_counter())

    httpx.AsyncClient.send = httpx_async_send
    sync_send = httpx.Client.send

    def httpx_sync_send(self, request, **kwargs):
        start = time.perf_counter()
        status = "error"
        try:
            response = sync_send(self, request, **kwargs)
            status = str(response.status_code)
            return response
        finally:
            record("prefect-api", name_of(request, status), start, time.perf_counter())

    httpx.Client.send = httpx_sync_send


_TABLE = re.compile(
    r"^\s*(SELECT|INSERT|UPDATE|DELETE|PRAGMA|CREATE|BEGIN|COMMIT)\b"
    r'(?:.*?\b(?:FROM|INTO|UPDATE)\s+"?(\w+))?',
    re.I | re.S,
)


def _install_sql() -> None:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    local = threading.local()

    @event.listens_for(Engine, "before_cursor_execute")
    def before(conn, cursor, statement, parameters, context, executemany):
        local.start = time.perf_counter()

    @event.listens_for(Engine, "after_cursor_execute")
    def after(conn, cursor, statement, parameters, context, executemany):
        match = _TABLE.match(statement)
        name = (
            f"{match.group(1).upper()} {match.group(2) or ''}".strip() if match else statement[:30]
        )
        record("store-sql", name, getattr(local, "start", time.perf_counter()), time.perf_counter())

    @event.listens_for(Engine, "commit")
    def commit(conn):
        record("store-sql", "COMMIT (begin)", time.perf_counter(), time.perf_counter())


def _install_subprocess() -> None:
    import subprocess

    init, wait = subprocess.Popen.__init__, subprocess.Popen.wait

    def popen_init(self, args, *a, **kw):
        self._bench_start = time.perf_counter()
        argv = [args] if isinstance(args, str | bytes) else list(args)
        self._bench_name = " ".join(os.path.basename(str(x)) for x in argv[:2])
        init(self, args, *a, **kw)

    def popen_wait(self, *a, **kw):
        code = wait(self, *a, **kw)
        if getattr(self, "_bench_start", None) is not None:
            record("subprocess", self._bench_name, self._bench_start, time.perf_counter())
            self._bench_start = None
        return code

    subprocess.Popen.__init__ = popen_init
    subprocess.Popen.wait = popen_wait


PROFILES: list[cProfile.Profile] = []


def _thread_profiler(frame, event, arg):
    profile = cProfile.Profile()
    PROFILES.append(profile)
    profile.enable()  # replaces this hook for the rest of the thread


def _dump(main_profile: cProfile.Profile, exit_code: int) -> None:
    import pstats

    main_profile.disable()
    returned = time.perf_counter() - T0
    threading.setprofile(None)
    stats = pstats.Stats(main_profile)
    for profile in list(PROFILES):
        try:
            stats.add(profile)
        except (TypeError, ValueError):
            pass
    stats.dump_stats(os.path.join(OUT, "cicd.prof"))
    with open(os.path.join(OUT, "events.json"), "w") as out:
        json.dump(
            {
                "epoch0": EPOCH0,
                "returned": returned,
                "end": time.perf_counter() - T0,
                "exit_code": exit_code,
                "threads_profiled": len(PROFILES) + 1,
                "events": EVENTS,
            },
            out,
        )


def main() -> int:
    sys.meta_path.insert(0, _PatchingFinder())
    _install_http()
    _install_sql()
    _install_subprocess()
    main_profile = cProfile.Profile()
    threading.setprofile(_thread_profiler)
    sys.argv = ["cicd", *sys.argv[1:]]
    code = 0
    main_profile.enable()
    try:
        from cicd_cli.app import main as cicd_main

        cicd_main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        _dump(main_profile, code)
    return code


if __name__ == "__main__":
    sys.exit(main())
