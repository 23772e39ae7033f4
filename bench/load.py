"""Load: N runs of a small pipeline submitted at once to one ``cicd server``, against the floor.

    .venv/bin/python bench/load.py [--runs 20] [--mode cli|api] [--max-runs N] [--stages]
                                   [--repeat N] [--postgres ADMIN_URL] [--server-env KEY=VALUE]...
                                   [--json]

The pipeline (one stage, so the third job waits through ``needs``, not a stage boundary):
``a`` and ``b`` run ``sleep 1`` in parallel, then ``c`` runs ``echo`` once both have ended.
``--stages`` puts ``c`` in a second stage instead (a stage boundary: a second stage subflow).

1. **floor**: one warm-up pipeline, then the N pipelines' containers (3 N) started by hand with the
   docker CLI (``docker run --rm``, as ``bench/floor.py`` does), all N pipelines at once, each in
   its best schedule. Wall: until the last container ended.
2. **cicd**: a real ``cicd server`` (Docker runner, temporary CICD_HOME, its own local Prefect
   server) with ``CICD_MAX_RUNS=N`` (``--max-runs``: runs beyond it are queued, which changes what
   is measured); one warm-up run; 5 s idle (the servers' background CPU); then N runs at once:
   ``--mode cli`` starts N ``cicd run --server URL --force`` processes (``--force``: the same
   commit N times is not a duplicate), ``--mode api`` submits from N threads of this process
   (prepare, bundle, POST /runs, then follow ``/events``, as ``cicd run --server`` does). Wall:
   from the first submit until the last client exited (cli) / the last run_finished arrived (api).

Per run: submit -> ``run_started`` / first ``job_started`` / ``run_finished`` (the events' own
timestamps, against the moment the client process was started or the thread began to submit);
p50/p95/max. CPU-s from /proc/PID/stat (utime + stime + cutime + cstime of the process and its
live descendants) before and after each burst: the cicd server, the Prefect server (pid from
CICD_HOME/prefect/server.json; not counted twice though it is the cicd server's child), dockerd,
containerd; the containerd shims (with the runc they reap) are reparented to init, so they are
sampled every 0.2 s (a lower bound); the clients: each ``cicd run`` with its children (wait4),
the docker CLI processes of the floor (RUSAGE_CHILDREN), or in api mode this process's own CPU.
Per job is the total divided by 3 N. Lock stalls: "database is locked" lines (and the 503s
Prefect's client retries after 2 s) added to CICD_HOME/prefect/server.log during the burst.
Nothing lost: every run must end SUCCESS and the run numbers must be 1..N+1 with no gap (exit 1
otherwise). Targets (MET/MISSED): wall <= 1.5x the floor, orchestration (cicd server + Prefect
server) <= 60 ms CPU per job, p95 submit -> first job < 2 s.

``--repeat N`` measures N bursts, each a floor and then cicd with a fresh server and home, and
reports each figure's median and range over them, the targets judged on the medians (nothing
lost: in every burst): one burst on these machines varies by +-20%.

Everything a burst starts (server, Prefect server, clients, containers, temporary homes) is
removed when it ends, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import tools
from bench.floor import run_as_ready
from bench.pipelines import Job, Pipeline
from bench.submit_latency import free_port, wait_healthy

CLK_TCK = os.sysconf("SC_CLK_TCK")
IDLE_SECONDS = 5.0
TARGET_RATIO = 1.5
TARGET_ORCH_MS = 60.0
TARGET_P95_FIRST = 2.0
PIPELINE = Pipeline(
    "load",
    "two `sleep 1` jobs in parallel, then an `echo` job that needs both (one stage)",
    ("build",),
    (
        Job("a", "build", ("sleep 1",)),
        Job("b", "build", ("sleep 1",)),
        Job("c", "build", ("echo done",), ("a", "b")),
    ),
)
TWO_STAGES = Pipeline(
    "load",
    "two `sleep 1` jobs in parallel, then an `echo` job in a second stage",
    ("build", "test"),
    (
        Job("a", "build", ("sleep 1",)),
        Job("b", "build", ("sleep 1",)),
        Job("c", "test", ("echo done",)),
    ),
)
NAME = "bench-" + PIPELINE.name  # the pipeline's name in cicd (pipelines.cicd_yaml)


# -- CPU from /proc -----------------------------------------------------------------------------


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU-s of the process and its reaped children) of ``pid``; None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
    ppid = int(fields[1])
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return ppid, (utime + stime + cutime + cstime) / CLK_TCK


def _processes() -> dict[int, tuple[int, float]]:
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            found[int(entry)] = stat
    return found


def pids_named(comm: str) -> list[int]:
    """The pids whose /proc/PID/comm is ``comm``."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and Path(f"/proc/{entry}/comm").read_text().strip() == comm:
                pids.append(int(entry))
        except OSError:
            continue
    return pids


