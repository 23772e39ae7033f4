"""How long load + validate + plan take on a 1000-job pipeline (goal: under 0.5 s).

    .venv/bin/python bench/plan_large.py [--jobs 1000] [--stages 5] [--runs 5] [--profile]

Writes a generated pipeline (several stages, a random ``needs`` DAG inside each, realistic
block-style jobs of about ten lines) to a temporary file, then prints the median wall time of
``load_pipeline`` + ``plan_pipeline`` over ``--runs`` runs.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import statistics
import tempfile
import time
from pathlib import Path

from backend.pipeline import load_pipeline, plan_pipeline


def generate(jobs: int, stages: int, seed: int = 7) -> str:
    """A valid pipeline of ``jobs`` jobs spread over ``stages`` stages, with random needs."""
    rng = random.Random(seed)
    names = [f"s{i}" for i in range(stages)]
    lines = [
        "pipeline:",
        "  name: large",
        f"  stages: [{', '.join(names)}]",
        "  image: cicd-busybox:latest",
        "  variables: {LANG: C.UTF-8, RETRIES: 3}",
        "jobs:",
    ]
    per_stage: dict[str, list[str]] = {name: [] for name in names}
    for i in range(jobs):
        stage = names[i * stages // jobs]
        earlier = per_stage[stage]
        needs = rng.sample(earlier, k=min(len(earlier), rng.randint(0, 3)))
        per_stage[stage].append(f"job-{i}")
        lines += [
            f"  - name: job-{i}",
            f"    stage: {stage}",
            "    script:",
            f"      - echo building part {i}",
            f"      - test -n \"$LANG\" && echo ok > out-{i}.txt",
        ]
        if needs:
            lines.append(f"    needs: [{', '.join(needs)}]")
        if i % 3 == 0:
            lines.append(f"    artifacts: [out-{i}.txt]")
        if i % 4 == 0:
            lines += ["    variables:", f"      PART: {i}", "      MODE: fast"]
        if i % 5 == 0:
            lines += ["    timeout: 10m", "    retry: 1", "    allow_failure: false"]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Generate, time, print the median (and optionally a profile)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--stages", type=int, default=5)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="print the top functions")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "large.yaml"
        path.write_text(generate(args.jobs, args.stages))
        lines = path.read_text().count("\n")

        def once() -> int:
            return len(plan_pipeline(load_pipeline(path)).stages)

        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            once()
            times.append(time.perf_counter() - start)
        if args.profile:
            profile = cProfile.Profile()
            profile.runcall(once)
            pstats.Stats(profile).sort_stats("cumulative").print_stats(15)
    median = statistics.median(times)
    verdict = "ok" if median < 0.5 else "over the 0.5 s goal"
    print(
        f"load+validate+plan of {args.jobs} jobs in {args.stages} stages ({lines} lines): "
        f"median {median:.3f} s over {args.runs} runs ({verdict})"
    )


if __name__ == "__main__":
    main()
