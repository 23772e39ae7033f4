"""The background processes ``cicd run`` starts hold no caller secret, and the Prefect one is shut.

One ``cicd run --secret MYSECRET`` through the daemon, in a fresh ``CICD_HOME`` without
``PREFECT_API_URL`` (so cicd starts its own Prefect server, as for a new user), with MYSECRET in
the caller's environment. The tests then look at what that left running: the daemon and the
local Prefect server (and every process of theirs), and the Prefect server's API.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from backend.processes import background_env
from cicd_cli.daemon import read_state, state_path, stop_daemon
from flows.prefect_api import auth_header, auth_path, read_local_server, stop_local_server

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "e2e"))  # not a package
from e2ekit import BUSYBOX, Output, Project, prefect_flow_runs

SECRETIVE = f"""\
pipeline: {{name: secretive, image: {BUSYBOX}}}
jobs:
  - {{name: show, stage: build, script: ['echo "it is $MYSECRET"', 'test -n "$MYSECRET"']}}
"""
FOREIGN = "https://evil.example"


@dataclass
class SecretRun:
    """The project, what ``cicd run`` printed, the secret, and the two background pids."""

    project: Project
    out: Output
    secret: str
    daemon: int
    prefect: int
    prefect_url: str


@pytest.fixture(scope="module")
def secret_run(
    tmp_path_factory: pytest.TempPathFactory, prefect_api: str
) -> Iterator[SecretRun]:
    """The run, in a fresh home whose daemon and Prefect server cicd starts; stopped after."""
    project = Project.create(tmp_path_factory.mktemp("secret-run"))
    del project.env["CICD_DAEMON"]
    for name in ("PREFECT_API_URL", "PREFECT_HOME", "PREFECT_API_AUTH_STRING"):
        project.env.pop(name, None)
    secret = f"s3cr3t-{secrets.token_hex(12)}"
    project.env["MYSECRET"] = secret
    project.commit({".pipelines/secretive.yaml": SECRETIVE})
    try:
        out = project.run("-p", "secretive", "--secret", "MYSECRET", timeout=240)
        daemon = read_state(state_path(project.home))
        prefect = read_local_server(project.home)
        assert daemon is not None and prefect is not None, out.stdout + out.stderr
        # the tests read what reached Prefect: a run that ended before its server answered
        # is mirrored into it afterwards
        prefect_flow_runs(project.home, "secretive#1")
        yield SecretRun(
            project, out, secret, int(daemon["pid"]), int(prefect["pid"]), str(prefect["url"])
        )
    finally:
        stop_daemon(project.home)
        stop_local_server(project.home)


def _processes_of(home: Path, sessions: set[int]) -> dict[int, bytes]:
    """pid -> environ of every process in ``sessions`` or whose environment names ``home``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile, or not ours
        session = int(stat.rpartition(")")[2].split()[4])
        if session in sessions or f"CICD_HOME={home}".encode() in environ.split(b"\0"):
            found[int(entry.name)] = environ
    return found


@pytest.mark.docker
def test_background_processes_environ_holds_no_caller_secret(secret_run: SecretRun) -> None:
    out = secret_run.out
    assert out.returncode == 0, out.stdout + out.stderr
    assert "it is ****" in out.job_lines("show"), out.stdout  # it did reach the job
    found = _processes_of(secret_run.project.home, {secret_run.daemon, secret_run.prefect})
    assert {secret_run.daemon, secret_run.prefect} <= set(found), found.keys()
    leaking = [pid for pid, environ in found.items() if secret_run.secret.encode() in environ]
    assert leaking == [], f"the caller's secret is in /proc/<pid>/environ of {leaking}"
    daemon_env = dict(
        item.split(b"=", 1) for item in found[secret_run.daemon].split(b"\0") if b"=" in item
    )
    assert b"MYSECRET" not in daemon_env
    assert daemon_env[b"CICD_HOME"] == str(secret_run.project.home).encode()


@pytest.mark.docker
def test_local_prefect_server_requires_auth_and_refuses_foreign_origins(
    secret_run: SecretRun,
) -> None:
    url, home = secret_run.prefect_url, secret_run.project.home
    assert auth_path(home).stat().st_mode & 0o777 == 0o600
    assert (home / "prefect" / "server.json").stat().st_mode & 0o777 == 0o600
    query = {"flow_runs": {"name": {"any_": ["secretive#1"]}}}
    with httpx.Client(timeout=30, trust_env=False) as client:
        anonymous = client.post(f"{url}/flow_runs/filter", json=query)
        assert anonymous.status_code == 401, anonymous.text

        authorized = client.post(f"{url}/flow_runs/filter", json=query, headers=auth_header(home))
        assert authorized.status_code == 200, authorized.text
        flow_runs = json.loads(authorized.text)
        assert [(run["name"], run["state_type"]) for run in flow_runs] == [
            ("secretive#1", "COMPLETED")
        ]

        simple = client.get(f"{url}/health", headers={"Origin": FOREIGN})
        assert simple.status_code == 200
        assert "access-control-allow-origin" not in simple.headers
        preflight = client.options(
            f"{url}/flow_runs/filter",
            headers={
                "Origin": FOREIGN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        assert "access-control-allow-origin" not in preflight.headers, preflight.headers
        own = url.removesuffix("/api")  # the UI's own origin still may
        same = client.get(f"{url}/health", headers={"Origin": own})
        assert same.headers.get("access-control-allow-origin") == own


def test_background_env_keeps_configuration_and_drops_the_rest() -> None:
    caller = {
        "PATH": "/bin", "HOME": "/home/me", "LC_ALL": "C.UTF-8", "CICD_HOME": "/data",
        "CICD_MAX_RUNS": "3", "CICD_HEAD_TIMEOUT": "2", "PREFECT_API_URL": "http://p/api",
        "DOCKER_HOST": "unix:///run/docker.sock", "XDG_CACHE_HOME": "/cache",
        "CICD_API_TOKEN": "callers-token", "CICD_SERVER": "http://elsewhere",
        "MYSECRET": "s", "DOCKER_PASSWORD": "p", "AWS_SECRET_ACCESS_KEY": "k", "GIT_DIR": "/x",
    }
    assert background_env(caller, CICD_API_TOKEN="own") == {
        "PATH": "/bin", "HOME": "/home/me", "LC_ALL": "C.UTF-8", "CICD_HOME": "/data",
        "CICD_MAX_RUNS": "3", "CICD_HEAD_TIMEOUT": "2", "PREFECT_API_URL": "http://p/api",
        "DOCKER_HOST": "unix:///run/docker.sock", "XDG_CACHE_HOME": "/cache",
        "CICD_API_TOKEN": "own",
    }
