"""Jobs with any legal name (``deploy/staging``, ``a b``, ``build: [a, b]``) through the API."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
from apikit import IMAGE, Api, follow, make_repo, submit

from backend.requests import PreparedRun
from backend.runner.base import FakeOutcome
from backend.runner.fake import FakeRunner

CICD = Path(sys.executable).with_name("cicd")
NAMES = ["deploy/staging", "a b", "build: [a, b]", "test 1/3", "déploiement ✓", "x/log"]
PIPELINE = f"""\
pipeline:
  name: names
  image: {IMAGE}
jobs:
""" + "".join(
    f'  - name: "{name}"\n    stage: build\n    script: [echo hi]\n    artifacts: [README]\n'
    for name in NAMES
)


@pytest.fixture
def names_api(
    start_api: Callable[..., Api], prefect_api: str, tmp_path: Path,
    prepare: Callable[..., PreparedRun],
) -> Api:
    """A server that ran ``names#1``, whose jobs each printed ``I am <name>``."""
    runner = FakeRunner(outcomes={name: FakeOutcome(lines=[f"I am {name}"]) for name in NAMES})
    api = start_api(runner=runner)
    submit(api, prepare(make_repo(tmp_path / "repo", PIPELINE)))
    assert follow(api, "names", 1)[-1]["status"] == "SUCCESS"
    return api


def _texts(log: str) -> list[str]:
    return [line.split(" ", 1)[1] for line in log.splitlines()]


def test_job_routes_reach_jobs_whose_names_hold_slashes(names_api: Api) -> None:
    with names_api.client() as client:
        for name in NAMES:
            by_query = client.get("/runs/names/1/job", params={"job": name})
            log = client.get("/runs/names/1/job/log", params={"job": name})
            listed = client.get("/runs/names/1/artifacts", params={"job": name})
            data = client.get("/runs/names/1/artifact", params={"job": name, "path": "README"})
            assert by_query.status_code == 200, (name, by_query.json())
            assert by_query.json()["name"] == name
            assert _texts(log.text)[0] == f"I am {name}"
            assert [a["path"] for a in listed.json()] == ["README"]
            assert data.content == b"hello\n"


@pytest.mark.parametrize("encode", [lambda n: n, lambda n: quote(n, safe="")])
def test_job_path_routes_take_names_with_slashes_raw_or_encoded(
    names_api: Api, encode: Callable[[str], str]
) -> None:
    with names_api.client() as client:
        job = client.get(f"/runs/names/1/jobs/{encode('deploy/staging')}")
        log = client.get(f"/runs/names/1/jobs/{encode('test 1/3')}/log")
    assert (job.status_code, job.json()["name"]) == (200, "deploy/staging")
    assert _texts(log.text)[0] == "I am test 1/3"


def test_remote_backend_reaches_jobs_with_any_name(names_api: Api, tmp_path: Path) -> None:
    backend = names_api.backend()
    for name in NAMES:
        assert backend.job("names", 1, name).name == name
        assert _texts("\n".join(backend.log("names", 1, name)))[0] == f"I am {name}"
        dest = tmp_path / "got" / quote(name, safe="")
        backend.download_artifact("names", 1, name, "README", dest)
        assert dest.read_bytes() == b"hello\n"


def test_cicd_logs_server_prints_the_log_of_deploy_staging(names_api: Api, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CICD_")}
    env.update(CICD_HOME=str(tmp_path / "client-home"), NO_COLOR="1")
    done = subprocess.run(
        [str(CICD), "logs", "names#1", "--job", "deploy/staging", "--server", names_api.url,
         "--no-timestamps"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines()[0] == "I am deploy/staging"
