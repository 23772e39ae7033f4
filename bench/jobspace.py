"""What isolated workspaces cost per job, against the shared workspace (issue 10, item 1).

Two measurements, both warm (a warm-up round first, then the median of ``--rounds``):

- ``direct``: ``jobspace.open_workspace`` + ``close_workspace`` for the 20 jobs of one wide
  stage, on a real checkout (this repository's committed files, ``git archive HEAD``), done by
  ``--jobs`` threads at once as a run does; shared mode is the baseline (it makes nothing).
  Also the same copy made each other way considered (hard links, ``cp -a``, Python's
  ``copytree``), for the record.
- ``run`` (``--docker``): ``cicd run`` of a native 20-job one-stage pipeline (busybox ``true``)
  in a git project holding the same files, ``pipeline.workspace: shared`` vs ``isolated``;
  the per-job overhead is (isolated - shared) / 20.

Usage: ``.venv/bin/python -m bench.jobspace [--rounds 5] [--jobs 8] [--docker]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
WIDTH = 20
BUSYBOX = "cicd-busybox:latest"


def _checkout(dest: Path) -> int:
    """This repository's committed files into ``dest``; returns how many files."""
    dest.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", "HEAD"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return sum(len(files) for _, _, files in os.walk(dest))


def _pipeline(mode: str) -> Any:
    from backend.pipeline.model import Job, Pipeline, Stage

    jobs = [
        Job(name=f"job {i}", stage="wide", image=BUSYBOX, script=["true"]) for i in range(WIDTH)
    ]
    return Pipeline(name="wide", stages=[Stage(name="wide", jobs=jobs)], workspace=mode)


def _context(mode: str, workspace: Path, runner: Any) -> Any:
    from backend.execution import RunContext

    pipeline = _pipeline(mode)
    return RunContext(
        key=f"bench-{mode}-{time.monotonic_ns()}",
        pipeline=pipeline,
        stage_order={"wide": list(pipeline.jobs)},
        runner=runner,
        recorder=None,  # type: ignore[arg-type]  # open/close never record
        workspace=workspace,
        commit="0" * 40,
    )


def _direct_round(mode: str, workspace: Path, threads: int, runner: Any) -> float:
    """Seconds for open + close of the 20 jobs, ``threads`` at a time.

    With a FakeRunner an isolated job gets a copy; with a DockerRunner an overlay volume.
    """
    from backend import jobspace

    ctx = _context(mode, workspace, runner)

    def one(job: Any) -> None:
        space = jobspace.open_workspace(ctx, job, lambda _line: None)
        jobspace.close_workspace(ctx, job, space)

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, ctx.pipeline.jobs))
    took = time.perf_counter() - start
    jobspace.finish_run(ctx)
    return took


def _copy_round(copy: Callable[[Path, Path], None], base: Path, scratch: Path) -> float:
    """Seconds per job for ``copy`` then removal, one job after the other."""
    times = []
    for i in range(WIDTH):
        dest = scratch / f"c{i}"
        start = time.perf_counter()
        copy(base, dest)
        shutil.rmtree(dest)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _cp(*flags: str) -> Callable[[Path, Path], None]:
    def run(base: Path, dest: Path) -> None:
        subprocess.run(["cp", *flags, f"{base}/.", str(dest)], check=True)

    return run


def _median(rounds: int, measure: Callable[[], float]) -> float:
    measure()  # warm-up
    return statistics.median(measure() for _ in range(rounds))


def direct(rounds: int, threads: int, docker: bool) -> dict[str, float]:
    """Per-job milliseconds of each way, on this repository's checkout."""
    with tempfile.TemporaryDirectory(prefix="cicd-bench-jobspace-") as tmp:
        root = Path(tmp)
        base = root / "run-key"
        files = _checkout(base)
        size = sum(p.stat().st_size for p in base.rglob("*") if p.is_file())
        print(f"checkout: {files} files, {size / 1024:.0f} KiB; {WIDTH} jobs, {threads} at once")
        from backend.runner.docker import DockerRunner
        from backend.runner.fake import FakeRunner

        found: dict[str, float] = {}
        ways = [("shared", "", FakeRunner()), ("isolated", "copy", FakeRunner())]
        if docker:
            ways.append(("isolated", "overlay", DockerRunner()))
        for mode, how, runner in ways:
            for n in (threads, 1):
                took = _median(rounds, lambda m=mode, r=runner, n=n: _direct_round(m, base, n, r))
                at_once = f"{n} at once" if n > 1 else "one after the other"
                found[f"open+close {mode} {how} ({at_once})"] = took / WIDTH * 1000
        scratch = root / "scratch"
        scratch.mkdir()
        ways = {
            "cp -a --reflink=auto (the fallback)": _cp("-a", "--reflink=auto", "-T"),
            "cp -a": _cp("-a", "-T"),
            "shutil.copytree": lambda b, d: shutil.copytree(b, d, symlinks=True),
            "cp -al (hard links: unsafe)": _cp("-al", "-T"),
        }
        for name, copy in ways.items():
            found[f"copy+remove: {name}"] = (
                _median(rounds, lambda c=copy: _copy_round(c, base, scratch)) * 1000
            )
        return found


