"""``cicd gc``: remove the artifacts whose ``expire_in`` has passed, and failed jobs kept for
``cicd debug``."""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from backend.settings import Settings


def gc() -> None:
    """Remove expired artifacts (files whose artifacts:expire_in has passed, and their records)
    and every failed job kept for `cicd debug` (its image and workspace copy).

    Artifacts without expire_in, or with expire_in: never, are kept. Works on this machine's
    history (CICD_HOME); prints `removed N expired artifact file(s) (SIZE)`, then `removed N
    debug snapshot(s)`. Run it from cron or by hand; nothing runs it on its own.
    """
    from backend.jobspace import remove_expired
    from backend.service import Service

    settings = Settings()
    service = Service(settings)
    done = remove_expired(service.store, settings.artifacts_dir, datetime.now(UTC))
    typer.echo(f"removed {done.files} expired artifact file(s) ({_size(done.bytes)})")
    if done.outside:
        typer.echo(
            f"{done.outside} of them named a file outside {settings.artifacts_dir}: "
            "only the record was removed"
        )
    typer.echo(f"removed {_snapshots(settings)} debug snapshot(s)")


def _snapshots(settings: Settings) -> int:
    """Remove the debug snapshots of ``settings.home``; how many there were."""
    from backend.debugging import collect

    return collect(settings.debug_dir)


def _size(count: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} B"
