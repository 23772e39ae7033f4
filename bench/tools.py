"""Running the tools under test: ``cicd run`` (cold and warm) and gitlab-ci-local.

Each tool gets its own temporary git repository holding the pipeline (``make_repo``), so that
one tool's leftovers (gitlab-ci-local's ``.gitlab-ci-local/`` folder) never look like uncommitted
changes to the other.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import pipelines
from bench.pipelines import Pipeline

REPO_ROOT = Path(__file__).resolve().parent.parent
WORK = REPO_ROOT / "bench" / "_work"
CICD = REPO_ROOT / ".venv" / "bin" / "cicd"
GCL_VERSION = "4.70.1"
GCL_PREFIX = WORK / "gcl"
GCL_BIN = GCL_PREFIX / "node_modules" / ".bin" / "gitlab-ci-local"
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}


@dataclass
class Timed:
    """One timed command: wall-clock seconds, exit status and the end of its output."""

    seconds: float
    returncode: int
    tail: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def make_repo(p: Pipeline, tool: str, parent: Path | None = None) -> Path:
    """A fresh git repository with ``p`` written for ``tool`` ("cicd" or "gcl"), committed."""
    repo = Path(tempfile.mkdtemp(prefix=f"cicd-bench-{tool}-{p.name}-", dir=parent))
    if tool == "cicd":
        (repo / ".pipelines").mkdir()
        (repo / ".pipelines" / "pipeline.yaml").write_text(pipelines.cicd_yaml(p))
    else:
        (repo / ".gitlab-ci.yml").write_text(pipelines.gitlab_yaml(p))
        (repo / ".gitignore").write_text(".gitlab-ci-local/\n")
    (repo / "README").write_text(f"benchmark pipeline {p.name}: {p.description}\n")
    env = {**os.environ, **_GIT_ENV}
    for command in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        ["git", "commit", "-q", "-m", "bench"],
    ):
        subprocess.run(command, cwd=repo, env=env, check=True, capture_output=True)
    return repo


def timed(command: list[str], cwd: Path, env: dict[str, str], timeout: float = 900) -> Timed:
    """Run ``command``; time it from just before start to its exit."""
    began = time.perf_counter()
    try:
        proc = subprocess.run(
            command,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
        seconds = time.perf_counter() - began
        output = proc.stdout.decode(errors="replace")
        return Timed(seconds, proc.returncode, "\n".join(output.splitlines()[-15:]))
    except subprocess.TimeoutExpired as exc:
        output = (exc.stdout or b"").decode(errors="replace")
        return Timed(
            time.perf_counter() - began, -9, f"timed out after {timeout}s\n{output[-2000:]}"
        )


# -- cicd ---------------------------------------------------------------------------------------


def cicd_env(home: Path) -> dict[str, str]:
    """The environment of a ``cicd run``: its own CICD_HOME, cicd manages its Prefect server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CICD_"))}
    env["CICD_HOME"] = str(home)
    env["NO_COLOR"] = "1"
    return env


def new_home() -> Path:
    return Path(tempfile.mkdtemp(prefix="cicd-bench-home-"))


def run_cicd(repo: Path, home: Path, extra: list[str] | None = None) -> Timed:
    """``cicd run`` in ``repo`` with ``home`` as CICD_HOME."""
    return timed([str(CICD), "run", *(extra or [])], repo, cicd_env(home))


def wait_mirrored(home: Path, timeout: float = 120) -> float:
    """Wait until ``home``'s local Prefect server answers and has no flow run going; seconds.

    A cold run may end before its flow has mirrored it into Prefect (backend/headstart.py);
    a warm run measured meanwhile would share the machine with that mirror and the server's
    start. Returns how long it waited (0 when nothing was left).
    """
    import json
    import urllib.request

    from flows.prefect_api import auth_header, read_local_server

    began = time.perf_counter()
    going = {"flow_runs": {"state": {"type": {"any_": ["PENDING", "RUNNING", "SCHEDULED"]}}}}
    while time.perf_counter() - began < timeout:
        info = read_local_server(home)
        if info is None:
            return time.perf_counter() - began
        request = urllib.request.Request(
            f"{info['url']}/flow_runs/filter",
            data=json.dumps(going).encode(),
            headers={"Content-Type": "application/json", **auth_header(home)},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                if not json.load(reply):
                    return time.perf_counter() - began
        except OSError:
            pass  # refused while it boots
        time.sleep(0.2)
    raise TimeoutError(f"Prefect of {home} still busy after {timeout:.0f}s")


def stop_cicd_home(home: Path, remove: bool = True) -> None:
    """Stop the backend daemon and Prefect server cicd started for ``home``; delete ``home``."""
    code = (
        "import sys; from pathlib import Path; from flows.prefect_api import stop_local_server; "
        "from cicd_cli.daemon import stop_daemon; "
        "stop_daemon(Path(sys.argv[1])); stop_local_server(Path(sys.argv[1]))"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(home)],
        cwd=REPO_ROOT,
        check=False,
        capture_output=True,
        timeout=60,
    )
    if remove:
        shutil.rmtree(home, ignore_errors=True)


