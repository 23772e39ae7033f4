"""``cicd retry``: run again the jobs of a finished run that did not succeed; reuse the rest."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.text import Text

from backend.runs import PullPolicy, RunRef
from backend.settings import Settings
from cicd_cli.errors import err_console


def retry(
    run_name: str = typer.Argument(..., metavar="NAME#N", help="The run to retry, e.g. build#3."),
    job: str | None = typer.Option(
        None,
        "--job",
        metavar="NAME",
        help="Re-run this job (and every job that waits for it) instead of the failed ones.",
    ),
    env: list[str] = typer.Option(
        [],
        "--env",
        help="KEY=VALUE: a variable for the re-run jobs, on top of the run's own --env values.",
    ),
    secret: list[str] = typer.Option(
        [],
        "--secret",
        help="NAME: pass this variable of your environment to jobs, masked (secrets are never "
        "stored: give them again).",
    ),
    server: str | None = typer.Option(
        None,
        "--server",
        envvar="CICD_SERVER",
        help="Retry a run of this cicd server instead of the local one.",
    ),
    jobs: int | None = typer.Option(
        None, "--jobs", "-j", min=1, metavar="N", help="Run at most N jobs at once."
    ),
    pull: PullPolicy = typer.Option(
        PullPolicy.IF_NOT_PRESENT, "--pull", help="When to pull images."
    ),
    no_daemon: bool = typer.Option(
        False,
        "--no-daemon",
        help="Run in this process instead of the local backend daemon (also CICD_DAEMON=0).",
    ),
) -> None:
    """Retry a finished run: re-run its failed, canceled and skipped jobs and every job that
    waits for them; the jobs that succeeded are carried over as REUSED (their log and
    artifacts are the earlier run's, and reach the re-run jobs as if they had just run).

    The new run has the same commit, file, overrides and --env values as NAME#N; run it from
    the repository, as cicd run. --job NAME re-runs that job and what waits for it. Follows the
    new run like cicd run: exit status 0 when it succeeded, 1 when it failed, 2 on a usage
    error (nothing to retry, the commit or file is gone).
    """
    from backend.client import open_backend
    from backend.errors import CicdError, UsageError
    from backend.requests import parse_pairs, prepare_retry, read_secrets
    from backend.retry import plan_retry
    from backend.source.workspace import is_url, resolve_source
    from cicd_cli.run import launch

    pipeline, number = RunRef.parse(run_name)
    name = f"{pipeline}#{number}"
    settings = Settings()
    console = Console(highlight=False, markup=False, soft_wrap=True)
    earlier = open_backend(settings, server).run(pipeline, number)
    if not earlier.status.finished:
        raise UsageError(f"cannot retry {name}: it is still {earlier.status.value}")
    repo = earlier.repo
    if repo is not None and not is_url(repo) and not Path(repo).is_dir():
        repo = None  # a folder that moved: the repository around the current folder
    try:
        source = resolve_source(
            repo, None, earlier.commit, cwd=Path.cwd(), cache_dir=settings.home / "repos"
        )
    except CicdError as exc:
        raise UsageError(f"cannot retry {name}: {exc}") from None
    prepared = prepare_retry(
        earlier,
        source,
        job=job,
        env=parse_pairs(env, "--env"),
        secrets=read_secrets(secret),
        jobs=jobs,
        pull=pull,
    )
    plan = plan_retry(prepared.request.pipeline, earlier, job)
    reused = f"; reuses {', '.join(plan.reuse)}" if plan.reuse else ""
    err_console.print(  # stderr: the first line of stdout is the run's name
        Text(f"retry of {name}: runs {', '.join(plan.rerun)} again{reused}", style="dim")
    )
    raise typer.Exit(launch(settings, prepared, console, server, no_daemon))
