"""A failed job kept for ``cicd debug``: the Docker half (``backend.debugging`` keeps the books).

**Taking a snapshot** (``take_snapshot``), in ``DockerRunner.run_job`` while the failed job's
container still exists: ``docker commit`` keeps what the job changed outside its workspace
(``/tmp``, installed packages) as an image, and the engine's archive of ``/workspace`` (what
``docker cp`` reads) keeps the workspace as the job left it, whatever it was: the run's shared
checkout (a bind mount) or an isolated job's own overlay volume. The archive is stored as the
tar file the engine sent and is never unpacked on the host: the names in it are the job's, and
the job may be hostile.

**A debug session** (``open_session``): a container of that image whose main process is an idle
``sh`` (as ``exec_shell.py`` keeps a job's container alive), the workspace tar unpacked into it
by the engine before it starts, so the copy lives in the container's own layer and goes when
the container is removed. Commands run in it as ``docker exec`` processes: their environment
(re-supplied secrets) is never written into the container's configuration, which Docker keeps
on disk.
"""

from __future__ import annotations

import os
import posixpath
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

import docker
from docker.errors import ImageNotFound, NotFound

from backend.runner.base import SnapshotTarget
from backend.runner.engine import ENGINE_ERRORS, WORKDIR, remove_container

WORKSPACE_TAR = "workspace.tar"  # in the snapshot's directory: the job's /workspace, as archived
# A workspace bigger than this is not kept (a job may fill its workspace): with the count limit
# of backend.debugging, snapshots take at most that many times this on the host's disk.
MAX_WORKSPACE_BYTES = 2 * 1024**3


def take_snapshot(client: docker.DockerClient, container: str, target: SnapshotTarget) -> str:
    """Commit ``container`` as ``target.image`` and archive its workspace; return the image id.

    An earlier image of the same name (an earlier attempt of the job) is removed. Raises the
    engine's errors or ``OSError``; a half-written tar keeps a ``.part`` name.
    """
    target.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    repository, _, tag = target.image.rpartition(":")
    before = _image_id(client, target.image)
    made = client.api.commit(
        container, repository=repository, tag=tag, conf={"Labels": dict(target.labels)}
    )
    image = str(made["Id"])
    if before is not None and before != image:
        remove_image(client, before)
    part = target.directory / f"{WORKSPACE_TAR}.part"
    stream, _ = client.api.get_archive(container, WORKDIR)
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    written = 0
    with os.fdopen(fd, "wb") as out:
        for chunk in stream:
            written += len(chunk)
            if written > MAX_WORKSPACE_BYTES:
                break
            out.write(chunk)
    if written > MAX_WORKSPACE_BYTES:
        part.unlink(missing_ok=True)
        remove_image(client, image)
        raise OSError(f"its workspace is over {MAX_WORKSPACE_BYTES // 1024**3} GiB")
    os.replace(part, target.directory / WORKSPACE_TAR)
    return image


def image_exists(client: docker.DockerClient, image: str) -> bool:
    """Whether the engine has ``image``."""
    return _image_id(client, image) is not None


def _image_id(client: docker.DockerClient, image: str) -> str | None:
    try:
        return str(client.api.inspect_image(image)["Id"])
    except (ImageNotFound, NotFound):
        return None


def remove_image(client: docker.DockerClient, image: str) -> None:
    """Remove ``image`` (one already gone is fine); the engine's errors are raised."""
    try:
        client.api.remove_image(image, force=True)
    except (ImageNotFound, NotFound):
        pass


def labelled_images(client: docker.DockerClient, label: str, value: str) -> list[str]:
    """Ids of every image labelled ``label=value`` (tagged or not)."""
    found = client.api.images(all=True, filters={"label": f"{label}={value}"}) or []
    return [str(image["Id"]) for image in found]


def open_session(
    client: docker.DockerClient,
    image: str,
    workspace_tar: Path,
    *,
    workdir: str,
    env: Mapping[str, str],
    labels: Mapping[str, str],
) -> str:
    """A started container of ``image`` holding the workspace copy; return its id.

    ``env`` goes into the container's configuration: only values that may be on disk (the
    job's variables, masked secrets). The caller removes the container (``close_session``).
    """
    created = client.api.create_container(
        image=image,
        entrypoint=["sh"],  # the image's entrypoint (the job's script) would run the job again
        environment=dict(env),
        working_dir=workdir,
        labels=dict(labels),
        name=f"cicd-debug-{secrets.token_hex(6)}",
        stdin_open=True,  # nobody attaches: sh waits on it for ever, which keeps it alive
        tty=False,
    )
    container = str(created["Id"])
    try:
        with open(workspace_tar, "rb") as archive:  # streamed: a workspace may be large
            client.api.put_archive(container, posixpath.dirname(workdir) or "/", archive)
        client.api.start(container)
    except BaseException:
        remove_container(client, container)
        raise
    return container


def run_command(
    client: docker.DockerClient,
    container: str,
    command: str,
    *,
    workdir: str,
    env: Mapping[str, str],
    stdout: BinaryIO | None = None,
    stderr: BinaryIO | None = None,
) -> int:
    """Run ``sh -c command`` in ``workdir`` of the session, without a terminal; its exit code.

    Its output is copied to ``stdout`` and ``stderr`` (this process's by default) as it comes.
    """
    out = stdout or sys.stdout.buffer
    err = stderr or sys.stderr.buffer
    made = client.api.exec_create(
        container, ["sh", "-c", command], environment=dict(env), workdir=workdir, tty=False
    )
    for chunk_out, chunk_err in client.api.exec_start(made["Id"], stream=True, demux=True):
        if chunk_out:
            out.write(chunk_out)
            out.flush()
        if chunk_err:
            err.write(chunk_err)
            err.flush()
    code = client.api.exec_inspect(made["Id"]).get("ExitCode")
    return int(code) if code is not None else 1


def close_session(client: docker.DockerClient, container: str) -> None:
    """Remove the session's container, and the workspace copy in it; never raises."""
    remove_container(client, container)


__all__ = [
    "ENGINE_ERRORS",
    "WORKSPACE_TAR",
    "close_session",
    "image_exists",
    "labelled_images",
    "open_session",
    "remove_image",
    "run_command",
    "take_snapshot",
]
