"""What a job's container used: its peak memory and its CPU time, measured without slowing it.

When the engine runs on this machine, the container's own cgroup files are read every
``POLL_SECONDS`` by a thread of ours: the kernel keeps the high-water mark of memory
(``memory.max_usage_in_bytes`` on cgroup v1, ``memory.peak`` on v2) and the CPU time used
(``cpuacct.usage``, ``cpu.stat``'s ``usage_usec``), so a sample is two small reads and the
peak is exact whenever it was reached before the last read (the cgroup goes with the
container's end). An engine elsewhere (``DOCKER_HOST``) or a cgroup layout we cannot find is
measured through the engine's stats stream instead: one sample a second, so a job shorter than
a second may go unmeasured (None), and memory is the highest sample seen. A one-shot ``docker
stats`` call costs one to two seconds, which is why neither way asks for one per sample.

Memory counts what the kernel charges to the container, page cache included: the figure a
``resources: memory`` limit is compared against.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker

from backend.runner.engine import ENGINE_ERRORS

POLL_SECONDS = 0.05
FIND_SECONDS = 1.0  # how long the cgroup files are looked for before the stats stream is used
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Usage:
    """What a container used; None for what could not be measured."""

    memory_peak_bytes: int | None = None
    cpu_seconds: float | None = None


@dataclass(frozen=True)
class CgroupFiles:
    """Where one container's memory peak and CPU time are, and how to read them."""

    memory: Path
    cpu: Path
    version: int  # 1 or 2

    @property
    def oom_events(self) -> Path:
        """The file whose ``oom_kill N`` line counts the processes killed for memory."""
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        return self.memory.with_name(name)

    def oom_kills(self) -> int | None:
        """How many processes the kernel killed for memory so far (None: cannot tell)."""
        try:
            text = self.oom_events.read_text()
        except OSError:
            return None
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value)
        return None

    def read(self) -> Usage:
        """The current values (OSError once the container's cgroup is gone)."""
        peak = int(self.memory.read_text().split()[0])
        if self.version == 1:
            cpu = int(self.cpu.read_text().split()[0]) / 1e9
        else:
            fields = dict(line.split() for line in self.cpu.read_text().splitlines() if line)
            cpu = int(fields["usage_usec"]) / 1e6
        return Usage(peak, cpu)


def cgroup_files(container: str, root: Path = CGROUP_ROOT) -> CgroupFiles | None:
    """The cgroup files of ``container`` (a full id) on this machine, if they are there.

    Docker's two cgroup drivers (cgroupfs: ``docker/ID``, systemd:
    ``system.slice/docker-ID.scope``) on cgroup v1 and v2.
    """
    places = (f"docker/{container}", f"system.slice/docker-{container}.scope")
    for place in places:
        v2 = root / place
        if (v2 / "memory.peak").is_file() and (v2 / "cpu.stat").is_file():
            return CgroupFiles(v2 / "memory.peak", v2 / "cpu.stat", 2)
        memory = root / "memory" / place / "memory.max_usage_in_bytes"
        for cpu_mount in ("cpuacct", "cpu,cpuacct"):
            cpu = root / cpu_mount / place / "cpuacct.usage"
            if memory.is_file() and cpu.is_file():
                return CgroupFiles(memory, cpu, 1)
    return None


class UsageMeter:
    """Measures one running container in a thread of its own until ``stop``.

    Start it right after the container started; ``stop`` returns at once with what was
    measured, whatever the engine does.
    """

    def __init__(self, client: docker.DockerClient, container: str) -> None:
        self._client = client
        self._container = container
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._memory: int | None = None
        self._cpu: float | None = None
        self._local = False  # reading the cgroup files (not the stats stream)
        self._files: CgroupFiles | None = None
        self._thread = threading.Thread(target=self._run, name="cicd-usage", daemon=True)
        self._thread.start()

    def stop(self) -> Usage:
        """Stop measuring; what was measured so far (the local reader reads once more)."""
        self._stopped.set()
        if self._local:  # its last read takes microseconds; a stream's next sample, a second
            self._thread.join(POLL_SECONDS * 4)
        with self._lock:
            return Usage(self._memory, None if self._cpu is None else round(self._cpu, 3))

    def oom_kills(self) -> int | None:
        """Processes of the container the kernel killed for memory, while its cgroup is there
        (a job's exec shells: Docker flags only a main process killed so); None: unknown."""
        return self._files.oom_kills() if self._files is not None else None

    def _keep(self, memory: int | None, cpu: float | None) -> None:
        with self._lock:
            if memory is not None and memory > 0:
                self._memory = max(memory, self._memory or 0)
            if cpu is not None and cpu > 0:
                self._cpu = max(cpu, self._cpu or 0.0)

    def _run(self) -> None:
        try:
            files = self._find()
            if files is not None:
                self._files = files
                self._local = True
                self._poll(files)
            elif not self._stopped.is_set():
                self._stream()
        except Exception:  # measuring must never fail a job
            return

    def _find(self) -> CgroupFiles | None:
        waited = 0.0
        while waited < FIND_SECONDS:
            files = cgroup_files(self._container, CGROUP_ROOT)
            if files is not None or self._stopped.is_set():
                return files
            self._stopped.wait(POLL_SECONDS)
            waited += POLL_SECONDS
        return None

    def _poll(self, files: CgroupFiles) -> None:
        while True:
            try:
                usage = files.read()
            except (OSError, ValueError, KeyError):
                return  # the container ended and took its cgroup along
            self._keep(usage.memory_peak_bytes, usage.cpu_seconds)
            if self._stopped.wait(POLL_SECONDS):
                try:
                    usage = files.read()
                except (OSError, ValueError, KeyError):
                    return
                self._keep(usage.memory_peak_bytes, usage.cpu_seconds)
                return

    def _stream(self) -> None:
        try:
            samples = self._client.api.stats(self._container, stream=True, decode=True)
            try:
                for sample in samples:
                    memory, cpu = _sampled(sample)
                    self._keep(memory, cpu)
                    if self._stopped.is_set():
                        return
            finally:
                samples.close()  # lets the engine's connection go
        except ENGINE_ERRORS:
            return


def _sampled(sample: dict[str, Any]) -> tuple[int | None, float | None]:
    """Memory (its high-water mark when the engine gives one) and CPU seconds of one sample."""
    memory_stats = sample.get("memory_stats") or {}
    memory = max(
        int(memory_stats.get("max_usage") or 0), int(memory_stats.get("usage") or 0)
    )
    cpu_ns = ((sample.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage")
    return (memory or None), (int(cpu_ns) / 1e9 if cpu_ns else None)
