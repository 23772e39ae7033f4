"""The benchmark pipelines, and the same pipeline written for each tool.

One neutral description (``Pipeline`` of ``Job``) is turned into:

- ``cicd_yaml``: ``.pipelines/pipeline.yaml`` for ``cicd run``;
- ``gitlab_yaml``: ``.gitlab-ci.yml`` for gitlab-ci-local;
- the job list the floor scheduler (``bench/floor.py``) runs by hand.

Semantics are cicd's: stages strictly in order, ``needs`` only inside a stage. The
``.gitlab-ci.yml`` keeps the same ``needs``: GitLab lets a job with ``needs`` ignore earlier stages,
but every chain of needs inside a stage starts at a job without ``needs``, which waits for all
earlier stages, so the stage order holds without extra needs. (Adding the previous stage's jobs
to ``needs`` made gitlab-ci-local 4.70.1 spin at 100% CPU for good after the first stage of the
4 x 50 pipeline.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

IMAGE = "cicd-busybox:latest"


@dataclass(frozen=True)
class Job:
    name: str
    stage: str
    script: tuple[str, ...]
    needs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Pipeline:
    name: str
    description: str
    stages: tuple[str, ...]
    jobs: tuple[Job, ...] = field(default_factory=tuple)
    image: str = IMAGE

    def stage_jobs(self, stage: str) -> list[Job]:
        return [job for job in self.jobs if job.stage == stage]


def uneven() -> Pipeline:
    """A slow job beside a chain of 4 short ones in one stage, then a stage of 2 jobs."""
    jobs = [
        Job("slow", "build", ("sleep 3",)),
        Job("c1", "build", ("echo c1",)),
        Job("c2", "build", ("sleep 0.2",), ("c1",)),
        Job("c3", "build", ("echo c3",), ("c2",)),
        Job("c4", "build", ("sleep 0.2",), ("c3",)),
        Job("t1", "test", ("echo t1",)),
        Job("t2", "test", ("echo t2",)),
    ]
    return Pipeline(
        "uneven",
        "slow 3 s job beside a chain of 4 short jobs; then a stage of 2",
        ("build", "test"),
        tuple(jobs),
    )


def wide(width: int = 20) -> Pipeline:
    """One stage of ``width`` independent trivial jobs."""
    jobs = [Job(f"w{i:02d}", "build", (f"echo w{i:02d}",)) for i in range(width)]
    return Pipeline("wide", f"one stage of {width} trivial jobs", ("build",), tuple(jobs))


def chain(length: int = 20) -> Pipeline:
    """One stage of ``length`` trivial jobs, each needing the previous one."""
    jobs = [
        Job(f"l{i:02d}", "build", (f"echo l{i:02d}",), (f"l{i - 1:02d}",) if i else ())
        for i in range(length)
    ]
    return Pipeline("long", f"a chain of {length} trivial jobs", ("build",), tuple(jobs))


def big(stages: int = 4, per_stage: int = 50) -> Pipeline:
    """``stages`` x ``per_stage`` trivial jobs; in each stage the second half needs the first."""
    names = [f"s{s}" for s in range(stages)]
    half = per_stage // 2
    jobs = []
    for s, stage in enumerate(names):
        for i in range(per_stage):
            needs = (f"s{s}j{i - half:02d}",) if i >= half and i % 5 == 0 else ()
            jobs.append(Job(f"s{s}j{i:02d}", stage, (f"echo s{s}j{i:02d}",), needs))
    return Pipeline(
        "big", f"{stages} stages x {per_stage} trivial jobs, some needs", tuple(names), tuple(jobs)
    )


PIPELINES = {"uneven": uneven, "wide": wide, "long": chain, "big": big}


def get(name: str) -> Pipeline:
    return PIPELINES[name]()


def _q(text: str) -> str:
    """A YAML scalar: JSON strings are valid YAML double-quoted scalars."""
    return json.dumps(text)


def cicd_yaml(p: Pipeline) -> str:
    """The pipeline as a cicd ``.pipelines/*.yaml`` file."""
    out = [
        "pipeline:",
        f"  name: {_q('bench-' + p.name)}",
        f"  image: {_q(p.image)}",
        f"  stages: [{', '.join(_q(s) for s in p.stages)}]",
        "jobs:",
    ]
    for job in p.jobs:
        out.append(f"  - name: {_q(job.name)}")
        out.append(f"    stage: {_q(job.stage)}")
        out.append("    script:")
        out.extend(f"      - {_q(line)}" for line in job.script)
        if job.needs:
            out.append(f"    needs: [{', '.join(_q(n) for n in job.needs)}]")
    return "\n".join(out) + "\n"


def gitlab_needs(p: Pipeline, job: Job) -> list[str] | None:
    """``needs`` for GitLab: the job's own (see the module's docstring); None for none."""
    return list(job.needs) if job.needs else None


def gitlab_yaml(p: Pipeline) -> str:
    """The pipeline as a ``.gitlab-ci.yml`` (gitlab-ci-local defaults)."""
    out = [
        f"image: {_q(p.image)}",
        f"stages: [{', '.join(_q(s) for s in p.stages)}]",
        "",
    ]
    for job in p.jobs:
        out.append(f"{_q(job.name)}:")
        out.append(f"  stage: {_q(job.stage)}")
        out.append("  script:")
        out.extend(f"    - {_q(line)}" for line in job.script)
        needs = gitlab_needs(p, job)
        if needs is not None:
            out.append(f"  needs: [{', '.join(_q(n) for n in needs)}]")
    return "\n".join(out) + "\n"


def ideal_seconds(p: Pipeline, per_container: float, sleeps: bool = True) -> float:
    """Critical path if every container cost ``per_container`` plus its sleeps (a sanity check)."""
    finish: dict[str, float] = {}
    start = 0.0
    for stage in p.stages:
        end = start
        for job in p.stage_jobs(stage):  # jobs are listed after what they need
            ready = max([start, *(finish[n] for n in job.needs)])
            work = (
                sum(float(s.split()[1]) for s in job.script if s.startswith("sleep "))
                if sleeps
                else 0
            )
            finish[job.name] = ready + per_container + work
            end = max(end, finish[job.name])
        start = end
    return start


if __name__ == "__main__":
    import sys

    name = sys.argv[1] if len(sys.argv) > 1 else "uneven"
    tool = sys.argv[2] if len(sys.argv) > 2 else "cicd"
    print((cicd_yaml if tool == "cicd" else gitlab_yaml)(get(name)), end="")
