"""Where the time of a ``cicd run`` goes, measured from outside cicd.

    .venv/bin/python bench/where_time_goes.py [--pipeline uneven] [--top 25] [--keep]

Runs the pipeline twice with one fresh CICD_HOME (cold: cicd starts its Prefect server; warm: it
reuses it), each time under ``bench/probe.py`` with ``python -X importtime``, and prints per run:

- the timeline: process start, each cicd phase (prepare, Prefect configure, store, submit,
  checkout, images, flow, each job's container, summary) with start offset and duration;
- the I/O it waited on: Prefect API calls (by endpoint, with non-2xx answers), Docker API calls
  (create/attach/start/wait/remove...), history-store SQL, git subprocesses;
- the imports that cost most (``-X importtime``);
- the top cProfile entries by cumulative time (all threads merged) for prefect, docker,
  sqlalchemy, httpx and cicd's own modules. The .prof files stay in bench/_work/ for snakeviz or
  ``python -m pstats``.

Summed durations overlap (threads run in parallel): compare them with the wall time, not with
each other's sum.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import re
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import pipelines, tools

PROBE = Path(__file__).resolve().parent / "probe.py"
PYTHON = tools.REPO_ROOT / ".venv" / "bin" / "python"
OURS = ("backend", "flows", "cicd_cli")
INTERESTING = ("prefect", "docker", "sqlalchemy", "httpx", "requests", "alembic", *OURS)


def run_probed(repo: Path, home: Path, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    env = tools.cicd_env(home)
    env["CICD_BENCH_PROBE_OUT"] = str(out)
    env["PYTHONPATH"] = str(tools.REPO_ROOT)
    lines: list[tuple[float, str]] = []
    began = time.perf_counter()
    began_epoch = time.time()
    with open(out / "stderr.txt", "wb") as err:
        proc = subprocess.Popen(
            [str(PYTHON), "-X", "importtime", str(PROBE), "run"],
            cwd=repo,
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
        )
        assert proc.stdout is not None
        for raw in proc.stdout:
            lines.append((time.perf_counter() - began, raw.decode(errors="replace").rstrip()))
        proc.wait()
    wall = time.perf_counter() - began
    (out / "stdout.txt").write_text("\n".join(f"{t:7.3f} {line}" for t, line in lines))
    data = {"wall": wall, "exit_code": proc.returncode, "lines": lines, "began_epoch": began_epoch}
    try:
        data.update(json.loads((out / "events.json").read_text()))
    except (OSError, ValueError):
        data["events"] = []
    return data


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:8.0f} ms"


def report(title: str, data: dict, out: Path, top: int) -> None:
    print(f"\n=== {title}: wall {data['wall']:.2f}s, exit {data['exit_code']} ===")
    if data["exit_code"] != 0:
        print("  cicd output (end):")
        for _, line in data["lines"][-10:]:
            print(f"    {line}")
        tail = (out / "stderr.txt").read_text(errors="replace").splitlines()
        print("    " + "\n    ".join(x for x in tail if not x.startswith("import time:"))[-1500:])
    # offset between the parent's clock and the probe's clock (probe T0 = its own start)
    shift = data.get("epoch0", data["began_epoch"]) - data["began_epoch"]
    print(f"\n-- timeline (s from `cicd run` exec; python start-up + probe set-up: {shift:.2f}s)")
    events = data.get("events", [])
    phases: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for cat, name, start, dur, _thread in events:
        if cat == "phase":
            phases[name].append((start + shift, dur))
    for name, calls in sorted(phases.items(), key=lambda kv: kv[1][0][0]):
        first = min(s for s, _ in calls)
        last_end = max(s + d for s, d in calls)
        total = sum(d for _, d in calls)
        count = f"x{len(calls)}" if len(calls) > 1 else ""
        print(f"  {first:7.2f} -> {last_end:7.2f}  {name:<40} {count:>5} sum {total:7.2f}s")
    if "returned" in data:
        print(
            f"  {data['returned'] + shift:7.2f}  cicd's main() returned; probe wrote its data "
            f"until {data['end'] + shift:.2f}; the process exited at {data['wall']:.2f} "
            f"(interpreter shut-down: {data['wall'] - data['end'] - shift:.2f}s)"
        )
    if data["lines"]:
        first_line = data["lines"][0]
        print(f"  first output line at {first_line[0]:.2f}s: {first_line[1][:70]}")
        print(f"  last output line at  {data['lines'][-1][0]:.2f}s: {data['lines'][-1][1][:70]}")
    for category, label in (
        ("prefect-api", "Prefect API calls (httpx)"),
        ("docker", "Docker API calls (docker SDK)"),
        ("store-sql", "history store SQL"),
        ("subprocess", "subprocesses"),
    ):
        rows = [(name, dur) for cat, name, _s, dur, _t in events if cat == category]
        if not rows:
            print(f"\n-- {label}: none seen")
            continue
        by: dict[str, list[float]] = defaultdict(list)
        for name, dur in rows:
            by[name].append(dur)
        total = sum(d for _, d in rows)
        print(f"\n-- {label}: {len(rows)} calls, {total:.2f}s summed (overlapping)")
        for name, durs in sorted(by.items(), key=lambda kv: -sum(kv[1]))[:12]:
            print(
                f"  {len(durs):5d} x  sum {_ms(sum(durs))}  mean {_ms(sum(durs) / len(durs))}"
                f"  max {_ms(max(durs))}  {name[:70]}"
            )
    imports(out / "stderr.txt")
    profile(out / "cicd.prof", top)


_IMPORT = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( +)(\S+)")


def imports(stderr: Path) -> None:
    rows = []
    for line in stderr.read_text(errors="replace").splitlines():
        match = _IMPORT.match(line)
        if match:
            rows.append((int(match.group(2)) / 1e6, len(match.group(3)), match.group(4)))
    if not rows:
        return
    top_level = [r for r in rows if r[1] == 1]
    total = sum(r[0] for r in top_level)
    package: dict[str, float] = defaultdict(float)
    for seconds, level, name in rows:
        if level == 1:
            package[name.split(".")[0]] += seconds
    print(f"\n-- imports (-X importtime, which inflates them a little): {total:.2f}s in all")
    for name, seconds in sorted(package.items(), key=lambda kv: -kv[1])[:10]:
        print(f"  {seconds:6.2f}s  {name}")
    print("  heaviest single top-level imports:")
    for seconds, _level, name in sorted(top_level, reverse=True)[:8]:
        print(f"  {seconds:6.2f}s  {name}")


def profile(prof: Path, top: int) -> None:
    if not prof.exists():
        print("\n-- no profile written")
        return
    stats = pstats.Stats(str(prof))
    rows = []
    for (filename, line, func), (_cc, calls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        where = filename.replace(str(tools.REPO_ROOT) + "/", "")
        where = re.sub(r"^.*/site-packages/", "", where)
        if not where.startswith(INTERESTING) or "/_vendor/" in where:
            continue
        rows.append((cumtime, tottime, calls, f"{where}:{line}({func})"))
    rows.sort(reverse=True)
    print(f"\n-- cProfile, top {top} by cumulative time (all threads merged; {prof})")
    print("      cum    own   calls  function")
    for cum, own, calls, name in rows[:top]:
        print(f"  {cum:7.2f} {own:6.2f} {calls:7d}  {name[:110]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline", default="uneven", choices=sorted(pipelines.PIPELINES))
    parser.add_argument("--top", type=int, default=25, help="cProfile entries to show")
    parser.add_argument("--keep", action="store_true", help="keep the temporary repo and home")
    args = parser.parse_args()
    p = pipelines.get(args.pipeline)
    work = tools.WORK / "where_time_goes"
    shutil.rmtree(work, ignore_errors=True)
    repo = tools.make_repo(p, "cicd")
    home = tools.new_home()
    print(f"pipeline {p.name} ({len(p.jobs)} jobs): {p.description}; repo {repo}, CICD_HOME {home}")
    try:
        for kind in ("cold", "warm"):
            data = run_probed(repo, home, work / kind)
            report(f"cicd run {kind}", data, work / kind, args.top)
    finally:
        if args.keep:
            print(
                f"\nkept {repo} and {home}; stop its Prefect server with "
                f"flows.prefect_api.stop_local_server"
            )
        else:
            tools.stop_cicd_home(home)
            shutil.rmtree(repo, ignore_errors=True)
    print(f"\nraw data: {work}/{{cold,warm}}/ (events.json, cicd.prof, stdout.txt, stderr.txt)")
    return 0


if __name__ == "__main__":
    os.environ.pop("PREFECT_API_URL", None)
    sys.exit(main())
