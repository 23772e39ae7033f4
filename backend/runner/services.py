"""A job's services (GitLab ``services:``): containers started before its script, on its network.

Each job with services gets a user-defined bridge network of its own, made before the services
and removed after the job's container, whatever happened. Per job rather than per run: two
parallel jobs of one run may both name a service ``db``, and on one shared network each would
reach either database. Measured with ``python -m bench.services_cost`` (Docker 20.10, 2 CPUs):
a ``true`` job takes 0.55 s alone and 1.74 s with one busybox service, of which the network's
create + remove is 0.28 s (a per-run network would save only that); the rest is the service's
container start (~0.55 s) and removal. Jobs without services pay nothing and keep Docker's
default network. The job's and the services' containers are removed at once.

A service is reachable from the job (and from the other services) by its ``alias`` and by the
host names GitLab derives from its image name (``hostnames``). It gets the job's variables, then
its own; never the job's secrets (they only ever reach the job's shell through stdin), no host
mounts, no privileges (``no-new-privileges`` too) and no published ports. Everything carries the
job's labels (``engine.labels``), so a run's reaping (``DockerRunner.remove_run_containers``)
finds service containers and networks left by a process that was killed.

A service that cannot be created or started fails the job with one line. One that starts and
then ends is only a warning, as GitLab's "service probably didn't start properly": the job runs
and the warning shows the service's exit code and last lines.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import docker
from docker.errors import ImageNotFound

from backend.runner.base import LABEL_MANAGED, LABEL_RUN, JobSpec, LineSink, ServiceSpec
from backend.runner.engine import (
    ENGINE_ERRORS,
    clean,
    labels,
    one_line,
    reason,
    remove_container,
    remove_network,
    unique_name,
)

LABEL_SERVICE = "cicd.service"  # on service containers: the service's first host name
_TAIL_LINES = 5  # lines of an ended service's output shown in its warning
# the part of an image reference before its path that names a registry port: host:5000/...
_REGISTRY_PORT = re.compile(r"^([^/]*?)(:[0-9]+)(/.*)$")


def hostnames(image: str, alias: str | None = None) -> list[str]:
    """The names a service is reachable by: its aliases, then GitLab's two derived from the image.

    GitLab's rule (gitlab-runner's ``splitServiceAndVersion``): the tag (and digest) and a
    registry's port are dropped, then ``/`` becomes ``__`` for the first name and ``-`` for
    the second (RFC 1123); ``registry.local:5000/tools/db:1`` gives
    ``registry.local__tools__db`` and ``registry.local-tools-db``. ``alias`` may list several
    names separated by commas or spaces, as GitLab allows.
    """
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name = name[:colon]
    match = _REGISTRY_PORT.match(name)
    if match:
        name = match.group(1) + match.group(3)
    aliases = [part for part in re.split(r"[,\s]+", alias or "") if part]
    names = [*aliases, name.replace("/", "__"), name.replace("/", "-")]
    return [host for host in dict.fromkeys(names) if host]


class Services:
    """The network and service containers of one job run; ``remove`` undoes ``start``."""

    def __init__(self, client: docker.DockerClient, spec: JobSpec, on_line: LineSink) -> None:
        self._client = client
        self._spec = spec
        self._on_line = on_line
        self.network: str | None = None
        self._started: list[tuple[str, str]] = []  # (shown name, container id)

    def start(self) -> str | None:
        """Make the job's network and start every service on it, all at once; the first
        service's one-line error in the job's order, or None.

        On an error what was made so far stays for ``remove``.
        """
        spec = self._spec
        try:
            name = unique_name(spec, "net")
            created = self._client.api.create_network(name, driver="bridge", labels=labels(spec))
            self.network = str(created["Id"])
        except ENGINE_ERRORS as exc:
            return f"cannot create the network of job '{spec.job}': {reason(exc)}"
        workers = max(1, min(8, len(spec.services)))  # each start waits ~0.5 s on the engine
        with ThreadPoolExecutor(workers, thread_name_prefix="cicd-service") as pool:
            futures = [pool.submit(self._start_one, service, name) for service in spec.services]
            problems = []
            for service, future in zip(spec.services, futures, strict=True):
                shown = hostnames(service.image, service.alias)[0]
                try:
                    self._started.append((shown, future.result()))
                except ImageNotFound:
                    image = service.image
                    problems.append(
                        f"service '{shown}' of job '{spec.job}': image '{image}' not found"
                    )
                except ENGINE_ERRORS as exc:
                    problems.append(
                        f"service '{shown}' of job '{spec.job}' cannot start: {reason(exc)}"
                    )
        return problems[0] if problems else None

    def warn_ended(self) -> None:
        """Say which services are no longer running, with their exit code and last lines."""
        for shown, container in self._started:
            try:
                state = self._client.api.inspect_container(container)["State"]
                if state.get("Running"):
                    continue
                tail = self._client.api.logs(container, tail=_TAIL_LINES)
            except ENGINE_ERRORS:
                continue  # gone with the engine: the job's own error says so
            code = state.get("ExitCode")
            self._on_line(f"cicd: warning: service '{shown}' ended early (exit code {code})")
            for line in tail.decode("utf-8", "replace").splitlines()[-_TAIL_LINES:]:
                self._on_line(f"cicd: service '{shown}': {one_line(line)}")

    def remove(self, *others: str) -> None:
        """Remove the services (with ``others``, the job's container, all at once) and then the
        network; never raises (this runs in ``finally``)."""
        containers = [*others, *(container for _, container in self._started)]
        if len(containers) > 1:  # each removal waits on the engine's kill: ~0.2 s at once
            with ThreadPoolExecutor(len(containers), thread_name_prefix="cicd-remove") as pool:
                list(
                    pool.map(
                        lambda container: remove_container(self._client, container), containers
                    )
                )
        elif containers:
            remove_container(self._client, containers[0])
        self._started.clear()
        if self.network is not None:
            remove_network(self._client, self.network)
            self.network = None

    def _start_one(self, service: ServiceSpec, network: str) -> str:
        spec = self._spec
        client = self._client
        names = hostnames(service.image, service.alias)
        host_config = client.api.create_host_config(
            network_mode=network,
            privileged=False,
            security_opt=["no-new-privileges"],
        )
        networking = client.api.create_networking_config(
            {network: client.api.create_endpoint_config(aliases=names)}
        )
        created = client.api.create_container(
            image=service.image,
            entrypoint=service.entrypoint,
            command=service.command,
            environment={**spec.env, **service.variables},
            labels={**labels(spec), LABEL_SERVICE: names[0]},
            name=unique_name(spec, f"svc-{clean(names[0], 20)}"),
            host_config=host_config,
            networking_config=networking,
        )
        container = str(created["Id"])
        try:
            client.api.start(container)
        except BaseException:
            remove_container(client, container)
            raise
        return container


def run_networks(client: docker.DockerClient, run_id: str) -> list[str]:
    """The ids of every network made for a run's jobs (to remove once its containers are gone)."""
    found = client.api.networks(filters={"label": [f"{LABEL_MANAGED}=1", f"{LABEL_RUN}={run_id}"]})
    return [str(network["Id"]) for network in found]
