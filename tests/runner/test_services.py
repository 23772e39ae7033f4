"""Services in DockerRunner, against the real engine: busybox ``httpd`` beside a busybox job.

A job's services start on a network of the job's own, are reachable by alias and by GitLab's
derived host names, get the job's variables then their own, and are gone with their network
when the job ends, however it ended.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from backend.runner.base import LABEL_RUN, JobResult, JobSpec, Outcome, ServiceSpec
from backend.runner.docker import DockerRunner
from backend.runner.services import Services, hostnames

MakeSpec = Callable[..., JobSpec]
docker = pytest.mark.docker
SLASHED_IMAGE = "cicd-test/busy-box:services"  # the local busybox under a name with a slash
# serves "<who> <JOB_VAR> <SERVICE_VAR>" at / on port 80, in the foreground
HTTPD = (
    'mkdir -p /www && echo "$WHO $JOB_VAR $SERVICE_VAR" > /www/index.html '
    "&& exec httpd -f -p 80 -h /www"
)


def fetch(host: str) -> str:
    """A job command that waits (bounded) for ``host``'s httpd and prints its page."""
    return (
        f"i=0; until wget -qO- http://{host}/; do i=$((i+1)); "
        f'[ "$i" -lt 50 ] || exit 9; sleep 0.1; done'
    )


def httpd(image: str, alias: str | None = None, who: str = "web") -> ServiceSpec:
    """A busybox httpd service whose page names ``who`` and its variables."""
    return ServiceSpec(
        image=image,
        alias=alias,
        entrypoint=["sh", "-c"],
        command=[HTTPD],
        variables={"WHO": who, "SERVICE_VAR": "service-value"},
    )


def run(
    runner: DockerRunner, spec: JobSpec, cancel: threading.Event | None = None
) -> tuple[JobResult, list[str]]:
    """Run ``spec``; its result and the lines it printed (``$ command`` echoes left out)."""
    lines: list[str] = []
    result = runner.run_job(spec, lines.append, cancel or threading.Event())
    return result, [line for line in lines if not line.startswith("$ ")]