class ShimSampler:
    """CPU-s of the containerd shims (one per container, with the runc processes they reap).

    A shim is reparented to init and its CPU vanishes when it exits, so it is sampled every
    ``interval`` seconds while the burst runs: a lower bound (what a shim spent after its last
    sample is missed).
    """

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.base: dict[int, float] = {}
        self.own_cpu = 0.0
        self.seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> dict[int, float]:
        found = {}
        for pid in pids_named("containerd-shim"):  # comm is cut at 15 characters
            if (stat := _stat(pid)) is not None:
                found[pid] = stat[1]
        return found

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            for pid, cpu in self._sample().items():
                self.seen[pid] = max(cpu, self.seen.get(pid, 0.0))
        self.own_cpu = time.thread_time()  # not the clients' (api mode measures this process)

    def __enter__(self) -> ShimSampler:
        self.base = self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        for pid, cpu in self._sample().items():
            self.seen[pid] = max(cpu, self.seen.get(pid, 0.0))

    @property
    def total(self) -> float:
        return sum(cpu - self.base.get(pid, 0.0) for pid, cpu in self.seen.items())


def tree_cpu(roots: dict[str, int | None]) -> dict[str, float]:
    """CPU-s of each named process tree (the root, its live descendants and what they reaped).

    A root inside another root's tree counts for itself only (the Prefect server, should it be a
    child of the cicd server, is not counted twice).
    """
    procs = _processes()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    root_pids = {pid for pid in roots.values() if pid}
    result = {}
    for name, root in roots.items():
        total, stack = 0.0, [root] if root and root in procs else []
        while stack:
            pid = stack.pop()
            total += procs[pid][1]
            stack.extend(c for c in children.get(pid, []) if c not in root_pids)
        result[name] = total
    return result


# -- the floor ----------------------------------------------------------------------------------


class Floor:
    """The pipelines' containers started by hand with the docker CLI, as ``bench/floor.py`` does,
    with a label of this bench's own (removing them never touches another bench's containers)."""

    def __init__(self) -> None:
        self.label = f"cicd-bench-load={secrets.token_hex(6)}"

    def _docker_run(self, image: str, workspace: Path, job: Job) -> int:
        command = [
            "docker",
            "run",
            "--rm",
            "--label",
            self.label,
            "-v",
            f"{workspace}:/workspace",
            "-w",
            "/workspace",
            "--entrypoint",
            "sh",
            image,
            "-e",
            "-c",
            "\n".join(job.script),
        ]
        return subprocess.run(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        ).returncode

    def pipeline(self, p: Pipeline, began: float) -> float:
        """Run ``p`` in its best schedule; seconds from ``began`` until its last container ended."""
        workspace = Path(tempfile.mkdtemp(prefix="cicd-bench-load-floor-"))
        failures: list[str] = []
        try:
            for stage in p.stages:
                failures += run_as_ready(
                    p.stage_jobs(stage), lambda job: self._docker_run(p.image, workspace, job)
                )
            ended = time.perf_counter() - began
        finally:
            shutil.rmtree(workspace, ignore_errors=True)
        if failures:
            raise RuntimeError(f"floor run of {p.name} failed: {', '.join(failures)}")
        return ended

    def burst(self, p: Pipeline, n: int) -> list[float]:
        """``n`` pipelines at once; each one's seconds from the start until it ended."""
        began = time.perf_counter()
        with ThreadPoolExecutor(n) as pool:
            return list(pool.map(lambda _: self.pipeline(p, began), range(n)))

    def cleanup(self) -> int:
        return tools.remove_containers(f"label={self.label}")


# -- the cicd server ----------------------------------------------------------------------------


