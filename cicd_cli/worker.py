"""``cicd worker``: a Prefect worker that executes pipeline runs on this machine."""

from __future__ import annotations

import os
import re
import socket
import sys
from pathlib import Path

import typer

from backend.settings import Settings
from cicd_cli.errors import EXIT_USAGE, abort

NAME_HELP = (
    "How runs name this worker (default host/worker-PID); keep it stable across restarts to "
    "tell one machine's runs apart in `cicd report` (CICD_WORKER_NAME)."
)


def worker(
    pool: str = typer.Option("cicd", "--pool", help="The work pool to take runs from."),
    limit: int | None = typer.Option(
        None, "--limit", min=1, help="Run at most N pipeline runs at once; more wait on the pool."
    ),
    name: str | None = typer.Option(None, "--name", envvar="CICD_WORKER_NAME", help=NAME_HELP),
) -> None:
    """Execute the runs of a work pool on this machine (needs Docker).

    Takes the runs a `cicd server --pool NAME` hands to the pool (set CICD_SERVER and
    CICD_API_TOKEN to that server, and CICD_DATABASE_URL to the team's PostgreSQL store), and
    the runs of prefect.yaml's deployments and `cicd schedule`s. Each run executes in this
    machine's CICD_HOME; its events, logs and artifacts are sent to the server. A run of a
    worker that dies is ended FAILED by the server within CICD_WORKER_LEASE (30 s) and a bit;
    its containers are removed when this worker starts again.

    Creates the work pool when it does not exist, then becomes `prefect worker start` on it,
    against PREFECT_API_URL (or the local Prefect server of CICD_HOME).
    """
    settings = Settings()
    if name is not None and not re.fullmatch(r"[^\x00-\x1f\x7f]{1,255}", name):
        abort("--name: 1 to 255 characters, none of them control characters", EXIT_USAGE)
    from backend.engines import ensure_work_pool, use_prefect
    from backend.service import Service
    from backend.worker import reap_claimed

    # the name runs record: this process's PID survives the exec into the Prefect worker
    name = name or f"{socket.gethostname()}/worker-{os.getpid()}"
    service = Service(settings.model_copy(update={"worker_name": name}), mode="worker")
    try:
        reaped = reap_claimed(service)  # runs this home was executing when its worker died
    except Exception as exc:
        abort(f"cannot clear what a previous worker left: {exc}", EXIT_USAGE)
    if reaped:
        typer.echo(f"removed what {len(reaped)} interrupted run(s) left: {', '.join(reaped)}")
    use_prefect(settings.home)
    if ensure_work_pool(pool):
        typer.echo(f"created work pool '{pool}'")
    typer.echo(f"worker {name} takes runs from work pool '{pool}'")
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
        "--name",
        re.sub(r"[/%]", "-", name),  # Prefect's worker names take neither
    ]
    if limit:
        command += ["--limit", str(limit)]
    env = {
        **os.environ,
        "CICD_WORKER_NAME": name,
        "PREFECT_WORKER_QUERY_SECONDS": os.environ.get("PREFECT_WORKER_QUERY_SECONDS", "1"),
    }
    sys.stdout.flush()
    os.execve(command[0], command, env)  # signals reach the worker itself
