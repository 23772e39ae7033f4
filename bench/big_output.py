"""Does ``cicd run`` keep its memory flat when a job prints a lot?

    .venv/bin/python bench/big_output.py [--mb 100] [--line 99]

Runs, with one fresh CICD_HOME (its Prefect server started first, so start-up is not measured):

1. a baseline pipeline whose one job prints one line;
2. a pipeline whose one job prints ``--mb`` MB (lines of ``--line`` characters, via ``yes | head``).

For each it reports the peak RSS of the ``cicd run`` process (``getrusage`` of the child, i.e. its
high-water mark) and the RSS sampled from /proc every 0.2 s (so a steady climb shows), the wall
time and throughput, how many lines reached the terminal and how big the job's log file is.
Memory is flat when the big run's peak stays near the baseline's, whatever ``--mb``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import tools
from bench.pipelines import Job, Pipeline


def pipeline(mb: int, line: int) -> Pipeline:
    if mb <= 0:
        script = ("echo small",)
    else:
        text = ("0123456789" * (line // 10 + 1))[:line]
        script = (f"yes {text} | head -c {mb * 1024 * 1024}",)
    return Pipeline(
        f"output{mb}mb", f"one job printing {mb} MB", ("build",), (Job("talk", "build", script),)
    )


def _rss_kb(pid: int) -> int | None:
    try:
        for row in Path(f"/proc/{pid}/status").read_text().splitlines():
            if row.startswith("VmRSS:"):
                return int(row.split()[1])
    except OSError:
        return None
    return None


def measure(p: Pipeline, home: Path) -> dict:
    repo = tools.make_repo(p, "cicd")
    samples: list[tuple[float, int]] = []
    try:
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        began = time.perf_counter()
        proc = subprocess.Popen(
            [str(tools.CICD), "run"],
            cwd=repo,
            env=tools.cicd_env(home),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                rss = _rss_kb(proc.pid)
                if rss is not None:
                    samples.append((time.perf_counter() - began, rss))
                done.wait(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        lines = 0
        tail = b""
        assert proc.stdout is not None
        while chunk := proc.stdout.read(1 << 20):
            lines += chunk.count(b"\n")
            tail = (tail + chunk)[-3000:]
        code = proc.wait()
        wall = time.perf_counter() - began
        done.set()
        sampler.join()
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        logs = sorted(
            (home / "logs").rglob("*"), key=lambda f: f.stat().st_size if f.is_file() else 0
        )
        log_bytes = logs[-1].stat().st_size if logs and logs[-1].is_file() else 0
        return {
            "name": p.name,
            "exit": code,
            "wall": wall,
            "lines": lines,
            # ru_maxrss of all children so far: the larger of this run and the earlier ones
            "peak_kb": peak if peak > before else None,
            "samples": samples,
            "log_bytes": log_bytes,
            "tail": tail.decode(errors="replace"),
        }
    finally:
        shutil.rmtree(repo, ignore_errors=True)


def _curve(samples: list[tuple[float, int]]) -> str:
    if not samples:
        return "-"
    n = len(samples)
    picks = [samples[min(n - 1, int(n * q))] for q in (0.1, 0.25, 0.5, 0.75, 0.9)] + [samples[-1]]
    return ", ".join(f"{t:.0f}s {kb / 1024:.0f}MB" for t, kb in picks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=100, help="MB the job prints (default 100)")
    parser.add_argument("--line", type=int, default=99, help="characters per line (default 99)")
    args = parser.parse_args()
    home = tools.new_home()
    try:
        results = []
        for mb in (0, args.mb):  # baseline first: it also starts the Prefect server
            r = measure(pipeline(mb, args.line), home)
            results.append(r)
            peak = f"{r['peak_kb'] / 1024:.0f} MB" if r["peak_kb"] else "n/a (below an earlier run)"
            max_sampled = max((kb for _, kb in r["samples"]), default=0) / 1024
            mbps = mb / r["wall"] if mb else 0
            print(
                f"{r['name']}: exit {r['exit']}, {r['wall']:.1f}s"
                + (f" ({mbps:.1f} MB/s)" if mb else "")
                + f", peak RSS {peak} (max sampled {max_sampled:.0f} MB), "
                f"{r['lines']} lines on the terminal, job log {r['log_bytes'] / 1e6:.1f} MB"
            )
            print(f"  RSS over time: {_curve(r['samples'])}")
            if r["exit"] != 0:
                print("  output tail:\n    " + "\n    ".join(r["tail"].splitlines()[-8:]))
        base, big = results
        if base["samples"] and big["samples"]:
            growth = (
                max(kb for _, kb in big["samples"]) - max(kb for _, kb in base["samples"])
            ) / 1024
            print(
                f"peak growth for {args.mb} MB of output: {growth:+.0f} MB "
                f"({'flat' if growth < 50 else 'NOT flat'}: threshold 50 MB)"
            )
    finally:
        tools.stop_cicd_home(home)
    return 0


if __name__ == "__main__":
    os.environ.pop("PREFECT_API_URL", None)
    sys.exit(main())
