"""Team mode on one machine as if on three: a ``cicd server --pool``, two ``cicd worker``s with
their own ``CICD_HOME``s, one PostgreSQL store and a Prefect server of its own on PostgreSQL
(its own database, as docs/team.md sets it up); real containers, every process through its
console script.

Twenty runs submitted at once all complete, both workers take some, and every state, log line
and artifact is read back through the server after the workers' own files are gone (no shared
filesystem). A worker killed mid-run (its whole process tree, as when its machine dies) leaves
its run FAILED within 60 s, and the worker started again removes the run's containers. A
schedule fired on the pool hands its run to the server, which a worker executes like any other.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2ekit import Project, containers_of_home, default_sigint, remove_containers
from pgtools import drop_database
from prockit import free_port, stop_group
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.postgres]

CICD = Path(sys.executable).with_name("cicd")
TOKEN = "team-token-" + uuid.uuid4().hex
RUNS = 20

PIPELINE = """\
pipeline:
  name: team
  stages: [build, test]
  image: cicd-busybox:latest
jobs:
  - name: compile
    stage: build
    script:
      - echo "compiled by $CI_PIPELINE_ID"
      - mkdir -p out && echo "binary $CI_PIPELINE_ID" > out/app
    artifacts: ["out/app"]
  - name: unit
    stage: test
    script:
      - cat out/app
      - echo "unit done"
"""

SLOW = """\
pipeline:
  name: slow
  stages: [test]
  image: cicd-busybox:latest
jobs:
  - name: forever
    stage: test
    script:
      - echo started
      - sleep 600
"""


@contextlib.contextmanager
def postgres_schema() -> Iterator[str]:
    """The URL of an empty PostgreSQL schema of its own, dropped afterwards."""
    base = os.environ.get("CICD_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("CICD_TEST_POSTGRES_URL is not set")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(base)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


PREFECT_API: dict[str, str] = {}  # the module's Prefect server, once started


def env_of(home: Path, **extra: str) -> dict[str, str]:
    """A process's environment: its own home, the module's Prefect API (with the session's auth
    string, inherited)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CICD_")}
    env.update(PREFECT_API, CICD_HOME=str(home), NO_COLOR="1", COLUMNS="200", TZ="UTC", **extra)
    return env


