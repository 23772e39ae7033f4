"""A throw-away git project and the real ``cicd`` console script to run its pipelines.

Every run goes through the installed entry point in a subprocess, exactly as a user types it:
``CICD_HOME`` is the project's own temporary folder, ``PREFECT_API_URL`` is the test session's
Prefect server (inherited from the environment), no ``CICD_SERVER``, and ``CICD_DAEMON=0``:
runs execute in the ``cicd`` process itself. Results are read back with
``cicd report --format json`` (SPEC §3.1), never from the product's internals.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from backend.runner.base import LABEL_MANAGED

CICD = Path(sys.executable).with_name("cicd")
BUSYBOX = "cicd-busybox:latest"
GIT_USER = ["-c", "user.name=cicd e2e", "-c", "user.email=e2e@example.invalid"]
# two 60 s jobs side by side, then a stage after them: a run that is still going when stopped
SLEEPERS = f"""\
pipeline: {{name: sleepers, stages: [one, two], image: {BUSYBOX}}}
jobs:
  - {{name: nap1, stage: one, script: ["sleep 60", "echo woke-$CICD_JOB"]}}
  - {{name: nap2, stage: one, script: ["sleep 60", "echo woke-$CICD_JOB"]}}
  - {{name: after, stage: two, script: "echo ran-$CICD_JOB"}}