# -- gitlab-ci-local ----------------------------------------------------------------------------


def ensure_gcl() -> Path:
    """Install gitlab-ci-local under bench/_work/gcl (git-ignored) unless it is there already."""
    if not GCL_BIN.exists():
        GCL_PREFIX.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "npm",
                "install",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(GCL_PREFIX),
                f"gitlab-ci-local@{GCL_VERSION}",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return GCL_BIN


GCL_HELPER_IMAGE = "cicd-gcl-helper:bookworm"
GCL_HELPER_BASE = "cicd-python:bookworm"


def ensure_gcl_helper() -> str:
    """A local helper image for gitlab-ci-local: it copies artifacts with bash and rsync.

    Its own helper image comes from a registry; offline, ``cicd-python:bookworm`` plus this
    Debian bookworm machine's ``rsync`` (and ``libpopt``, the one library of it the image lacks)
    does the same. Without rsync gitlab-ci-local silently passes no artifacts between jobs.
    """
    present = subprocess.run(
        ["docker", "image", "inspect", GCL_HELPER_IMAGE], capture_output=True, check=False
    )
    if present.returncode == 0:
        return GCL_HELPER_IMAGE
    rsync = shutil.which("rsync")
    if rsync is None:
        raise SystemExit("gitlab-ci-local needs rsync: apt-get install rsync")
    popt = Path("/lib/x86_64-linux-gnu/libpopt.so.0").resolve()
    with tempfile.TemporaryDirectory() as context:
        shutil.copy(rsync, Path(context) / "rsync")
        shutil.copy(popt, Path(context) / "libpopt.so.0")
        (Path(context) / "Dockerfile").write_text(
            f"FROM {GCL_HELPER_BASE}\n"
            "COPY rsync /usr/bin/rsync\n"
            "COPY libpopt.so.0 /lib/x86_64-linux-gnu/libpopt.so.0\n"
            'RUN ["rsync", "--version"]\n'
        )
        subprocess.run(
            ["docker", "build", "-q", "-t", GCL_HELPER_IMAGE, context],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return GCL_HELPER_IMAGE


def gcl_command(helper_image: str | None = None) -> list[str]:
    """gitlab-ci-local on the current folder's pipeline; offline: local images only, quiet."""
    helper_image = helper_image or ensure_gcl_helper()
    return [
        str(ensure_gcl()),
        "--pull-policy",
        "if-not-present",
        "--helper-image",
        helper_image,
        "--no-color",
        "--quiet",
        "--cleanup",
    ]


def gcl_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["HOME"] = str(home)  # its ~/.gitlab-ci-local/ stays out of the real home
    return env


def run_gcl(repo: Path, timeout: float = 900) -> Timed:
    """gitlab-ci-local in ``repo``; a run over ``timeout`` seconds is killed (exit -9)."""
    home = repo / ".gitlab-ci-local" / "home"
    home.mkdir(parents=True, exist_ok=True)
    return timed(gcl_command(), repo, gcl_env(home), timeout=timeout)


def remove_containers(docker_filter: str) -> int:
    """Force-remove every container matching ``docker ps --filter``; return how many."""
    ids = subprocess.run(
        ["docker", "ps", "-aq", "--filter", docker_filter],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, check=False)
    return len(ids)


def cleanup_gcl(repo: Path | None = None) -> int:
    """Remove what gitlab-ci-local left behind: containers using its ``gcl-*`` volumes, the
    volumes, and ``repo``. It removes them itself when a run ends normally (``--cleanup``); this
    covers a killed run. Returns how many containers were removed."""
    volumes = subprocess.run(
        ["docker", "volume", "ls", "-q", "--filter", "name=gcl-"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    removed = sum(remove_containers(f"volume={volume}") for volume in volumes)
    if volumes:
        subprocess.run(["docker", "volume", "rm", "-f", *volumes], capture_output=True, check=False)
    if repo is not None:
        with contextlib.suppress(OSError):
            shutil.rmtree(repo, ignore_errors=True)
    return removed
