"""The physical floor: a pipeline's containers started by hand in the best possible schedule.

Every job's container starts the moment its stage has begun and every job it needs has ended
(unlimited parallelism, no bookkeeping), with the workspace bind-mounted at ``/workspace`` and the
script run by ``sh -e -c`` as cicd does. Two ways to start a container:

- ``cli``: ``docker run --rm`` (what the issue calls "by hand");
- ``sdk``: the docker Python SDK: create, start, wait, remove (what cicd itself does, minus
  the log streaming).

Every container carries the label ``cicd-bench=floor`` and is removed (``--rm`` / remove), and
``cleanup()`` removes any that a crash left behind.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bench.pipelines import Job, Pipeline

LABEL = "cicd-bench"


def _script(job: Job) -> str:
    return "\n".join(job.script)


def _run_cli(image: str, workspace: Path, job: Job) -> int:
    command = [
        "docker",
        "run",
        "--rm",
        "--label",
        f"{LABEL}=floor",
        "-v",
        f"{workspace}:/workspace",
        "-w",
        "/workspace",
        "--entrypoint",
        "sh",
        image,
        "-e",
        "-c",
        _script(job),
    ]
    return subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode


class _Sdk:
    def __init__(self) -> None:
        import docker

        self.client = docker.from_env(max_pool_size=300)

    def run(self, image: str, workspace: Path, job: Job) -> int:
        api = self.client.api
        host_config = api.create_host_config(
            binds={str(workspace): {"bind": "/workspace", "mode": "rw"}}
        )
        container = api.create_container(
            image=image,
            entrypoint=["sh", "-e", "-c", _script(job)],
            working_dir="/workspace",
            labels={LABEL: "floor"},
            host_config=host_config,
        )["Id"]
        try:
            api.start(container)
            return int(api.wait(container)["StatusCode"])
        finally:
            api.remove_container(container, force=True)


def run_as_ready(jobs: list[Job], run: Callable[[Job], int]) -> list[str]:
    """Run each job (``run`` returns its exit code) as soon as its needs are done, all in
    threads; return ``name: exit N`` for each that failed."""
    failures: list[str] = []
    done = {job.name: threading.Event() for job in jobs}

    def work(job: Job) -> None:
        for need in job.needs:
            done[need].wait()
        if (code := run(job)) != 0:
            failures.append(f"{job.name}: exit {code}")
        done[job.name].set()

    threads = [threading.Thread(target=work, args=(job,), daemon=True) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


def run_floor(p: Pipeline, mode: str = "cli", workspace: Path | None = None) -> float:
    """Run ``p``'s containers in the best schedule; return the wall-clock seconds."""
    own = workspace is None
    ws = Path(tempfile.mkdtemp(prefix="cicd-bench-floor-")) if own else workspace
    sdk = _Sdk() if mode == "sdk" else None
    failures: list[str] = []
    try:
        began = time.perf_counter()
        for stage in p.stages:
            jobs = p.stage_jobs(stage)
            failures += run_as_ready(
                jobs, lambda job: sdk.run(p.image, ws, job) if sdk else _run_cli(p.image, ws, job)
            )
        elapsed = time.perf_counter() - began
    finally:
        if own:
            shutil.rmtree(ws, ignore_errors=True)
        if sdk:
            sdk.client.close()
    if failures:
        raise RuntimeError(f"floor run of {p.name} failed: {', '.join(failures[:5])}")
    return elapsed


def cleanup() -> int:
    """Remove leftover floor containers; return how many there were."""
    from bench.tools import remove_containers

    return remove_containers(f"label={LABEL}=floor")


if __name__ == "__main__":
    import argparse

    from bench import pipelines

    parser = argparse.ArgumentParser(description="Time the floor of one benchmark pipeline.")
    parser.add_argument("name", choices=sorted(pipelines.PIPELINES))
    parser.add_argument("--mode", choices=["cli", "sdk"], default="cli")
    args = parser.parse_args()
    try:
        seconds = run_floor(pipelines.get(args.name), args.mode)
        print(f"{args.name} floor ({args.mode}): {seconds:.2f}s")
    finally:
        cleanup()
