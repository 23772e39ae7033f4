"""``cicd worker`` creates its work pool offline and polls it as a Prefect worker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from prockit import stop_group

CICD = Path(sys.executable).with_name("cicd")


def test_worker_creates_its_pool_and_registers_as_a_worker(
    tmp_path: Path, prefect_api: str
) -> None:
    from prefect.client.orchestration import get_client

    pool = f"test-pool-{os.getpid()}"
    env = {**os.environ, "CICD_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen(
        [str(CICD), "worker", "--pool", pool], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        workers: list[object] = []
        deadline = time.monotonic() + 60
        with get_client(sync_client=True) as client:
            while not workers and time.monotonic() < deadline:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else b""
                try:
                    workers = list(client.read_workers_for_work_pool(pool))
                except Exception:  # the pool is not there yet
                    workers = []
                time.sleep(0.5)
            assert client.read_work_pool(pool).type == "process"
        assert workers, "no worker registered on the pool within 60 s"
    finally:
        output = stop_group(proc)
    assert f"created work pool '{pool}'".encode() in output
