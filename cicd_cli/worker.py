"""``cicd worker``: a Prefect worker that executes scheduled and triggered pipeline runs."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from backend.settings import Settings


def worker(
    pool: str = typer.Option("cicd", "--pool", help="The work pool to take runs from."),
    limit: int | None = typer.Option(
        None, "--limit", min=1, help="Run at most N pipeline runs at once."
    ),
) -> None:
    """Execute the runs of prefect.yaml's deployments on this machine (needs Docker).

    Creates the work pool when it does not exist, then becomes `prefect worker start` on it,
    against PREFECT_API_URL (or the local Prefect server of CICD_HOME). Start one on each
    machine that should run pipelines; runs are recorded in this machine's CICD_HOME, or in a
    shared store with CICD_DATABASE_URL. While it runs, it keeps CICD_HOME's local Prefect
    server up (a lease, kept across the exec into the Prefect worker).
    """
    settings = Settings()
    from backend.engines import ensure_work_pool, use_prefect

    use_prefect(settings.home)
    if ensure_work_pool(pool):
        typer.echo(f"created work pool '{pool}'")
    prefect = Path(sys.executable).with_name("prefect")
    command = [
        str(prefect),
        "worker",
        "start",
        "--pool",
        pool,
        "--type",
        "process",
        "--install-policy",
        "never",
    ]
    if limit:
        command += ["--limit", str(limit)]
    env = {
        **os.environ,
        "PREFECT_WORKER_QUERY_SECONDS": os.environ.get("PREFECT_WORKER_QUERY_SECONDS", "2"),
    }
    sys.stdout.flush()
    os.execve(command[0], command, env)  # signals reach the worker itself