@dataclass
class Run:
    """One submitted run: when it was submitted, what the server said, its events' times."""

    submitted: float  # time.time() when the client started / the thread began to submit
    ended: float = 0.0  # time.time() when the client exited / run_finished arrived
    number: int | None = None
    exit_code: int | None = None
    status: str | None = None
    started: float | None = None  # run_started, as stamped by the server
    first_job: float | None = None  # the first job_started
    finished: float | None = None  # run_finished
    output: str = ""
    cpu: float = 0.0  # the client process and its children (cli mode)


@dataclass
class Server:
    """A ``cicd server`` in a temporary CICD_HOME, as ``bench/submit_latency.py`` starts one."""

    work: Path
    max_runs: int
    database: str | None = None  # CICD_DATABASE_URL (PostgreSQL: Prefect's state goes beside it)
    extra_env: dict[str, str] = field(default_factory=dict)  # --server-env, e.g. Prefect settings
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def home(self) -> Path:
        return self.work / "home"

    @property
    def prefect_log(self) -> Path:
        return self.home / "prefect" / "server.log"

    def start(self) -> None:
        from backend.remote import RemoteBackend

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = tools.cicd_env(self.home)
        env["CICD_API_TOKEN"] = self.token
        env["CICD_MAX_RUNS"] = str(self.max_runs)
        if self.database:
            env["CICD_DATABASE_URL"] = self.database
        env.update(self.extra_env)
        self.log = (self.work / "server.log").open("wb")
        self.proc = subprocess.Popen(
            [str(tools.CICD), "server", "--port", str(self.port)],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.backend = RemoteBackend(self.url, token=self.token)
        wait_healthy(self.backend, self.proc, 180)

    def prefect_pid(self) -> int | None:
        try:
            return int(json.loads((self.home / "prefect" / "server.json").read_text())["pid"])
        except (OSError, ValueError, KeyError):
            return None

    def lock_lines(self) -> tuple[int, int]:
        """("database is locked" lines, retried 503s) in the Prefect server's log so far."""
        try:
            text = self.prefect_log.read_text(errors="replace")
        except OSError:
            return 0, 0
        return text.count("database is locked"), text.count("Encountered retryable exception")

    def stop(self, keep_logs: Path | None = None) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)  # cancels runs still going, removes containers
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if hasattr(self, "backend"):
            self.backend.close()
        if hasattr(self, "log"):
            self.log.close()
        if self.home.exists():
            from flows.prefect_api import stop_local_server

            stop_local_server(self.home)
            remove_run_containers(self.home)
        if keep_logs is not None:  # --logs: the servers' logs, for a look at what took long
            keep_logs.mkdir(parents=True, exist_ok=True)
            for source, name in (
                (self.work / "server.log", "cicd-server.log"),
                (self.prefect_log, "prefect-server.log"),
            ):
                if source.exists():
                    shutil.copyfile(source, keep_logs / name)


