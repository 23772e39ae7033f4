"""``cicd run``: validate, submit, show live progress and a summary; exit 1 if the run failed."""

from __future__ import annotations

import os
import signal
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.text import Text

from backend.runs import PullPolicy
from backend.settings import Settings
from cicd_cli.errors import EXIT_OK, err_console
from cicd_cli.render import LivePrinter, print_run_end, submitted_line

if TYPE_CHECKING:
    from backend.requests import PreparedRun
    from backend.schemas import RunPublic


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run(
    file: str | None = typer.Option(
        None,
        "-f",
        "--file",
        help="Pipeline file in the repository: a .pipelines/ file or a .gitlab-ci.yml "
        "(default .pipelines/pipeline.yaml; .gitlab-ci.yml when there is no .pipelines/).",
    ),
    pipeline: str | None = typer.Option(
        None,
        "-p",
        "--pipeline",
        help="Run the pipeline of .pipelines/ with this name; for a GitLab file, the "
        "pipeline's name (default: the repository folder's name).",
    ),
    repo: str | None = typer.Option(
        None,
        "--repo",
        help="Repository path or URL (default: the repository around the current folder).",
    ),
    branch: str | None = typer.Option(
        None, "--branch", help="Branch to run (default: the current one / the default one)."
    ),
    commit: str | None = typer.Option(
        None, "--commit", help="Commit to run (default: the branch's tip)."
    ),
    override: list[str] = typer.Option(
        [],
        "--override",
        help="KEY=VALUE: set a key of the file for this run, e.g. jobs.compile.image=gcc:13.",
    ),
    env: list[str] = typer.Option(
        [],
        "--env",
        help="KEY=VALUE: an environment variable for every job; beats the file's variables "
        "(a GitLab file's rules see it too).",
    ),
    job: list[str] = typer.Option(
        [],
        "--job",
        metavar="NAME",
        help="Run only this job (repeatable); the others are not run. Selects jobs: not "
        "--jobs/-j, which limits how many run at once.",
    ),
    with_needs: bool = typer.Option(
        False, "--with-needs", help="With --job: also run what those jobs need, transitively."
    ),
    manual: list[str] = typer.Option(
        [], "--manual", metavar="NAME", help="Start this `when: manual` job (repeatable)."
    ),
    secret: list[str] = typer.Option(
        [],
        "--secret",
        help="NAME: pass this variable of your environment to jobs, masked as **** everywhere.",
    ),
    server: str | None = typer.Option(
        None,
        "--server",
        envvar="CICD_SERVER",
        help="Submit to this cicd server instead of running here.",
    ),
    jobs: int | None = typer.Option(
        None,
        "--jobs",
        "-j",
        min=1,
        metavar="N",
        help="Concurrency: run at most N jobs at once (default: 4 per CPU, at most 32). "
        "To pick which jobs run, use --job NAME.",
    ),
    pull: PullPolicy = typer.Option(
        PullPolicy.IF_NOT_PRESENT, "--pull", help="When to pull images."
    ),
    force: bool = typer.Option(
        False, "--force", help="Start a new run even if an identical one is running."
    ),
    keep_failed: bool = typer.Option(
        False,
        "--keep-failed",
        help="Keep a snapshot of every failed job of this run for `cicd debug` (by default "
        "only the last failed job of each pipeline is kept).",
    ),
    no_daemon: bool = typer.Option(
        False,
        "--no-daemon",
        help="Run in this process instead of the local backend daemon (also CICD_DAEMON=0).",
    ),
) -> None:
    """Run a pipeline: each job in its own container, live logs, a summary table at the end.

    A .gitlab-ci.yml runs too (with -f, or by itself when the repository has no .pipelines/),
    its includes read from the commit that runs. --job NAME picks jobs; --jobs N is concurrency.

    Runs go through a local backend daemon, started on first use for CICD_HOME and reused (it
    exits after 30 idle minutes); --no-daemon or CICD_DAEMON=0 runs in this process instead.

    Exit status 0 when the pipeline succeeded (allowed failures included), 1 when it failed or
    was canceled, 2 on a usage error.
    """
    from backend.requests import parse_pairs, prepare_run, read_secrets

    settings = Settings()
    console = Console(highlight=False, markup=False, soft_wrap=True)
    prepared = prepare_run(
        cwd=Path.cwd(),
        cache_dir=settings.home / "repos",
        repo=repo,
        branch=branch,
        commit=commit,
        file=file,
        name=pipeline,
        overrides=override,
        env=parse_pairs(env, "--env"),
        secrets=read_secrets(secret),
        jobs=jobs,
        pull=pull,
        force=force,
        dirty=True,  # the user's own working tree: uncommitted changes get a warning
        select=job,
        with_needs=with_needs,
        manual=manual,
    )
    if keep_failed:  # a request field: it reaches the daemon or a server too
        request = prepared.request.model_copy(update={"keep_failed": True})
        prepared = replace(prepared, request=request)
    left_out = [j for j in prepared.request.pipeline.jobs if not j.run]
    if left_out:  # stderr: the first line of stdout is the run's name
        shown = "; ".join(f"{j.name} ({j.skip_reason})" for j in left_out[:10])
        more = f"; and {len(left_out) - 10} more" if len(left_out) > 10 else ""
        err_console.print(Text(f"not run: {shown}{more}", style="dim"))
    if prepared.source.dirty:
        names = ", ".join(prepared.source.dirty[:10])
        more = (
            f" and {len(prepared.source.dirty) - 10} more"
            if len(prepared.source.dirty) > 10
            else ""
        )
        err_console.print(  # stderr: the first line of stdout is the run's name
            Text(
                f"warning: uncommitted changes are not part of the run: {names}{more}",
                style="yellow",
            )
        )
    raise typer.Exit(launch(settings, prepared, console, server, no_daemon))


