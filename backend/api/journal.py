"""What a server must clean up after being killed: the containers of the runs it was executing.

Containers are labelled with a run key that only the executing process knows. The server's
runner is wrapped in a ``JournalingRunner`` that notes each key (and its run's name) in
``CICD_HOME/server/runs/`` before a container starts, and the note goes when the run ends. A
server that starts and finds notes removes those containers by label (``remove_run_containers``)
and their workspaces. One server per ``CICD_HOME`` (a lock), so no live server's notes are taken.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from backend.errors import UsageError
from backend.runner.base import JobResult, JobSpec, LineSink, PullPolicy, Runner

log = logging.getLogger("cicd.server")


class RunJournal:
    """Run keys of containers this server may have started, one small file per key."""

    def __init__(self, home: Path) -> None:
        self.directory = home / "server" / "runs"
        self._lock_path = home / "server" / "server.lock"
        self._lock_file: IO[str] | None = None
        self._mutex = threading.Lock()

    def acquire(self) -> None:
        """Hold the one-server-per-home lock for this process's life (UsageError if taken)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        handle = open(self._lock_path, "a+")  # held until the process ends
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            pid = handle.read().strip() or "?"
            handle.close()
            raise UsageError(
                f"another cicd server (pid {pid}) uses {self._lock_path.parent.parent}: "
                "stop it or set another CICD_HOME"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock_file = handle

    def release(self) -> None:
        """Let another server use this home."""
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def record(self, key: str, run: str) -> None:
        """Note that run ``run`` labels its containers with ``key``."""
        path = self.directory / key
        with self._mutex:
            if not path.exists():
                self.directory.mkdir(parents=True, exist_ok=True)
                path.write_text(run)

    def forget_run(self, run: str) -> None:
        """The run ``run`` has ended and its containers are gone."""
        for key, name in self.entries().items():
            if name == run:
                self.forget(key)

    def forget(self, key: str) -> None:
        """Drop the note of ``key``."""
        (self.directory / key).unlink(missing_ok=True)

    def entries(self) -> dict[str, str]:
        """Every noted key and its run's name."""
        if not self.directory.is_dir():
            return {}
        found = {}
        for path in self.directory.iterdir():
            try:
                found[path.name] = path.read_text()
            except OSError:
                continue
        return found


class JournalingRunner:
    """A runner that notes each run key in a ``RunJournal`` before its containers start."""

    def __init__(self, runner: Runner, journal: RunJournal) -> None:
        self.runner = runner
        self.journal = journal

    def check(self) -> None:
        """Raise ``EngineUnavailable`` when the engine cannot be reached."""
        self.runner.check()

    def ensure_images(self, images: Iterable[str], policy: PullPolicy) -> dict[str, str | None]:
        """Make images available, in parallel; map each image to None or a one-line error."""
        return self.runner.ensure_images(images, policy)

    def run_job(self, spec: JobSpec, on_line: LineSink, cancel: threading.Event) -> JobResult:
        """Note the run's key, then run the job."""
        self.journal.record(spec.run_id, spec.env.get("CICD_RUN", ""))
        return self.runner.run_job(spec, on_line, cancel)

    def remove_run_containers(self, run_id: str) -> int:
        """Remove every container of a run and forget its note."""
        removed = self.runner.remove_run_containers(run_id)
        self.journal.forget(run_id)
        return removed


def clean_leftovers(journal: RunJournal, runner: Runner, workspaces_dir: Path) -> list[str]:
    """Remove the containers and workspaces of runs a killed server left; return their names."""
    from backend.runner.workspace import remove_tree

    cleaned = []
    for key, run in sorted(journal.entries().items()):
        try:
            runner.remove_run_containers(key)
        except Exception as exc:
            log.warning("cannot remove the containers of %s: %s", run or key, exc)
            continue
        try:
            remove_tree(workspaces_dir / key)
        except Exception as exc:
            log.warning("cannot remove the workspace of %s: %s", run or key, exc)
        journal.forget(key)
        cleaned.append(run or key)
    return cleaned
