"""What a job's container used: cgroup files found and read, stats samples, real containers."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from backend.pipeline.model import Resources
from backend.runner.base import JobSpec, Outcome
from backend.runner.docker import DockerRunner, oom_reason
from backend.runner.usage import CgroupFiles, _sampled, cgroup_files

ID = "ab" * 32
MIB = 1024 * 1024


def write(root: Path, files: dict[str, str]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def test_cgroup_files_v1_cgroupfs(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            f"memory/docker/{ID}/memory.max_usage_in_bytes": "126001152\n",
            f"cpuacct/docker/{ID}/cpuacct.usage": "1500000000\n",
        },
    )

    files = cgroup_files(ID, tmp_path)

    assert files is not None and files.version == 1
    usage = files.read()
    assert (usage.memory_peak_bytes, usage.cpu_seconds) == (126001152, 1.5)


def test_cgroup_files_v1_combined_cpu_mount_systemd(tmp_path: Path) -> None:
    place = f"system.slice/docker-{ID}.scope"
    write(
        tmp_path,
        {
            f"memory/{place}/memory.max_usage_in_bytes": "4096",
            f"cpu,cpuacct/{place}/cpuacct.usage": "250000000",
        },
    )

    files = cgroup_files(ID, tmp_path)

    assert files == CgroupFiles(
        tmp_path / "memory" / place / "memory.max_usage_in_bytes",
        tmp_path / "cpu,cpuacct" / place / "cpuacct.usage",
        1,
    )


def test_cgroup_files_v2_peak_and_cpu_stat(tmp_path: Path) -> None:
    place = f"system.slice/docker-{ID}.scope"
    write(
        tmp_path,
        {
            f"{place}/memory.peak": "73400320\n",
            f"{place}/cpu.stat": "usage_usec 2250000\nuser_usec 2000000\nsystem_usec 250000\n",
        },
    )

    files = cgroup_files(ID, tmp_path)

    assert files is not None and files.version == 2
    usage = files.read()
    assert (usage.memory_peak_bytes, usage.cpu_seconds) == (73400320, 2.25)


def test_cgroup_files_other_container_not_found(tmp_path: Path) -> None:
    write(tmp_path, {f"memory/docker/{ID}/memory.max_usage_in_bytes": "1"})

    assert cgroup_files("cd" * 32, tmp_path) is None
    assert cgroup_files(ID, tmp_path) is None  # no CPU file: not ours to guess


def test_cgroup_files_read_after_container_gone_oserror(tmp_path: Path) -> None:
    write(tmp_path, {f"docker/{ID}/memory.peak": "1", f"docker/{ID}/cpu.stat": "usage_usec 1"})
    files = cgroup_files(ID, tmp_path)
    assert files is not None
    (tmp_path / "docker" / ID / "memory.peak").unlink()

    with pytest.raises(OSError):
        files.read()


def test_sampled_v1_max_usage_and_cpu() -> None:
    sample = {
        "memory_stats": {"usage": 520192, "max_usage": 106213376},
        "cpu_stats": {"cpu_usage": {"total_usage": 1118052233}},
    }

    assert _sampled(sample) == (106213376, 1.118052233)


def test_sampled_v2_usage_only_and_empty_sample() -> None:
    assert _sampled({"memory_stats": {"usage": 65015808}, "cpu_stats": {}}) == (65015808, None)
    assert _sampled({"memory_stats": {}, "cpu_stats": {"cpu_usage": {"total_usage": 0}}}) == (
        None, None,
    )  # fmt: skip


def test_oom_reason_names_the_limit(make_spec: Callable[..., JobSpec]) -> None:
    limited = make_spec(["true"], resources=Resources(memory=64 * MIB, memory_text="64m"))

    assert oom_reason(limited) == "out of memory (OOM killed): limit 64m"
    assert oom_reason(make_spec(["true"])) == "out of memory (OOM killed)"


# -- real containers ----------------------------------------------------------------------

HOLD_120M = "head -c 120m /dev/zero | tail > /dev/null"


@pytest.mark.docker
def test_run_job_measures_peak_memory_and_cpu(
    docker_runner: DockerRunner, make_spec: Callable[..., JobSpec]
) -> None:
    result = docker_runner.run_job(make_spec([HOLD_120M]), lambda line: None, threading.Event())

    assert result.outcome is Outcome.SUCCESS, result.error
    assert result.memory_peak_bytes is not None and result.memory_peak_bytes > 100 * MIB
    assert result.cpu_seconds is not None and result.cpu_seconds > 0


@pytest.mark.docker
def test_run_job_memory_limit_oom_killed(
    docker_runner: DockerRunner, make_spec: Callable[..., JobSpec]
) -> None:
    spec = make_spec([HOLD_120M], resources=Resources(memory=64 * MIB, memory_text="64m"))

    result = docker_runner.run_job(spec, lambda line: None, threading.Event())

    assert (result.outcome, result.exit_code) == (Outcome.FAILED, 137)
    assert result.error == "out of memory (OOM killed): limit 64m"
    assert result.memory_peak_bytes is not None and result.memory_peak_bytes <= 64 * MIB


@pytest.mark.docker
def test_run_job_plain_failure_exit_137_not_oom(
    docker_runner: DockerRunner, make_spec: Callable[..., JobSpec]
) -> None:
    spec = make_spec(["exit 137"], resources=Resources(memory=64 * MIB, memory_text="64m"))

    result = docker_runner.run_job(spec, lambda line: None, threading.Event())

    assert (result.outcome, result.exit_code, result.error) == (Outcome.FAILED, 137, None)


@pytest.mark.docker
def test_run_job_after_script_shells_measured_and_oom(
    docker_runner: DockerRunner, make_spec: Callable[..., JobSpec]
) -> None:
    spec = make_spec(
        [HOLD_120M],
        after_script=["echo after"],
        resources=Resources(memory=64 * MIB, memory_text="64m"),
    )
    lines: list[str] = []

    result = docker_runner.run_job(spec, lines.append, threading.Event())

    assert result.outcome is Outcome.FAILED
    assert result.error == "out of memory (OOM killed): limit 64m"
    assert "after" in lines
    assert result.memory_peak_bytes is not None and result.cpu_seconds is not None


def test_cgroup_files_oom_kills_v1_and_v2(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            f"memory/docker/{ID}/memory.max_usage_in_bytes": "1",
            f"memory/docker/{ID}/memory.oom_control": "oom_kill_disable 0\noom_kill 2\n",
            f"cpuacct/docker/{ID}/cpuacct.usage": "1",
            f"docker/{'cd' * 32}/memory.peak": "1",
            f"docker/{'cd' * 32}/cpu.stat": "usage_usec 1",
            f"docker/{'cd' * 32}/memory.events": "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
        },
    )
    v1, v2 = cgroup_files(ID, tmp_path), cgroup_files("cd" * 32, tmp_path)
    assert v1 is not None and v2 is not None

    assert (v1.oom_kills(), v2.oom_kills()) == (2, 1)
    (tmp_path / "memory" / "docker" / ID / "memory.oom_control").unlink()
    assert v1.oom_kills() is None


@pytest.mark.docker
def test_run_job_engine_elsewhere_measured_by_stats_stream(
    docker_runner: DockerRunner,
    make_spec: Callable[..., JobSpec],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("backend.runner.usage.CGROUP_ROOT", tmp_path)  # no cgroup files here
    spec = make_spec([f"{HOLD_120M}; sleep 2"])

    result = docker_runner.run_job(spec, lambda line: None, threading.Event())

    assert result.outcome is Outcome.SUCCESS, result.error
    assert result.memory_peak_bytes is not None and result.memory_peak_bytes > 100 * MIB
    assert result.cpu_seconds is not None and result.cpu_seconds > 0