def remove_run_containers(home: Path) -> int:
    """Remove containers the cicd of ``home`` left (their cicd.run label starts with its key)."""
    import hashlib

    key = hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:12]  # Service.run_key
    listed = subprocess.run(
        [
            "docker",
            "ps",
            "-a",
            "--filter",
            "label=cicd.managed=1",
            "--format",
            '{{.ID}} {{.Label "cicd.run"}}',
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split("\n")
    ids = [
        line.split()[0]
        for line in listed
        if line.split()[1:2] and line.split()[1].startswith(key + "-")
    ]
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, check=False)
    return len(ids)


class Clients:
    """Submitting runs: ``cicd run --server`` processes (cli) or threads of this process (api)."""

    def __init__(self, mode: str, server: Server, repo: Path, work: Path) -> None:
        self.mode, self.server, self.repo, self.work = mode, server, repo, work
        self.env = tools.cicd_env(work / "client-home")  # a client's own home, as elsewhere
        self.env["CICD_API_TOKEN"] = server.token
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.lock = threading.Lock()

    def burst(self, n: int) -> list[Run]:
        runs = [Run(0.0) for _ in range(n)]
        if self.mode == "cli":
            started = []
            for i, run in enumerate(runs):
                with (self.work / f"client-{i}.out").open("wb") as out:
                    run.submitted = time.time()
                    proc = subprocess.Popen(
                        [str(tools.CICD), "run", "--server", self.server.url, "--force"],
                        cwd=self.repo,
                        env=self.env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,  # Ctrl-C reaches this bench only; it ends them
                    )
                with self.lock:
                    self.procs[proc.pid] = proc
                started.append(proc)
            waiters = [
                threading.Thread(target=self._reap, args=(proc, run, i), daemon=True)
                for i, (proc, run) in enumerate(zip(started, runs, strict=True))
            ]
        else:
            waiters = [
                threading.Thread(target=self._submit, args=(run,), daemon=True) for run in runs
            ]
        for waiter in waiters:
            waiter.start()
        for waiter in waiters:
            waiter.join()
        return runs

    def _reap(self, proc: subprocess.Popen[bytes], run: Run, index: int) -> None:
        _, status, usage = os.wait4(proc.pid, 0)  # usage includes its reaped children (git)
        run.ended = time.time()
        proc.returncode = run.exit_code = os.waitstatus_to_exitcode(status)
        with self.lock:
            self.procs.pop(proc.pid, None)
        run.cpu = usage.ru_utime + usage.ru_stime
        run.output = (self.work / f"client-{index}.out").read_text(errors="replace")
        if match := re.match(rf"{re.escape(NAME)}#(\d+)\s", run.output):
            run.number = int(match.group(1))

    def _submit(self, run: Run) -> None:
        from backend.requests import prepare_run
        from backend.source.bundles import make_bundle

        run.submitted = time.time()
        try:
            prepared = prepare_run(
                cwd=self.repo, repo=str(self.repo), cache_dir=self.work / "client-home", force=True
            )
            reply = self.server.backend.submit(prepared, make_bundle(prepared.source))
            run.number = int(reply["run"])
            record_events(self.server, run)
            run.exit_code = 0 if run.status == "SUCCESS" else 1
        except Exception as exc:  # reported as a failed run
            run.output, run.exit_code = f"{type(exc).__name__}: {exc}", 1
        run.ended = time.time()

    def one(self) -> Run:
        return self.burst(1)[0]

    def stop(self) -> None:
        """End the clients still running (they cancel their run), then kill what is left."""
        with self.lock:
            left = list(self.procs.values())
        for proc in left:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in left:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def record_events(server: Server, run: Run) -> None:
    """Follow (or replay) ``run``'s events until run_finished; note the times that matter."""
    assert run.number is not None
    for event in server.backend.events(NAME, run.number):
        at = event.at.timestamp()
        if event.kind == "run_started" and run.started is None:
            run.started = at
        elif event.kind == "job_started" and run.first_job is None:
            run.first_job = at
        elif event.kind == "run_finished":
            run.finished = at
            run.status = event.status.value if event.status is not None else None
    if run.first_job is None:  # events no longer kept (a finished run's are only replayed
        # for the server's last KEEP_FINISHED runs): the store's record says when
        record = server.backend.run(NAME, run.number)
        starts = [j.started_at for st in record.stages for j in st.jobs if j.started_at]
        run.started = record.started_at.timestamp() if record.started_at else None
        run.first_job = min(starts).timestamp() if starts else None
        run.finished = record.finished_at.timestamp() if record.finished_at else None
        run.status = record.status.value


# -- figures ------------------------------------------------------------------------------------


def percentiles(values: list[float]) -> dict[str, float]:
    """p50 (median), p95 (nearest rank) and max."""
    ordered = sorted(values)
    if not ordered:
        return {"p50": math.nan, "p95": math.nan, "max": math.nan}
    rank = max(1, math.ceil(0.95 * len(ordered)))
    return {"p50": statistics.median(ordered), "p95": ordered[rank - 1], "max": ordered[-1]}


def measure_floor(pipeline: Pipeline, n: int, floor: Floor) -> dict[str, Any]:
    floor.pipeline(pipeline, time.perf_counter())  # warm-up
    roots = {"dockerd": _one(pids_named("dockerd")), "containerd": _one(pids_named("containerd"))}
    before, clients_before = tree_cpu(roots), _children_cpu()
    with ShimSampler() as shims:
        ends = floor.burst(pipeline, n)
    after, clients_after = tree_cpu(roots), _children_cpu()
    cpu = {name: after[name] - before[name] for name in roots}
    cpu["shims"] = shims.total
    cpu["docker CLI"] = clients_after - clients_before
    return {"wall": max(ends), "end": percentiles(ends), "cpu": cpu}


def _one(pids: list[int]) -> int | None:
    return pids[0] if pids else None


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _self_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure_cicd(options: argparse.Namespace, work: Path, repo: Path, cleanup: list[Any]) -> dict:
    database = None
    if options.postgres:
        database = fresh_database(options.postgres, cleanup)
    server = Server(work, options.max_runs, database, dict(options.server_env))
    cleanup.append(lambda: server.stop(options.logs))
    began = time.monotonic()
    server.start()
    healthy = time.monotonic() - began
    clients = Clients(options.mode, server, repo, work)
    cleanup.append(clients.stop)  # cleaned up in reverse: clients end before the server
    warm = clients.one()
    if warm.exit_code != 0:
        raise SystemExit(f"warm-up run failed (exit {warm.exit_code}):\n{warm.output[-3000:]}")
    prefect = server.prefect_pid()
    roots = {
        "cicd server": server.proc.pid if server.proc else None,
        "Prefect server": prefect,
        "dockerd": _one(pids_named("dockerd")),
        "containerd": _one(pids_named("containerd")),
    }
    idle_before = tree_cpu(roots)
    time.sleep(IDLE_SECONDS)  # what the servers burn doing nothing, for comparison
    idle_after = tree_cpu(roots)
    idle = {
        name: (idle_after[name] - idle_before[name]) / IDLE_SECONDS
        for name in ("cicd server", "Prefect server")
    }
    locks_before = server.lock_lines()
    cpu_before, self_before, children_before = tree_cpu(roots), _self_cpu(), _children_cpu()
    with ShimSampler() as shims:
        runs = clients.burst(options.runs)
    cpu_after, self_after, children_after = tree_cpu(roots), _self_cpu(), _children_cpu()
    locks_after = server.lock_lines()
    cpu = {name: cpu_after[name] - cpu_before[name] for name in roots}
    cpu["shims"] = shims.total
    if options.mode == "cli":
        cpu["clients"] = sum(run.cpu for run in runs)
    else:  # this process's threads and the git processes they ran
        own = self_after - self_before - shims.own_cpu
        cpu["clients"] = own + (children_after - children_before)
    if options.mode == "cli":
        for run in runs:
            if run.number is not None:
                record_events(server, run)  # replayed: the server keeps finished runs' events
    listed = sorted(r.run for r in server.backend.runs(NAME).runs)
    statuses = {r.run: r.status.value for r in server.backend.runs(NAME).runs}
    first = min(run.submitted for run in runs)
    wall = max(run.ended for run in runs) - first
    failed = [run for run in runs if run.exit_code != 0 or run.status != "SUCCESS"]
    expected = list(range(1, options.runs + 2))
    return {
        "server_healthy_s": healthy,
        "idle_cpu_per_s": idle,
        "prefect_pid_found": prefect is not None,
        "wall": wall,
        "runs": [
            {
                "run": r.number,
                "exit": r.exit_code,
                "status": r.status,
                "submit_to_started": _rel(r.started, r.submitted),
                "submit_to_first_job": _rel(r.first_job, r.submitted),
                "submit_to_end": _rel(r.finished, r.submitted),
            }
            for r in runs
        ],
        "submit_to_started": percentiles(
            [r.started - r.submitted for r in runs if r.started is not None]
        ),
        "submit_to_first_job": percentiles(
            [r.first_job - r.submitted for r in runs if r.first_job is not None]
        ),
        "submit_to_end": percentiles(
            [r.finished - r.submitted for r in runs if r.finished is not None]
        ),
        "cpu": cpu,
        "lock_lines": locks_after[0] - locks_before[0],
        "lock_retries": locks_after[1] - locks_before[1],
        "run_numbers": listed,
        "gap_free": listed == expected,
        "all_success": not failed and all(statuses.get(n) == "SUCCESS" for n in expected),
        "failed": [
            {"run": r.number, "exit": r.exit_code, "status": r.status, "tail": r.output[-1500:]}
            for r in failed
        ],
    }


def _rel(at: float | None, since: float) -> float | None:
    return None if at is None else at - since


def report(result: dict[str, Any]) -> None:
    o, floor, cicd = result["options"], result["floor"], result["cicd"]
    jobs = result["jobs"]
    print(
        f"load: {o['runs']} runs of a 3-job pipeline at once ({o['pipeline']}), "
        f"{jobs} jobs; mode {o['mode']}; CICD_MAX_RUNS={o['max_runs']}"
        + (" (runs beyond it were queued)" if o["max_runs"] < o["runs"] else " (no run queued)")
    )
    print(f"cicd server healthy after {cicd['server_healthy_s']:.1f}s; one warm-up run first")
    print()
    print(f"{'':28}{'floor (docker CLI)':>20}{'cicd':>12}")
    print(
        f"{'wall':28}{floor['wall']:>19.1f}s{cicd['wall']:>11.1f}s   ratio {result['ratio']:.2f}x"
    )
    print()
    print(f"{'per run, seconds':28}{'p50':>8}{'p95':>8}{'max':>8}")
    rows = [
        ("floor: start -> end", floor["end"]),
        ("cicd: submit -> run started", cicd["submit_to_started"]),
        ("cicd: submit -> first job", cicd["submit_to_first_job"]),
        ("cicd: submit -> end", cicd["submit_to_end"]),
    ]
    for label, p in rows:
        print(f"{label:28}{p['p50']:>8.2f}{p['p95']:>8.2f}{p['max']:>8.2f}")
    print()
    print(f"{'CPU during the burst':28}{'floor s':>9}{'ms/job':>8}{'cicd s':>9}{'ms/job':>8}")
    names = ["cicd server", "Prefect server", "dockerd", "containerd", "shims", "clients"]
    for name in names:
        fc = floor["cpu"].get("docker CLI" if name == "clients" else name)
        cc = cicd["cpu"].get(name)
        label = {
            "shims": "shims + runc (sampled, >=)",
            "clients": "clients: docker | " + ("cicd run" if o["mode"] == "cli" else "threads"),
        }.get(name, name)
        cells = [
            f"{v:>9.2f}{v / jobs * 1000:>8.0f}" if v is not None else f"{'-':>9}{'-':>8}"
            for v in (fc, cc)
        ]
        print(f"{label:28}" + "".join(cells))
    orch = result["orchestration_ms_per_job"]
    print(f"{'orchestration (cicd + Prefect)':28}{'':17}{orch * jobs / 1000:>9.2f}{orch:>8.0f}")
    idle = cicd["idle_cpu_per_s"]
    idle_ms = sum(idle.values()) * cicd["wall"] / jobs * 1000
    print(
        f"  idle, before the burst: cicd server {idle['cicd server'] * 1000:.0f} ms/s, Prefect "
        f"server {idle['Prefect server'] * 1000:.0f} ms/s: over this wall {idle_ms:.0f} ms/job"
    )
    print()
    print(
        f"Prefect SQLite lock: {cicd['lock_lines']} 'database is locked' lines, "
        f"{cicd['lock_retries']} retried 503s (2 s each) during the burst"
    )
    print(
        f"nothing lost: runs {_span(cicd['run_numbers'])} "
        f"{'gap-free' if cicd['gap_free'] else 'WITH GAPS'}, "
        f"{'all SUCCESS' if cicd['all_success'] else 'NOT ALL SUCCESS'}"
    )
    for failed in cicd["failed"][:3]:
        print(f"  run {failed['run']}: exit {failed['exit']}, {failed['status']}\n{failed['tail']}")
    print()
    for target in result["targets"]:
        print(f"{'MET' if target['met'] else 'MISSED':>6}  {target['name']}: {target['value']}")


def _span(numbers: list[int]) -> str:
    return f"{numbers[0]}..{numbers[-1]} ({len(numbers)})" if numbers else "none"


def fresh_database(admin: str, cleanup: list[Any]) -> str:
    """A new PostgreSQL database for the server's store (``admin``'s role must be allowed to
    create databases); it and the Prefect database beside it are dropped at the end."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"cicd_bench_{secrets.token_hex(5)}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:  # not WITH (FORCE): the superuser's autovacuum may be on it
        for db in (f"{name}_prefect", name):
            for _ in range(60):  # the stopped servers' connections are closing
                try:
                    with engine.connect() as connection:
                        connection.execute(text(f'DROP DATABASE IF EXISTS "{db}"'))
                    break
                except Exception:
                    time.sleep(0.5)
        engine.dispose()

    cleanup.append(drop)  # runs after the server has stopped (cleanup goes in reverse)
    return make_url(admin).set(database=name).render_as_string(hide_password=False)


def _key_value(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, not {item!r}")
    return key, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="runs submitted at once")
    parser.add_argument(
        "--mode",
        choices=["cli", "api"],
        default="cli",
        help="cli: N `cicd run --server` processes; api: N threads of this one",
    )
    parser.add_argument(
        "--max-runs",
        type=int,
        default=None,
        help="the server's CICD_MAX_RUNS (default: --runs, nothing queued)",
    )
    parser.add_argument("--image", default=PIPELINE.image)
    parser.add_argument(
        "--stages",
        action="store_true",
        help="the echo job in a second stage instead of needing the others (a stage boundary)",
    )
    parser.add_argument(
        "--postgres",
        metavar="ADMIN_URL",
        default=None,
        help="keep the server's store (and so its Prefect server's state) on PostgreSQL: a "
        "fresh database made with this URL's role, dropped at the end",
    )
    parser.add_argument(
        "--server-env",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        type=_key_value,
        help="a variable for the cicd server and the Prefect server it starts (repeatable), e.g. "
        "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED=false",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--logs", type=Path, default=None, help="copy the cicd and Prefect server logs here"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="bursts to measure (each: floor, then cicd with a fresh server); with more than "
        "one, the medians and ranges are reported and the targets judged on the medians",
    )
    options = parser.parse_args()
    if options.runs < 1:
        parser.error("--runs must be at least 1")
    if options.repeat < 1:
        parser.error("--repeat must be at least 1")
    options.max_runs = options.max_runs or options.runs
    pipeline = dataclasses.replace(TWO_STAGES if options.stages else PIPELINE, image=options.image)

    previous = signal.signal(signal.SIGTERM, _interrupt)
    results: list[dict[str, Any]] = []
    try:
        for index in range(options.repeat):
            results.append(summarize(options, pipeline, *burst(options, pipeline)))
            if options.repeat > 1 and not options.json:
                print(f"burst {index + 1}/{options.repeat}: {_brief(results[-1])}", flush=True)
    except KeyboardInterrupt:
        print("interrupted: cleaning up", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)

    if options.repeat == 1:
        if options.json:
            print(json.dumps(results[0], indent=2))
        else:
            report(results[0])
    else:
        medians = median_figures(results)
        if options.json:
            print(json.dumps({"bursts": results, "medians": medians}, indent=2))
        else:
            report_medians(medians, len(results))
    if not all(result["targets"][-1]["met"] for result in results):
        raise SystemExit(1)


def burst(options: argparse.Namespace, pipeline: Pipeline) -> tuple[dict[str, Any], ...]:
    """One burst: the floor, then cicd (its own server and home); everything it started is
    removed before it returns, so the next burst starts from an idle machine."""
    work = Path(tempfile.mkdtemp(prefix="cicd-bench-load-"))
    floor = Floor()
    cleanup: list[Any] = [floor.cleanup]
    try:
        repo = tools.make_repo(pipeline, "cicd", parent=work)
        floor_result = measure_floor(pipeline, options.runs, floor)
        cicd_result = measure_cicd(options, work, repo, cleanup)
    finally:
        for step in reversed(cleanup):  # clients, then the server, then floor containers
            try:
                step()
            except Exception as exc:  # keep cleaning
                print(f"cleanup: {type(exc).__name__}: {exc}", file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)
    return floor_result, cicd_result


def summarize(
    options: argparse.Namespace,
    pipeline: Pipeline,
    floor_result: dict[str, Any],
    cicd_result: dict[str, Any],
) -> dict[str, Any]:
    """One burst's figures, ratio and targets."""
    jobs = 3 * options.runs
    ratio = cicd_result["wall"] / floor_result["wall"]
    orch = (cicd_result["cpu"]["cicd server"] + cicd_result["cpu"]["Prefect server"]) / jobs * 1000
    p95 = cicd_result["submit_to_first_job"]["p95"]
    lost = not (cicd_result["all_success"] and cicd_result["gap_free"])
    return {
        "options": {
            "runs": options.runs,
            "mode": options.mode,
            "max_runs": options.max_runs,
            "image": options.image,
            "pipeline": pipeline.description,
            "store": "postgresql" if options.postgres else "sqlite",
        },
        "jobs": jobs,
        "floor": floor_result,
        "cicd": cicd_result,
        "ratio": ratio,
        "orchestration_ms_per_job": orch,
        "targets": _targets(ratio, orch, p95, lost),
    }


def _targets(ratio: float, orch: float, p95: float, lost: bool) -> list[dict[str, Any]]:
    return [
        {
            "name": f"wall <= {TARGET_RATIO}x floor",
            "value": f"{ratio:.2f}x",
            "met": ratio <= TARGET_RATIO,
        },
        {
            "name": f"orchestration CPU <= {TARGET_ORCH_MS:.0f} ms per job",
            "value": f"{orch:.0f} ms",
            "met": orch <= TARGET_ORCH_MS,
        },
        {
            "name": f"p95 submit -> first job < {TARGET_P95_FIRST:.0f} s",
            "value": f"{p95:.2f} s",
            "met": p95 < TARGET_P95_FIRST,
        },
        {
            "name": "every run SUCCESS, run numbers gap-free",
            "value": "no" if lost else "yes",
            "met": not lost,
        },
    ]


# what --repeat reports the median of: name -> (its value in one burst's result, format)
_MEDIANS: dict[str, tuple[Callable[[dict[str, Any]], float], str]] = {
    "floor wall, s": (lambda r: r["floor"]["wall"], "{:.1f}"),
    "cicd wall, s": (lambda r: r["cicd"]["wall"], "{:.1f}"),
    "ratio": (lambda r: r["ratio"], "{:.2f}x"),
    "submit -> first job p50, s": (lambda r: r["cicd"]["submit_to_first_job"]["p50"], "{:.2f}"),
    "submit -> first job p95, s": (lambda r: r["cicd"]["submit_to_first_job"]["p95"], "{:.2f}"),
    "submit -> end p50, s": (lambda r: r["cicd"]["submit_to_end"]["p50"], "{:.2f}"),
    "cicd server, ms/job": (lambda r: r["cicd"]["cpu"]["cicd server"] / r["jobs"] * 1000, "{:.0f}"),
    "Prefect server, ms/job": (
        lambda r: r["cicd"]["cpu"]["Prefect server"] / r["jobs"] * 1000,
        "{:.0f}",
    ),
    "orchestration, ms/job": (lambda r: r["orchestration_ms_per_job"], "{:.0f}"),
    "clients, ms/job": (lambda r: r["cicd"]["cpu"]["clients"] / r["jobs"] * 1000, "{:.0f}"),
}


def median_figures(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each figure of ``_MEDIANS`` over the bursts, with its range, and the
    targets judged on the medians (nothing lost: in every burst)."""
    figures = {}
    for name, (value, _) in _MEDIANS.items():
        values = [value(result) for result in results]
        figures[name] = {
            "median": statistics.median(values),
            "min": min(values),
            "max": max(values),
        }
    lost = not all(result["targets"][-1]["met"] for result in results)
    return {
        "options": results[0]["options"],
        "figures": figures,
        "targets": _targets(
            figures["ratio"]["median"],
            figures["orchestration, ms/job"]["median"],
            figures["submit -> first job p95, s"]["median"],
            lost,
        ),
    }


def report_medians(medians: dict[str, Any], bursts: int) -> None:
    """The medians over ``bursts`` bursts, each with its range, and the targets on them."""
    o = medians["options"]
    print()
    print(
        f"load: {o['runs']} runs of a 3-job pipeline at once ({o['pipeline']}); mode "
        f"{o['mode']}; median of {bursts} bursts (floor, then cicd, in each)"
    )
    print(f"{'':30}{'median':>9}   range")
    for name, (_, fmt) in _MEDIANS.items():
        figure = medians["figures"][name]
        low, high = fmt.format(figure["min"]), fmt.format(figure["max"])
        print(f"{name:30}{fmt.format(figure['median']):>9}   {low} .. {high}")
    print()
    for target in medians["targets"]:
        print(f"{'MET' if target['met'] else 'MISSED':>6}  {target['name']}: {target['value']}")


def _brief(result: dict[str, Any]) -> str:
    cicd = result["cicd"]
    return (
        f"floor {result['floor']['wall']:.1f}s, cicd {cicd['wall']:.1f}s, "
        f"ratio {result['ratio']:.2f}x, orchestration {result['orchestration_ms_per_job']:.0f} "
        f"ms/job, p95 submit -> first job {cicd['submit_to_first_job']['p95']:.2f}s, "
        + ("nothing lost" if result["targets"][-1]["met"] else "RUNS LOST OR FAILED")
    )


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    main()