def containers(rounds: int) -> dict[str, float]:
    """Per-container ms of a busybox ``true`` with the checkout bound vs an overlay volume.

    Create, start, wait, remove, one after the other, the two kinds interleaved; the overlay
    one includes making and removing its volume (what an isolated job adds on the engine).
    """
    import docker

    from backend.runner.snapshot import create_overlay_volume, remove_volume

    client = docker.from_env()
    found: dict[str, list[float]] = {"bind": [], "overlay": []}
    with tempfile.TemporaryDirectory(prefix="cicd-bench-jobspace-ct-") as tmp:
        base = Path(tmp) / "base"
        _checkout(base)

        def one(kind: str, i: int) -> float:
            start = time.perf_counter()
            source = str(base)
            if kind == "overlay":
                upper, work = Path(tmp) / f"u{i}", Path(tmp) / f"w{i}"
                upper.mkdir()
                work.mkdir()
                source = f"cicd-bench-jobspace-{os.getpid()}-{i}"
                create_overlay_volume(client, source, base, upper, work, {"cicd-bench": "1"})
            container = client.containers.create(
                BUSYBOX, ["true"], volumes={source: {"bind": "/workspace", "mode": "rw"}},
                labels={"cicd-bench": "jobspace"},
            )  # fmt: skip
            try:
                container.start()
                container.wait()
            finally:
                container.remove(force=True)
                if kind == "overlay":
                    remove_volume(client, source)
            return time.perf_counter() - start

        one("bind", 0)
        one("overlay", 0)  # warm
        for i in range(1, rounds * 4 + 1):
            for kind in ("bind", "overlay"):
                found[kind].append(one(kind, i))
    result = {f"container {k} (ms, median of {len(v)})": statistics.median(v) * 1000
              for k, v in found.items()}  # fmt: skip
    result["container: overlay - bind (ms)"] = (
        statistics.median(found["overlay"]) - statistics.median(found["bind"])
    ) * 1000
    return result


def _native(mode: str) -> str:
    lines = [f"pipeline: {{name: wide, image: {BUSYBOX}, stages: [wide], workspace: {mode}}}"]
    lines.append("jobs:")
    lines += [f"  - {{name: job{i}, stage: wide, script: 'true'}}" for i in range(WIDTH)]
    return "\n".join(lines) + "\n"


def run_docker(rounds: int, threads: int) -> dict[str, float]:
    """Wall seconds of ``cicd run`` in each mode, and the per-job difference in ms."""
    cicd = REPO_ROOT / ".venv" / "bin" / "cicd"
    found: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="cicd-bench-jobspace-run-") as tmp:
        root = Path(tmp)
        repo, home = root / "repo", root / "home"
        _checkout(repo)
        (repo / ".pipelines").mkdir(exist_ok=True)
        for mode in ("shared", "isolated"):
            (repo / ".pipelines" / f"{mode}.yaml").write_text(
                _native(mode).replace("wide,", f"{mode},", 1).replace("name: wide", f"name: {mode}")
            )
        git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
        subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
        subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
        subprocess.run([*git, "commit", "-q", "-m", "bench"], cwd=repo, check=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CICD_")}
        env.update(CICD_HOME=str(home), NO_COLOR="1")

        def once(mode: str) -> float:
            start = time.perf_counter()
            done = subprocess.run(
                [str(cicd), "run", "-p", mode, "--jobs", str(threads)],
                cwd=repo,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise SystemExit(
                    f"cicd run -p {mode} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
                )
            return time.perf_counter() - start

        def job_seconds(mode: str) -> list[float]:
            """Each job's recorded duration (started -> finished) in the last run of ``mode``."""
            done = subprocess.run(
                [str(cicd), "report", "-p", mode, "--run", str(counts[mode]), "--format", "json"],
                cwd=repo, env=env, capture_output=True, text=True, check=True,
            )  # fmt: skip
            report = json.loads(done.stdout)
            jobs = [job for stage in report["stages"] for job in stage["jobs"]]
            return [
                (
                    datetime.fromisoformat(j["finished_at"])
                    - datetime.fromisoformat(j["started_at"])
                ).total_seconds()
                for j in jobs
            ]

        counts = {"shared": 0, "isolated": 0}
        for mode in ("shared", "isolated"):
            once(mode)  # warm: images, Prefect, the store
            counts[mode] += 1
        samples: dict[str, list[float]] = {"shared": [], "isolated": []}
        durations: dict[str, list[float]] = {"shared": [], "isolated": []}
        for _ in range(rounds):  # interleaved, so drift hits both alike
            for mode in ("shared", "isolated"):
                samples[mode].append(once(mode))
                counts[mode] += 1
                durations[mode] += job_seconds(mode)
        for mode, values in samples.items():
            found[f"cicd run {mode} (s, median of {rounds})"] = statistics.median(values)
        diff = statistics.median(samples["isolated"]) - statistics.median(samples["shared"])
        found["run wall: isolated - shared, per job (ms)"] = diff / WIDTH * 1000
        for mode, values in durations.items():
            found[f"job duration {mode} (ms, median of {len(values)} jobs)"] = (
                statistics.median(values) * 1000
            )
        found["job duration: isolated - shared (ms)"] = (
            statistics.median(durations["isolated"]) - statistics.median(durations["shared"])
        ) * 1000
    return found


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=8, help="jobs at once (a run's --jobs)")
    parser.add_argument("--docker", action="store_true", help="also time real cicd runs")
    parser.add_argument("--runs-only", action="store_true", help="only the cicd runs")
    parser.add_argument("--containers-only", action="store_true", help="only the containers")
    args = parser.parse_args()
    if args.containers_only:
        for name, value in containers(args.rounds).items():
            print(f"{name:58} {value:8.1f}")
        return
    if not args.runs_only:
        for name, value in direct(args.rounds, args.jobs, args.docker).items():
            print(f"{name:58} {value:8.1f} ms")
    if args.docker and not args.runs_only:
        for name, value in containers(args.rounds).items():
            print(f"{name:58} {value:8.1f}")
    if args.docker or args.runs_only:
        for name, value in run_docker(args.rounds, args.jobs).items():
            print(f"{name:58} {value:8.2f}")


if __name__ == "__main__":
    main()
