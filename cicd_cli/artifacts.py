"""``cicd artifacts``: list a run's artifacts, or download them byte for byte."""

from __future__ import annotations

import hashlib
from pathlib import Path

import typer

from backend.client import open_backend
from backend.errors import UsageError
from backend.runs import RunRef
from backend.schemas import ArtifactPublic
from backend.settings import Settings
from cicd_cli.errors import abort
from cicd_cli.render import OutputFormat, artifacts_table, dump, size_text, table_console


def artifacts(
    run_name: str = typer.Argument(..., metavar="NAME#N", help="The run, e.g. build#3."),
    job: str | None = typer.Option(None, "--job", "-j", help="Only this job's artifacts."),
    download: Path | None = typer.Option(
        None,
        "--download",
        metavar="DIR",
        file_okay=False,
        help="Download them into DIR/<job>/<path> instead of listing them.",
    ),
    fmt: OutputFormat = typer.Option(
        OutputFormat.TEXT, "--format", help="How to list them: text, json or yaml."
    ),
    server: str | None = typer.Option(
        None,
        "--server",
        envvar="CICD_SERVER",
        help="Ask this cicd server instead of the local history.",
    ),
) -> None:
    """List the artifacts of a run (or of one job), or download them.

    The list shows job, path, size and the start of the sha256; --format json prints
    {"pipeline": NAME, "run": N, "artifacts": [{"job", "path", "size", "sha256"}, ...]}.
    --download DIR writes each artifact to DIR/<job>/<path>, checks its size and sha256, and
    refuses paths that would land outside DIR.
    """
    pipeline, number = RunRef.parse(run_name)
    if download is not None and fmt is not OutputFormat.TEXT:
        raise UsageError("--format lists artifacts; it cannot be used with --download")
    backend = open_backend(Settings(), server)
    found = backend.artifacts(pipeline, number, job)
    name = f"{pipeline}#{number}" + (f" job {job}" if job else "")
    if download is None:
        if fmt is not OutputFormat.TEXT:
            data = {
                "pipeline": pipeline,
                "run": number,
                "artifacts": [a.model_dump(mode="json") for a in found],
            }
            typer.echo(dump(data, fmt))
        elif found:
            total = sum(a.size for a in found)
            console = table_console()
            console.print(artifacts_table(found))
            console.print(f"{len(found)} artifact{'s' * (len(found) != 1)}, {size_text(total)}")
        else:
            typer.echo(f"no artifacts in {name}")
        return
    targets = [(artifact, destination(download, artifact)) for artifact in found]
    for artifact, dest in targets:
        dest.parent.mkdir(parents=True, exist_ok=True)
        backend.download_artifact(pipeline, number, artifact.job, artifact.path, dest)
        _verify(artifact, dest)
        typer.echo(f"{artifact.job}/{artifact.path} ({size_text(artifact.size)})")
    count = f"{len(found)} artifact{'s' * (len(found) != 1)}"
    typer.echo(f"downloaded {count} of {name} to {download}")


def destination(root: Path, artifact: ArtifactPublic) -> Path:
    """Where ``artifact`` goes under ``root``: ``root/<job>/<path>``, never outside it."""
    base = root.resolve()
    job_dir = (base / artifact.job).resolve()
    dest = (job_dir / artifact.path).resolve()
    if (
        not job_dir.is_relative_to(base)
        or job_dir == base
        or not dest.is_relative_to(job_dir)
        or dest == job_dir
    ):
        abort(
            f"artifact '{artifact.path}' of job '{artifact.job}' would be written outside "
            f"{root / artifact.job}: refused"
        )
    return dest


def _verify(artifact: ArtifactPublic, dest: Path) -> None:
    """Check a downloaded file against the recorded size and sha256."""
    digest = hashlib.sha256()
    with dest.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    size = dest.stat().st_size
    if size != artifact.size or digest.hexdigest() != artifact.sha256:
        abort(
            f"artifact '{artifact.path}' of job '{artifact.job}' downloaded to {dest} does not "
            f"match the recorded size and sha256 ({size} bytes, sha256 {digest.hexdigest()[:12]})"
        )