@contextlib.contextmanager
def prefect_on_postgres(root: Path) -> Iterator[tuple[str, str]]:
    """A ``prefect server start`` on a PostgreSQL database of its own (created, then dropped):
    its API URL and the database's URL."""
    base = os.environ.get("CICD_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("CICD_TEST_POSTGRES_URL is not set")
    name = f"prefect_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    database = make_url(base).set(drivername="postgresql+asyncpg", database=name)
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CICD_", "PREFECT_"))}
    env.update(
        PREFECT_HOME=str(root / "prefect"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_API_DATABASE_CONNECTION_URL=database.render_as_string(hide_password=False),
        PREFECT_SERVER_API_AUTH_STRING=os.environ.get("PREFECT_API_AUTH_STRING", ""),
    )
    with (root / "prefect.log").open("w") as out:
        server = subprocess.Popen(
            [str(CICD.with_name("prefect")), "server", "start", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=default_sigint,
        )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and server.poll() is None:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/health", timeout=2, trust_env=False).status_code == 200:
                    break
            time.sleep(0.5)
        else:
            raise AssertionError("Prefect did not start:\n" + (root / "prefect.log").read_text())
        yield url, make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        stop_group(server, signal.SIGINT)
        drop_database(admin, name)
        admin.dispose()


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                ppid = int(stat.rpartition(")")[2].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@dataclass
class Team:
    """The server, the workers and the store of one test module."""

    root: Path
    database: str
    pool: str
    prefect_database: str  # the Prefect server's own PostgreSQL database
    url: str = ""
    server: subprocess.Popen[str] | None = None
    workers: dict[str, subprocess.Popen[str]] = field(default_factory=dict)

    def home(self, name: str) -> Path:
        return self.root / name

    def log(self, name: str) -> Path:
        """Where process ``name``'s output goes (a file: a pipe nobody reads would fill up and
        block it)."""
        return self.root / f"{name}.log"

    def start_server(self) -> None:
        with self.log("server").open("w") as out:
            self.server = subprocess.Popen(
                [str(CICD), "server", "--port", "0", "--pool", self.pool],
                env=env_of(self.home("server"), CICD_DATABASE_URL=self.database,
                           CICD_API_TOKEN=TOKEN),
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=default_sigint,
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and self.server.poll() is None:
            found = re.search(r"cicd API\s+(http://\S+?)/api/v1", self.log("server").read_text())
            if found:
                self.url = found.group(1)
                return
            time.sleep(0.2)
        raise AssertionError("the server did not start:\n" + self.log("server").read_text())

    def start_worker(self, name: str, limit: int = 6) -> None:
        home = self.home(name)
        with self.log(name).open("a") as out:
            self.workers[name] = subprocess.Popen(
                [str(CICD), "worker", "--pool", self.pool, "--name", f"{name}/worker",
                 "--limit", str(limit)],
                env=env_of(home, CICD_DATABASE_URL=self.database, CICD_API_TOKEN=TOKEN,
                           CICD_SERVER=self.url),
                cwd=self.root, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=default_sigint,
            )

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url + "/api/v1", headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=30, trust_env=False,
        )

    def stop(self) -> None:
        for proc in self.workers.values():
            if proc.poll() is None:
                stop_group(proc)
        if self.server is not None and self.server.poll() is None:
            stop_group(self.server, signal.SIGINT)


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    """A server handing runs to pool P, and two workers (box1, box2) of P."""
    root = tmp_path_factory.mktemp("team")
    with prefect_on_postgres(root) as (prefect, prefect_database), postgres_schema() as database:
        PREFECT_API["PREFECT_API_URL"] = prefect
        team = Team(root, database, pool=f"team-{uuid.uuid4().hex[:8]}",
                    prefect_database=prefect_database)
        try:
            team.start_server()
            for name in ("box1", "box2"):
                team.start_worker(name, limit=2)
            yield team
        finally:
            team.stop()
            leftovers = set().union(*(containers_of_home(team.home(n)) for n in ("box1", "box2")))
            remove_containers(leftovers)
            PREFECT_API.clear()
            assert not leftovers, "containers left behind"


def project(root: Path, files: dict[str, str]) -> Project:
    made = Project.create(root)
    made.commit(files)
    return made


def submit(made: Project, team: Team, pipeline: str) -> subprocess.CompletedProcess[str]:
    """``cicd run -p PIPELINE --server URL --force`` from the project's repository."""
    return subprocess.run(
        [str(CICD), "run", "-p", pipeline, "--server", team.url, "--force"],
        cwd=made.repo, env=env_of(made.home, CICD_API_TOKEN=TOKEN), capture_output=True,
        # 20 runs queue behind 4 slots: the last ones wait for every earlier one (~3 min here,
        # several times that on a slower machine)
        text=True, timeout=1500, check=False,
    )


def test_team_runs_at_once_all_complete_on_both_workers(
    team: Team, tmp_path: Path
) -> None:
    made = project(tmp_path, {".pipelines/team.yaml": PIPELINE})
    with ThreadPoolExecutor(RUNS) as pool:
        done = list(pool.map(lambda _: submit(made, team, "team"), range(RUNS)))
    for result in done:
        assert result.returncode == 0, (
            result.stdout + result.stderr + team.log("server").read_text()[-3000:]
        )
        assert "Traceback" not in result.stdout + result.stderr

    # no shared filesystem: what the workers kept is gone, the server must have it all
    for name in ("box1", "box2"):
        for folder in ("logs", "artifacts"):
            shutil.rmtree(team.home(name) / folder, ignore_errors=True)
    with team.api() as api:
        runs: list[dict[str, Any]] = api.get("/pipelines/team/runs").json()["runs"]
        assert sorted(run["run"] for run in runs) == list(range(1, RUNS + 1))
        workers = set()
        for number in range(1, RUNS + 1):
            run = api.get(f"/runs/team/{number}").json()
            assert run["status"] == "SUCCESS", run
            workers.add(run["worker"])
            jobs = {job["name"]: job for stage in run["stages"] for job in stage["jobs"]}
            assert {job["status"] for job in jobs.values()} == {"SUCCESS"}
            unit = api.get(f"/runs/team/{number}/jobs/unit/log").text
            assert "unit done" in unit and "binary" in unit, unit
            assert "compiled by" in api.get(f"/runs/team/{number}/jobs/compile/log").text
            listed = api.get(f"/runs/team/{number}/artifacts").json()
            paths = [item["path"] for item in listed]
            assert paths == ["out/app"], listed
            got = api.get(f"/runs/team/{number}/artifacts/compile/out/app")
            assert got.status_code == 200 and got.content.startswith(b"binary "), got.text
            events = api.get(f"/runs/team/{number}/events")
            if events.status_code == 200:  # kept for the latest finished runs
                assert '"run_finished"' in events.text
    assert workers == {"box1/worker", "box2/worker"}, workers
    # the flow runs are in Prefect's PostgreSQL database, not a SQLite file it fell back to
    engine = create_engine(team.prefect_database)
    try:
        with engine.connect() as connection:
            handed = connection.execute(
                text("SELECT count(*) FROM flow_run WHERE name IS NOT NULL AND state_type = "
                     "'COMPLETED' AND deployment_id IS NOT NULL")
            ).scalar_one()
    finally:
        engine.dispose()
    assert handed >= RUNS, handed


def test_team_killed_worker_fails_its_run_within_60s_and_restart_removes_containers(
    team: Team, tmp_path: Path
) -> None:
    made = project(tmp_path, {".pipelines/slow.yaml": SLOW})
    client = subprocess.Popen(
        [str(CICD), "run", "-p", "slow", "--server", team.url, "--force"],
        cwd=made.repo, env=env_of(made.home, CICD_API_TOKEN=TOKEN), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True, preexec_fn=default_sigint,
    )
    try:
        with team.api() as api:
            deadline = time.monotonic() + 180
            run: dict[str, Any] = {}
            while time.monotonic() < deadline:
                reply = api.get("/runs/slow/1")
                if reply.status_code == 200:
                    run = reply.json()
                    job = run["stages"][0]["jobs"][0]
                    if job["status"] == "RUNNING":
                        break
                time.sleep(0.5)
            else:
                raise AssertionError(f"the slow job never started: {run}")
            victim = run["worker"].partition("/")[0]
            home = team.home(victim)
            deadline = time.monotonic() + 30
            while not containers_of_home(home) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert containers_of_home(home), "the job's container is not running"

            proc = team.workers[victim]
            for pid in [proc.pid, *descendants(proc.pid)]:  # the machine dies
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            proc.wait(10)
            killed = time.monotonic()
            while time.monotonic() - killed < 60:
                run = api.get("/runs/slow/1").json()
                if run["status"] != "RUNNING":
                    break
                time.sleep(1)
            took = time.monotonic() - killed
            assert run["status"] == "FAILED", run
            assert took < 60, took
            events = api.get("/runs/slow/1/events").text  # the run's end, as followers see it
            assert "stopped renewing its lease" in events, events[-2000:]
            assert containers_of_home(home), "dockerd keeps the dead worker's container"

            team.start_worker(victim)  # comes back: removes what its runs left
            deadline = time.monotonic() + 60
            while containers_of_home(home) and time.monotonic() < deadline:
                time.sleep(0.5)
            assert not containers_of_home(home)
        out, _ = client.communicate(timeout=60)
        assert client.returncode == 1, out
        assert "slow#1 FAILED" in out, out
    finally:
        if client.poll() is None:
            stop_group(client)


SCHEDULED = """\
stages: [build]
nightly:
  stage: build
  image: cicd-busybox:latest
  script: ["echo source is $CI_PIPELINE_SOURCE"]
"""


def test_team_schedule_fires_on_a_worker_and_its_run_goes_through_the_server(
    team: Team, tmp_path: Path
) -> None:
    """A schedule's run-now on the pool: the worker hands the run to the server, which queues it
    on the pool; its log is the server's, whichever worker ran it."""
    made = project(tmp_path, {".gitlab-ci.yml": SCHEDULED})
    name = f"nightly-{uuid.uuid4().hex[:8]}"
    env = env_of(made.home)
    added = subprocess.run(
        [str(CICD), "schedule", "add", name, "--cron", "0 3 * * *", "--repo",
         made.repo.as_uri(), "-p", "nightly", "--pool", team.pool],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert added.returncode == 0, added.stderr
    try:
        fired = subprocess.run(  # Prefect's run-now, waiting for the flow run's end
            [str(Path(sys.executable).with_name("prefect")), "deployment", "run",
             f"cicd-deployment/{name}", "--watch", "--watch-timeout", "240"],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )
        assert fired.returncode == 0, fired.stdout + fired.stderr
        assert "Completed" in fired.stdout, fired.stdout
        with team.api() as api:
            deadline = time.monotonic() + 180
            while (run := api.get("/runs/nightly/1").json())["status"] in ("PENDING", "RUNNING"):
                assert time.monotonic() < deadline, run
                time.sleep(0.5)
            assert run["status"] == "SUCCESS", run
            assert run["worker"] in ("box1/worker", "box2/worker"), run
            log = api.get("/runs/nightly/1/jobs/nightly/log").text
        assert "source is schedule" in log, log
    finally:
        subprocess.run([str(CICD), "schedule", "remove", name], env=env, capture_output=True,
                       timeout=120, check=False)  # fmt: skip
