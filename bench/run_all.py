"""Benchmark cicd against the physical floor and gitlab-ci-local, side by side.

    .venv/bin/python bench/run_all.py [--runs N] [--only NAME ...] [--json] [--floor sdk|cli]
                                      [--skip-gcl] [--skip-cicd] [--projects]

For each pipeline of ``bench/pipelines.py`` (uneven, wide, long, big) it measures, as the median
of N runs (wall-clock seconds):

- floor: the same containers started by hand in the best possible schedule (``bench/floor.py``);
- cicd cold: ``cicd run`` with a fresh CICD_HOME (cicd starts its local Prefect server);
- cicd warm: a second ``cicd run`` with the same CICD_HOME (the server is reused), once the
  first has been mirrored into Prefect (a cold run may end before that);
- gcl: gitlab-ci-local 4.70.1 on the same pipeline as ``.gitlab-ci.yml``.

and prints one table with the ratios and warm's per-job overhead, then the issue's targets.
``--projects`` adds real projects' ``.gitlab-ci.yml`` files (``bench/gitlab_projects.py``:
more-itertools and six from PyPI, run by cicd and gitlab-ci-local, with each job's outcome).
Nothing here asserts: these are figures for people, not tests. Every container started here is
removed; the Prefect servers cicd started for the temporary homes are stopped.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import signal
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import floor, gitlab_projects, pipelines, tools


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def measure(
    name: str, runs: int, floor_mode: str, do_cicd: bool, do_gcl: bool, gcl_timeout: float
) -> dict:
    p = pipelines.get(name)
    result: dict = {
        "pipeline": name,
        "description": p.description,
        "jobs": len(p.jobs),
        "runs": runs,
        "floor": [],
        "cicd_cold": [],
        "cicd_warm": [],
        "gcl": [],
        "failures": [],
    }
    for i in range(runs):
        try:
            seconds = floor.run_floor(p, floor_mode)
            result["floor"].append(seconds)
            _log(f"  {name} run {i + 1}/{runs}: floor {seconds:.2f}s")
        except RuntimeError as exc:
            result["failures"].append(f"floor: {exc}")
        finally:
            floor.cleanup()
    if do_cicd:
        repo = tools.make_repo(p, "cicd")
        try:
            for i in range(runs):
                home = tools.new_home()
                try:
                    for kind in ("cold", "warm"):
                        t = tools.run_cicd(repo, home)
                        _log(
                            f"  {name} run {i + 1}/{runs}: cicd {kind} {t.seconds:.2f}s "
                            f"(exit {t.returncode})"
                        )
                        if kind == "cold":  # warm: the daemon and its Prefect server idle
                            tools.wait_mirrored(home)
                        if t.ok:
                            result[f"cicd_{kind}"].append(t.seconds)
                        else:
                            result["failures"].append(
                                f"cicd {kind} exit {t.returncode} after {t.seconds:.1f}s:\n{t.tail}"
                            )
                finally:
                    tools.stop_cicd_home(home)
        finally:
            shutil.rmtree(repo, ignore_errors=True)
    if do_gcl:
        for i in range(runs):
            repo = tools.make_repo(p, "gcl")
            try:
                t = tools.run_gcl(repo, gcl_timeout)
                _log(
                    f"  {name} run {i + 1}/{runs}: gitlab-ci-local {t.seconds:.2f}s "
                    f"(exit {t.returncode})"
                )
                if t.ok:
                    result["gcl"].append(t.seconds)
                else:
                    result["failures"].append(f"gcl exit {t.returncode}:\n{t.tail}")
            finally:
                tools.cleanup_gcl(repo)
    med = {key: _median(result[key]) for key in ("floor", "cicd_cold", "cicd_warm", "gcl")}
    result["median"] = med
    f, cold, warm, gcl = med["floor"], med["cicd_cold"], med["cicd_warm"], med["gcl"]
    result["warm_over_floor"] = warm / f if warm and f else None
    result["cold_over_gcl"] = cold / gcl if cold and gcl else None
    result["warm_overhead_ms_per_job"] = (warm - f) / len(p.jobs) * 1000 if warm and f else None
    return result


def _fmt(value: float | None, spec: str = ".2f", suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def table(results: list[dict]) -> str:
    head = [
        "pipeline",
        "jobs",
        "floor",
        "cicd cold",
        "cicd warm",
        "gitlab-ci-local",
        "warm/floor",
        "cold/gcl",
        "warm overhead/job",
    ]
    rows = [head]
    for r in results:
        m = r["median"]
        rows.append(
            [
                r["pipeline"],
                str(r["jobs"]),
                _fmt(m["floor"], suffix="s"),
                _fmt(m["cicd_cold"], suffix="s"),
                _fmt(m["cicd_warm"], suffix="s"),
                _fmt(m["gcl"], suffix="s"),
                _fmt(r["warm_over_floor"], suffix="x"),
                _fmt(r["cold_over_gcl"], suffix="x"),
                _fmt(r["warm_overhead_ms_per_job"], ".0f", " ms"),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = []
    for n, row in enumerate(rows):
        lines.append(
            " | ".join(
                cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
                for i, cell in enumerate(row)
            )
        )
        if n == 0:
            lines.append("-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def targets(results: list[dict]) -> list[str]:
    """The issue's targets, checked against these figures (informative, never an assert)."""
    by = {r["pipeline"]: r for r in results}
    out = []

    def verdict(ok: bool | None) -> str:
        return "n/a " if ok is None else ("MET " if ok else "MISS")

    if "uneven" in by:
        r = by["uneven"]
        ratio = r["warm_over_floor"]
        out.append(
            f"{verdict(None if ratio is None else ratio <= 1.25)} uneven: warm <= 1.25x floor "
            f"(is {_fmt(ratio, suffix='x')})"
        )
        c = r["cold_over_gcl"]
        out.append(
            f"{verdict(None if c is None else c < 1)} uneven: cold faster than "
            f"gitlab-ci-local (cold/gcl {_fmt(c, suffix='x')})"
        )
    for name in ("wide", "long"):
        if name in by:
            ms = by[name]["warm_overhead_ms_per_job"]
            out.append(
                f"{verdict(None if ms is None else ms < 50)} {name}: warm overhead per job "
                f"< 50 ms (is {_fmt(ms, '.0f', ' ms')})"
            )
    return out


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so that the clean-ups in ``finally`` run