def left_of(run_id: str) -> tuple[list[str], list[str]]:
    """Containers (any state) and networks still labelled with ``run_id``."""
    label = f"label={LABEL_RUN}={run_id}"
    containers = subprocess.run(
        ["docker", "ps", "-a", "-q", "--filter", label], capture_output=True, text=True, check=True
    ).stdout.split()
    networks = subprocess.run(
        ["docker", "network", "ls", "-q", "--filter", label],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return containers, networks


@pytest.fixture(scope="module")
def slashed_image(busybox_image: str) -> Iterator[str]:
    """The busybox image tagged locally as ``cicd-test/busy-box:services``."""
    subprocess.run(["docker", "tag", busybox_image, SLASHED_IMAGE], check=True)
    yield SLASHED_IMAGE
    subprocess.run(["docker", "rmi", SLASHED_IMAGE], capture_output=True, check=False)


# -- host names (GitLab's rule) ---------------------------------------------------------------


def test_hostnames_plain_image_is_its_name_without_tag() -> None:
    assert hostnames("postgres:16") == ["postgres"]


def test_hostnames_slashes_give_double_underscore_and_dash_names() -> None:
    assert hostnames("tutum/wordpress:latest") == ["tutum__wordpress", "tutum-wordpress"]


def test_hostnames_registry_port_and_digest_are_dropped() -> None:
    image = "registry.local:5000/tools/db:1@sha256:" + "a" * 64

    assert hostnames(image) == ["registry.local__tools__db", "registry.local-tools-db"]


def test_hostnames_aliases_come_first_and_may_be_several() -> None:
    assert hostnames("redis:7", "cache, kv store") == ["cache", "kv", "store", "redis"]


# -- reachable --------------------------------------------------------------------------------


@docker
def test_services_reachable_by_alias_and_derived_names_with_job_and_own_variables(
    docker_runner: DockerRunner, make_spec: MakeSpec, slashed_image: str, busybox_image: str
) -> None:
    spec = make_spec(
        [fetch("web"), fetch("cicd-test__busy-box"), fetch("cicd-test-busy-box"), fetch("other")],
        env={"JOB_VAR": "job-value", "WHO": "job"},
        services=[httpd(slashed_image, alias="web"), httpd(busybox_image, alias="other", who="o")],
    )

    result, printed = run(docker_runner, spec)

    assert (result.outcome, result.exit_code, result.error) == (Outcome.SUCCESS, 0, None)
    assert printed == [
        "web job-value service-value",  # the service's own WHO wins over the job's
        "web job-value service-value",
        "web job-value service-value",
        "o job-value service-value",
    ]
    assert left_of(spec.run_id) == ([], [])


@docker
def test_services_reachable_from_after_script_shells(
    docker_runner: DockerRunner, make_spec: MakeSpec, busybox_image: str
) -> None:
    spec = make_spec(
        [fetch("web")],
        env={"JOB_VAR": "j"},
        services=[httpd(busybox_image, alias="web")],
        after_script=[fetch("web")],
    )

    result, printed = run(docker_runner, spec)

    assert (result.outcome, result.exit_code) == (Outcome.SUCCESS, 0)
    assert printed == ["web j service-value", "web j service-value"]
    assert left_of(spec.run_id) == ([], [])


@docker
def test_services_of_parallel_jobs_with_one_alias_reach_their_own(
    docker_runner: DockerRunner, make_spec: MakeSpec, busybox_image: str
) -> None:
    specs = [
        make_spec(
            [fetch("db"), "sleep 1", fetch("db")],
            job=name,
            services=[httpd(busybox_image, "db", who=name)],
        )
        for name in ("first", "second")
    ]
    results: dict[str, tuple[JobResult, list[str]]] = {}
    threads = [
        threading.Thread(target=lambda s=s: results.__setitem__(s.job, run(docker_runner, s)))
        for s in specs
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    for name in ("first", "second"):
        result, printed = results[name]
        assert result.outcome is Outcome.SUCCESS, result.error
        assert printed == [f"{name}  service-value"] * 2


# -- gone afterwards --------------------------------------------------------------------------


@docker
@pytest.mark.parametrize(
    ("script", "timeout", "outcome", "after"),
    [
        (["true"], 30.0, Outcome.SUCCESS, []),
        (["exit 3"], 30.0, Outcome.FAILED, []),
        (["sleep 30"], 1.0, Outcome.FAILED, []),
        (["sleep 30"], 1.0, Outcome.FAILED, ["echo after"]),
        (["exit 4"], 30.0, Outcome.FAILED, ["echo after"]),
    ],
    ids=["success", "failure", "timeout", "timeout-after-script", "failure-after-script"],
)
def test_services_gone_with_their_network_when_job_ends(
    docker_runner: DockerRunner,
    make_spec: MakeSpec,
    busybox_image: str,
    script: list[str],
    timeout: float,
    outcome: Outcome,
    after: list[str],
) -> None:
    spec = make_spec(
        script, timeout=timeout, services=[httpd(busybox_image, "web")], after_script=after
    )

    result, _ = run(docker_runner, spec)

    assert result.outcome is outcome
    assert left_of(spec.run_id) == ([], [])


@docker
def test_services_gone_when_job_is_canceled(
    docker_runner: DockerRunner, make_spec: MakeSpec, busybox_image: str
) -> None:
    spec = make_spec(["sleep 30"], services=[httpd(busybox_image, "web")])
    cancel = threading.Event()
    threading.Timer(1.5, cancel.set).start()

    result, _ = run(docker_runner, spec, cancel)

    assert result.outcome is Outcome.CANCELED
    assert left_of(spec.run_id) == ([], [])


@docker
def test_remove_run_containers_reaps_services_and_networks_left_behind(
    docker_runner: DockerRunner, make_spec: MakeSpec, busybox_image: str
) -> None:
    spec = make_spec(["true"], services=[httpd(busybox_image, "web")])
    client = docker_runner._docker()
    services = Services(client, spec, lambda line: None)
    try:
        assert services.start() is None  # as a killed process leaves them: never removed
        containers, networks = left_of(spec.run_id)
        assert (len(containers), len(networks)) == (1, 1)

        assert docker_runner.remove_run_containers(spec.run_id) == 1

        assert left_of(spec.run_id) == ([], [])
    finally:
        services.remove()


# -- least power ------------------------------------------------------------------------------


@docker
def test_services_get_no_mounts_ports_or_privileges(
    docker_runner: DockerRunner, make_spec: MakeSpec, busybox_image: str
) -> None:
    spec = make_spec(["true"], services=[httpd(busybox_image, "web")])
    services = Services(docker_runner._docker(), spec, lambda line: None)
    try:
        assert services.start() is None
        (container,), _ = left_of(spec.run_id)
        info = json.loads(
            subprocess.run(
                ["docker", "inspect", container], capture_output=True, text=True, check=True
            ).stdout
        )[0]
    finally:
        services.remove()

    host = info["HostConfig"]
    assert (host["Binds"], host.get("Mounts"), host["Privileged"]) == (None, None, False)
    assert info["Mounts"] == []
    assert (host["PortBindings"] or {}, host["PublishAllPorts"]) == ({}, False)
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["CapAdd"] is None
    assert list(info["NetworkSettings"]["Networks"]) == [host["NetworkMode"]]


# -- failures ---------------------------------------------------------------------------------


@docker
def test_services_missing_image_fails_job_with_one_line_and_leaves_nothing(
    docker_runner: DockerRunner, make_spec: MakeSpec
) -> None:
    missing = ServiceSpec(image="cicd-test-missing:none", alias="db")
    spec = make_spec(["echo never"], services=[missing])

    result, printed = run(docker_runner, spec)

    assert (result.outcome, result.exit_code) == (Outcome.FAILED, None)
    assert result.error == "service 'db' of job 'job': image 'cicd-test-missing:none' not found"
    assert printed == []
    assert left_of(spec.run_id) == ([], [])


@docker
def test_services_entrypoint_missing_fails_job_with_one_line(
    docker_runner: DockerRunner, make_spec: MakeSpec, busybox_image: str
) -> None:
    broken = ServiceSpec(image=busybox_image, entrypoint=["/no/such/program"])
    spec = make_spec(["echo never"], services=[broken])

    result, _ = run(docker_runner, spec)

    assert result.outcome is Outcome.FAILED
    assert (result.error or "").startswith("service 'cicd-busybox' of job 'job' cannot start: ")
    assert "/no/such/program" in (result.error or "")
    assert "\n" not in (result.error or "")
    assert left_of(spec.run_id) == ([], [])


@docker
def test_services_ended_early_is_a_warning_and_job_outcome_stands(
    docker_runner: DockerRunner, make_spec: MakeSpec, busybox_image: str
) -> None:
    quits = ServiceSpec(
        image=busybox_image, alias="quits", entrypoint=["sh", "-c"], command=["echo bye; exit 5"]
    )
    spec = make_spec(["sleep 1", "echo job ran"], services=[quits])
    started = time.monotonic()

    result, printed = run(docker_runner, spec)

    assert (result.outcome, result.exit_code, result.error) == (Outcome.SUCCESS, 0, None)
    assert printed == [
        "job ran",
        "cicd: warning: service 'quits' ended early (exit code 5)",
        "cicd: service 'quits': bye",
    ]
    assert time.monotonic() - started < 20
    assert left_of(spec.run_id) == ([], [])


@docker
def test_services_one_failing_of_several_fails_job_and_removes_the_started(
    docker_runner: DockerRunner, make_spec: MakeSpec, busybox_image: str
) -> None:
    missing = ServiceSpec(image="cicd-test-missing:none", alias="db")
    spec = make_spec(["echo never"], services=[httpd(busybox_image, "web"), missing])

    result, printed = run(docker_runner, spec)

    assert (result.outcome, result.error) == (
        Outcome.FAILED,
        "service 'db' of job 'job': image 'cicd-test-missing:none' not found",
    )
    assert printed == []
    assert left_of(spec.run_id) == ([], [])
