"""What a process that died in the middle of a run leaves behind, and how it is cleared.

A run's process may end without settling it (``kill -9``, a crash, a reboot): the store still says
RUNNING, its containers may still run, its workspace stays, and its Prefect flow run stays RUNNING
for ever. ``Service.reconcile`` decides which runs are dead; these helpers clear what is left.
Secrets leave nothing to clear: they only ever lived in the dead process and its containers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from pathlib import Path

from backend.processes import pid_running
from backend.runner.base import Runner

log = logging.getLogger(__name__)
DEAD_OWNER = "the process running it ended before it finished"


def owner_alive(worker: str | None) -> bool:
    """Whether the process named by a run's ``worker`` (``host/mode-pid``) may still run it."""
    if not worker:
        return False
    host, _, rest = worker.partition("/")
    if host != socket.gethostname():
        return True  # another machine: trust Prefect
    pid = rest.rpartition("-")[2]
    if not pid.isdigit():
        return True
    if not pid_running(int(pid)):
        return False
    return int(pid) != os.getpid()  # this process: callers checked its active runs


def clean_leftovers(runner: Runner, workspace: Path, key: str) -> None:
    """Remove the containers of run ``key`` (services included), its networks and its workspace."""
    from backend.source.workspace import remove_tree

    with contextlib.suppress(Exception):  # no engine: nothing of ours runs on it
        runner.remove_run_containers(key)
    if workspace.exists():
        remove_tree(workspace)
    from backend.jobspace import jobs_root, remove_run_volumes

    remove_run_volumes(runner, key)  # isolated jobs' overlay volumes
    remove_tree(jobs_root(workspace))  # and their folders (a missing path is fine)


def crash_flow_run(home: Path, name: str, flow_run_id: str) -> None:
    """Mark a dead run's flow run Crashed in Prefect, where it would stay RUNNING for ever.

    Best effort: the store is settled already, and a Prefect API that cannot be reached must
    not stop the command that reconciles.
    """
    try:
        from flows.prefect_api import configure_prefect, wait_for_prefect

        configure_prefect(home)  # no-op when this process already did
        wait_for_prefect()  # a local server this process is still starting
        from flows.pipeline import mark_crashed

        mark_crashed(flow_run_id, DEAD_OWNER)
    except Exception as exc:
        log.warning("cannot mark the flow run of %s crashed in Prefect: %s", name, exc)