def main() -> int:
    signal.signal(signal.SIGTERM, _terminate)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--runs", type=int, default=3, help="runs per measurement (median; default 3)"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(pipelines.PIPELINES),
        help="only this pipeline (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument(
        "--floor",
        choices=["sdk", "cli"],
        default="sdk",
        help="how the floor starts containers: docker SDK (default, the lower "
        "floor) or `docker run --rm`",
    )
    parser.add_argument("--json-out", metavar="PATH", help="also write the JSON to PATH")
    parser.add_argument("--skip-cicd", action="store_true")
    parser.add_argument("--skip-gcl", action="store_true")
    parser.add_argument(
        "--projects",
        action="store_true",
        help="also run real projects' .gitlab-ci.yml files (bench/gitlab_projects.py)",
    )
    parser.add_argument(
        "--gcl-timeout",
        type=float,
        default=900,
        help="kill a gitlab-ci-local run after this many seconds (default 900)",
    )
    args = parser.parse_args()
    names = args.only or list(pipelines.PIPELINES)
    if not args.skip_gcl:
        tools.ensure_gcl()
    began = time.time()
    results = []
    try:
        for name in names:
            _log(f"{name}: {pipelines.get(name).description}")
            results.append(
                measure(
                    name,
                    args.runs,
                    args.floor,
                    not args.skip_cicd,
                    not args.skip_gcl,
                    args.gcl_timeout,
                )
            )
        projects = [
            gitlab_projects.measure(name, args.runs, not args.skip_cicd, not args.skip_gcl)
            for name in (gitlab_projects.PROJECTS if args.projects else ())
        ]
    finally:
        floor.cleanup()
        tools.cleanup_gcl()
    meta = {
        "command": " ".join(sys.argv),
        "runs": args.runs,
        "floor_mode": args.floor,
        "host": platform.node(),
        "cpus": __import__("os").cpu_count(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(began)),
        "seconds": round(time.time() - began, 1),
        "gcl_version": tools.GCL_VERSION,
    }
    document = {
        "meta": meta,
        "results": results,
        "projects": projects,
        "targets": targets(results),
    }
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(document, indent=2) + "\n")
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        print(
            f"median of {args.runs} runs, wall-clock seconds; floor = docker {args.floor}, "
            f"best schedule; {meta['cpus']} CPUs"
        )
        print(table(results))
        print()
        for line in targets(results):
            print(line)
        if projects:
            print()
            print(gitlab_projects.table(projects))
        for r in results:
            for failure in r["failures"]:
                print(f"\n{r['pipeline']}: {failure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