"""


def default_sigint() -> None:
    """In a child before exec: SIGINT back to its default (it may be inherited as ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` and return its stdout (stripped); fails loudly."""
    done = subprocess.run(
        ["git", *GIT_USER, *args], cwd=repo, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def when(value: str) -> datetime:
    """A report timestamp (ISO 8601 with offset) as an aware datetime."""
    return datetime.fromisoformat(value)


@dataclass
class Output:
    """How one ``cicd`` command ended."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def lines(self) -> list[str]:
        """stdout's lines."""
        return self.stdout.splitlines()

    def job_lines(self, job: str) -> list[str]:
        """The text of the live lines prefixed with ``job``'s name (``job | text``)."""
        found = []
        for line in self.lines:
            name, sep, text = line.partition(" | ")
            if sep and name.strip() == job:
                found.append(text)
        return found


@dataclass
class Project:
    """A git repository with a ``.pipelines/`` folder and its own ``CICD_HOME``."""

    repo: Path
    home: Path
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, root: Path) -> Project:
        """An empty repository (branch ``main``) under ``root``."""
        repo, home = root / "repo", root / "home"
        repo.mkdir(parents=True)
        home.mkdir()
        git(repo, "init", "-q", "-b", "main")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CICD_")}
        # in-process runs (the daemon path has its own tests: tests/cli/test_daemon.py)
        env.update(CICD_HOME=str(home), CICD_DAEMON="0", NO_COLOR="1", COLUMNS="200", TZ="UTC")
        assert env.get("PREFECT_API_URL"), "the session's Prefect API must be set"
        return cls(repo, home, env)

    def write(self, files: dict[str, str | bytes]) -> None:
        """Write files into the work tree (not committed)."""
        for name, content in files.items():
            path = self.repo / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)

    def commit(self, files: dict[str, str | bytes]) -> str:
        """Write and commit ``files``; return the new commit's sha."""
        self.write(files)
        git(self.repo, "add", "--", *files)
        git(self.repo, "commit", "-q", "-m", "e2e")
        return git(self.repo, "rev-parse", "HEAD")

    def cicd(self, *args: str, timeout: float = 120) -> Output:
        """Run ``cicd ARGS`` in the repository and wait for it."""
        start = time.monotonic()
        done = subprocess.run(
            [str(CICD), *args],
            cwd=self.repo,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Output(done.returncode, done.stdout, done.stderr, time.monotonic() - start)

    def run(self, *args: str, timeout: float = 120) -> Output:
        """``cicd run ARGS``; checks what holds after every run, however it ended.

        No traceback on either stream, and no workspace left under ``CICD_HOME/workspaces``.
        """
        out = self.cicd("run", *args, timeout=timeout)
        assert "Traceback" not in out.stdout + out.stderr, out.stdout + out.stderr
        assert self.workspaces() == [], self.workspaces()
        return out

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """Start ``cicd ARGS`` without waiting; stdout and stderr merged, line by line.

        Its SIGINT is the default one: a suite started in the background (``cmd &``) ignores
        SIGINT, and a child would inherit that and never see the tests' Ctrl-C.
        """
        return subprocess.Popen(
            [str(CICD), *args],
            cwd=self.repo,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            preexec_fn=default_sigint,
        )

    def report(self, pipeline: str, number: int) -> dict[str, Any]:
        """``cicd report -p NAME --run N --format json``, parsed."""
        out = self.cicd("report", "-p", pipeline, "--run", str(number), "--format", "json")
        assert out.returncode == 0, out.stderr
        data: dict[str, Any] = json.loads(out.stdout)
        return data

    def workspaces(self) -> list[str]:
        """What is left under ``CICD_HOME/workspaces``."""
        folder = self.home / "workspaces"
        return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def jobs(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every job of a run report, by name."""
    return {job["name"]: job for stage in report["stages"] for job in stage["jobs"]}


def stages(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every stage of a run report, by name."""
    return {stage["name"]: stage for stage in report["stages"]}


def own_prefect_project(root: Path, files: dict[str, str | bytes]) -> Project:
    """A project whose cicd starts its own daemon and Prefect server (no PREFECT_API_URL), with
    ``files`` committed; stop both after with ``stop_daemon``/``stop_local_server``."""
    made = Project.create(root)
    for name in ("PREFECT_API_URL", "PREFECT_HOME", "PREFECT_API_AUTH_STRING", "CICD_DAEMON"):
        made.env.pop(name, None)
    made.commit(files)
    return made


def prefect_flow_runs(home: Path, name: str, timeout: float = 90) -> list[dict[str, Any]]:
    """The flow runs named ``name`` on ``home``'s local Prefect server, once one has ended.

    A cold start's run may end before its flow has mirrored it into Prefect, even before that
    server answers at all (backend/headstart.py): this waits for both.
    """
    from flows.prefect_api import auth_header, read_local_server

    query = json.dumps({"flow_runs": {"name": {"any_": [name]}}}).encode()
    deadline = time.monotonic() + timeout
    while True:
        info = read_local_server(home)
        assert info is not None, "no local Prefect server recorded"
        request = urllib.request.Request(
            f"{info['url']}/flow_runs/filter",
            data=query,
            headers={"Content-Type": "application/json", **auth_header(home)},
        )
        with contextlib.suppress(OSError):  # refused while it boots
            with urllib.request.urlopen(request, timeout=30) as reply:
                found: list[dict[str, Any]] = json.load(reply)
            if found and all(r["state_type"] not in ("PENDING", "RUNNING") for r in found):
                return found
        assert time.monotonic() < deadline, f"{name} did not end in Prefect in {timeout}s"
        time.sleep(0.3)


def wait_for_line(proc: subprocess.Popen[str], needle: str, timeout: float) -> list[str]:
    """Read ``proc``'s output until a line contains ``needle``; return the lines read.

    Reads on the calling thread: the deadline is checked between lines, and the test's own
    timeout (pytest-timeout) bounds a process that stays silent.
    """
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        seen.append(line.rstrip("\n"))
        if needle in line:
            return seen
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"no line with {needle!r} within {timeout}s:\n" + "\n".join(seen))


def managed_containers() -> set[str]:
    """Ids of every container carrying the product's ``cicd.managed`` label, running or not."""
    listed = subprocess.run(
        ["docker", "ps", "-a", "-q", "--no-trunc", "--filter", f"label={LABEL_MANAGED}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(listed.stdout.split())


def containers_of_home(home: Path) -> set[str]:
    """Ids of the containers of every run of ``home`` (their ``cicd.run`` label starts with its
    hash, see ``Service.run_key``)."""
    prefix = hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:12] + "-"
    listed = subprocess.run(
        ["docker", "ps", "-a", "--no-trunc", "--filter", f"label={LABEL_MANAGED}",
         "--format", '{{.ID}} {{.Label "cicd.run"}}'],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = (line.split(" ", 1) for line in listed.stdout.splitlines() if " " in line)
    return {cid for cid, run in rows if run.startswith(prefix)}


def remove_containers(ids: set[str]) -> None:
    """Force-remove containers this test started (after killing the ``cicd`` that owned them)."""
    if ids:
        subprocess.run(["docker", "rm", "-f", *sorted(ids)], capture_output=True, check=False)


@dataclass
class Sleeping:
    """A ``cicd run`` caught while a job runs ``sleep 60`` (see ``sleeping_run``)."""

    proc: subprocess.Popen[str]
    seen: list[str]  # its output up to that job's `$ sleep 60` line
    containers: set[str]  # the run's containers by then


@contextlib.contextmanager
def sleeping_run(project: Project, *args: str, settle: float = 0.0) -> Iterator[Sleeping]:
    """Start ``cicd run ARGS`` (a pipeline like SLEEPERS) and follow it until a job sleeps.

    ``settle`` seconds more let sibling containers start too. On the way out a ``cicd`` still
    running is killed and the run's containers removed, so a failing test leaves nothing for
    60 s.
    """
    before = managed_containers()
    ours: set[str] = set()
    with project.popen("run", *args) as proc:
        try:
            try:
                seen = wait_for_line(proc, "| $ sleep 60", timeout=60)
            except BaseException:  # a job may have started before the line failed to come
                proc.kill()
                remove_containers(containers_of_home(project.home))
                raise
            time.sleep(settle)
            ours = managed_containers() - before
            yield Sleeping(proc, seen, ours)
        finally:
            if proc.poll() is None:
                proc.kill()
                remove_containers(ours)
