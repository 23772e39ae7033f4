"""Images for the Docker runner: making one available under a pull policy, and the one-line
error of a job whose image is missing."""

from __future__ import annotations

import docker
from docker.errors import ImageNotFound

from backend.runner.base import JobSpec, PullPolicy
from backend.runner.engine import ENGINE_ERRORS, one_line, reason


def ensure_image(client: docker.DockerClient, image: str, policy: PullPolicy) -> str | None:
    """Make ``image`` available as ``policy`` says; None, or the one-line reason it is not."""
    if policy is not PullPolicy.ALWAYS:
        try:
            client.api.inspect_image(image)
            return None
        except ImageNotFound:
            pass
        except ENGINE_ERRORS as exc:
            return f"image '{image}' cannot be inspected: {reason(exc)}"
        if policy is PullPolicy.NEVER:
            return f"image '{image}' not found locally (pull policy 'never')"
    problem = pull(client, image)
    if problem is None:
        return None
    if policy is PullPolicy.ALWAYS:
        return f"image '{image}' could not be pulled (pull policy 'always'): {problem}"
    return f"image '{image}' not found locally and pull failed: {problem}"


def pull(client: docker.DockerClient, image: str) -> str | None:
    """Pull one image; None when it worked, else the short reason."""
    try:
        for event in client.api.pull(image, stream=True, decode=True):
            if isinstance(event, dict) and event.get("error"):
                return one_line(str(event["error"]))
    except ENGINE_ERRORS as exc:
        return reason(exc)
    return None


def image_missing(spec: JobSpec) -> str:
    """The error of a job whose image is not there when its container is made."""
    if spec.pull_policy is PullPolicy.NEVER:
        return f"image '{spec.image}' not found locally (pull policy 'never')"
    return f"image '{spec.image}' not found locally"
