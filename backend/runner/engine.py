"""Small helpers shared by the Docker runner's modules: names, labels, removal, one-line reasons.

``docker.py`` (job containers), ``exec_shell.py`` (``docker exec`` shells) and ``services.py``
(service containers and the job's network) use them; none of them raises from a ``finally``.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

import docker
import requests
from docker.errors import APIError, DockerException, NotFound

from backend.runner.base import LABEL_JOB, LABEL_MANAGED, LABEL_RUN, JobSpec

ENGINE_ERRORS = (DockerException, requests.exceptions.RequestException)
WORKDIR = "/workspace"
# an OCI runtime's words when the entrypoint's program is missing from the image
_NO_PROGRAM = re.compile(r"executable file not found|no such file or directory", re.IGNORECASE)


def labels(spec: JobSpec) -> dict[str, str]:
    """The labels of everything made for ``spec``'s job: what reaping a run looks for."""
    return {LABEL_MANAGED: "1", LABEL_RUN: spec.run_id, LABEL_JOB: spec.job}


def clean(text: str, limit: int = 40) -> str:
    """``text`` reduced to what a container or network name may hold."""
    return re.sub(r"[^a-zA-Z0-9_.-]+", "-", text).strip("-.")[:limit] or "x"


def unique_name(spec: JobSpec, kind: str = "") -> str:
    """A fresh engine name for something of ``spec``'s job: ``cicd-RUN-JOB[-KIND]-XXXXXX``."""
    middle = f"-{clean(kind, 20)}" if kind else ""
    return f"cicd-{clean(spec.run_id)}-{clean(spec.job)}{middle}-{secrets.token_hex(3)}"


def remove_container(client: docker.DockerClient, container: str) -> None:
    """Kill and remove a container; never raises (this runs in ``finally``)."""
    try:
        client.api.remove_container(container, force=True)
    except NotFound:
        pass  # gone already
    except ENGINE_ERRORS:
        pass  # a removal already in progress (409), or the engine went away: nothing more to do


def remove_network(client: docker.DockerClient, network: str) -> None:
    """Remove a network; never raises (this runs in ``finally``)."""
    try:
        client.api.remove_network(network)
    except NotFound:
        pass
    except ENGINE_ERRORS:
        pass  # still in use by a container being removed, or no engine: reaping takes it later


def missing_shell(exc: BaseException) -> bool:
    """Whether a container failed to start because its image has no such program (``sh``)."""
    return isinstance(exc, APIError) and bool(_NO_PROGRAM.search(str(exc.explanation or "")))


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` says the engine cannot be reached at all."""
    return isinstance(exc, requests.exceptions.ConnectionError)


def reason(exc: BaseException) -> str:
    """A short, one-line reason: the engine's explanation, or the underlying OS error."""
    if isinstance(exc, APIError) and exc.explanation:
        return one_line(str(exc.explanation))
    os_error = _find_os_error(exc, set())
    if os_error is not None and os_error.strerror:
        return os_error.strerror
    return one_line(str(exc)) or type(exc).__name__


def _find_os_error(exc: BaseException, seen: set[int]) -> OSError | None:
    if id(exc) in seen:
        return None
    seen.add(id(exc))
    if isinstance(exc, OSError) and exc.strerror:
        return exc
    inner = [exc.__cause__, exc.__context__, *exc.args]
    for candidate in inner:
        if isinstance(candidate, BaseException):
            found = _find_os_error(candidate, seen)
            if found is not None:
                return found
    return None


def one_line(text: str, limit: int = 300) -> str:
    """``text`` on one line, at most ``limit`` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def seconds(value: float | None) -> str:
    """``12s``, ``0.5s``: a limit as messages show it."""
    return f"{value:g}s"


def now() -> datetime:
    """The current time, aware (UTC)."""
    return datetime.now(UTC)