def launch(
    settings: Settings,
    prepared: PreparedRun,
    console: Console,
    server: str | None,
    no_daemon: bool,
) -> int:
    """Run ``prepared`` where the user asked (a server, this process, or the local daemon),
    following it to its end; the exit status (``cicd run`` and ``cicd retry``)."""
    if server:
        from cicd_cli.remote import run_remote

        return run_remote(server, settings, prepared, console)
    if no_daemon or os.environ.get("CICD_DAEMON", "1").strip().lower() in ("0", "false", "no"):
        return run_embedded(settings, prepared, console)
    return run_daemon(settings, prepared, console)


def run_daemon(settings: Settings, prepared: PreparedRun, console: Console) -> int:
    """Run through ``CICD_HOME``'s local backend daemon (started when none runs).

    The daemon has Prefect, the store and Docker warm; it reads the local repository itself, so
    no bundle is sent. The output is the same as in-process.
    """
    from backend.errors import ServerError
    from cicd_cli.daemon import ensure_daemon, log_path
    from cicd_cli.remote import run_remote

    url, token = ensure_daemon(settings)
    # The daemon fetches a --repo URL itself, so it gets the URL as typed, credentials included,
    # over its token-authenticated loopback connection; it records the run with them hidden.
    prepared = replace(
        prepared, request=prepared.request.model_copy(update={"repo": prepared.source.repo})
    )
    try:
        return run_remote(
            url,
            settings.model_copy(update={"api_token": token}),
            prepared,
            console,
            bundle=False,
            read_run=lambda pipeline, number: _local_run(settings, pipeline, number),
        )
    except ServerError as exc:
        raise ServerError(f"{exc} (the local cicd daemon; see {log_path(settings.home)})") from None


def _local_run(settings: Settings, pipeline: str, number: int) -> RunPublic:
    """Run ``pipeline#number`` as this ``CICD_HOME``'s store holds it (the daemon's store)."""
    from backend.service import Service

    return Service(settings).run(pipeline, number)


def run_embedded(settings: Settings, prepared: PreparedRun, console: Console) -> int:
    """Run in this process against the local store and Prefect API; return the exit status."""
    from backend.engines import prepare_prefect
    from backend.service import Service

    # a local server boots meanwhile; the run waits for it before its flow, once its first
    # jobs have started (backend.headstart)
    prepare_prefect(settings.home)
    service = Service(settings)
    service.reconcile()
    request = prepared.request
    submission = service.start(request, prepared.source)
    console.print(submitted_line(submission.name, request, submission.duplicate))
    if submission.duplicate:
        return EXIT_OK
    printer = LivePrinter(console, [job.name for job in request.pipeline.jobs if job.run])
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        service.execute(submission, sinks=[printer])
    except KeyboardInterrupt:
        console.print(Text(f"{submission.name} canceled (interrupted)", style="yellow"))
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return print_run_end(console, service.run(submission.pipeline, submission.number))
