"""What a service costs a job: ``DockerRunner.run_job`` of ``true`` with and without one service.

Three medians of N runs (default 7) with the local busybox image: a job without services, the same
job with one busybox ``httpd`` service (its network made and removed too), and a bare network
create + remove. Usage: ``python -m bench.services_cost [N]``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import docker

from backend.runner.base import JobSpec, ServiceSpec
from backend.runner.docker import DockerRunner

IMAGE = "cicd-busybox:latest"
HTTPD = ServiceSpec(IMAGE, "web", ["sh", "-c"], ["exec httpd -f -p 80"])


def run_once(runner: DockerRunner, workspace: Path, services: list[ServiceSpec]) -> float:
    """Seconds one ``run_job`` of ``true`` takes, its services included."""
    spec = JobSpec(
        run_id=f"bench-services-{uuid.uuid4().hex[:8]}",
        job="job",
        stage="test",
        image=IMAGE,
        script=["true"],
        env={},
        workspace=workspace,
        timeout=60,
        services=services,
    )
    started = time.perf_counter()
    result = runner.run_job(spec, lambda line: None, threading.Event())
    took = time.perf_counter() - started
    if result.outcome.value != "SUCCESS":
        raise SystemExit(f"the job failed: {result.error}")
    return took


def network_once(client: docker.DockerClient) -> float:
    """Seconds a bare bridge network's create + remove takes."""
    started = time.perf_counter()
    made = client.api.create_network(f"bench-services-{uuid.uuid4().hex[:8]}", driver="bridge")
    client.api.remove_network(made["Id"])
    return time.perf_counter() - started


def main(count: int) -> None:
    """Print the three medians in milliseconds."""
    runner = DockerRunner()
    workspace = Path(tempfile.mkdtemp(prefix="bench-services-"))
    run_once(runner, workspace, [])  # warm: the image's layers and the client's pool
    run_once(runner, workspace, [HTTPD])
    plain = statistics.median(run_once(runner, workspace, []) for _ in range(count))
    served = statistics.median(run_once(runner, workspace, [HTTPD]) for _ in range(count))
    client = docker.from_env()
    network = statistics.median(network_once(client) for _ in range(count))
    print(
        f"job without services {plain * 1000:.0f} ms, with one service {served * 1000:.0f} ms "
        f"(+{(served - plain) * 1000:.0f} ms); network create + remove {network * 1000:.0f} ms "
        f"(medians of {count})"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
