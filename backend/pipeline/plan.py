"""Planning: the cycle check and, per stage, the order in which jobs can start.

Inside a stage the ``needs`` form a DAG. The start order is a stable topological sort (Kahn's
algorithm always taking the earliest-in-file job that is ready), so ties keep file order. The
parallel groups are the DAG's levels: group 1 needs nothing, group N needs something of group N-1.

A GitLab file (or any pipeline with a job marked ``dag``) is planned as one DAG across stages, as
GitLab does: a job with ``needs:`` waits for those jobs only, whatever their stage; a job without
waits for every job that runs in all earlier stages. Its groups then count across the whole run,
so a ``needs: []`` job of the last stage is in group 1. Jobs with ``run=False`` are planned
(shown) but never started, and nothing waits for them.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from backend.errors import PipelineInvalid, Problem
from backend.pipeline.model import Job, Pipeline


@dataclass(frozen=True)
class StagePlan:
    """One stage: its jobs in start order and the groups of jobs that can start together."""

    name: str
    jobs: list[Job]
    groups: list[list[str]]


@dataclass(frozen=True)
class Plan:
    """The execution plan of a pipeline.

    ``stages`` is what the executor runs: the stages holding a job that runs, in run order, each
    with the jobs that run in start order and their ``needs`` narrowed to jobs that run in the
    same stage (stages run in order, so earlier stages are done when a stage starts).
    ``layout`` is what ``dry-run`` shows: every stage with every job as the file has it, the
    jobs that run in start order, then those that do not, in file order. ``after`` holds, for
    each job that runs, the jobs it waits for across the whole run, and ``group`` its parallel
    group (1-based; across the whole run when ``dag``, per stage otherwise). For a native file
    whose jobs all run, ``layout`` is ``stages`` and ``after`` is ``needs``.
    """

    stages: list[StagePlan]
    layout: list[StagePlan] = field(default_factory=list)
    after: dict[str, list[str]] = field(default_factory=dict)
    group: dict[str, int] = field(default_factory=dict)
    dag: bool = False


def find_cycles(names: Sequence[str], needs: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Every dependency cycle among ``names``, one per strongly connected group of jobs.

    Each cycle is a closed path ``[a, b, ..., a]`` meaning *a needs b needs ... needs a*. It starts
    at the earliest-in-file job of its group and is the shortest way back to it, so messages are
    stable. Needs naming jobs outside ``names`` and self-needs are ignored (reported elsewhere).
    """
    index = {name: i for i, name in enumerate(names)}
    edges = {name: [n for n in needs.get(name, ()) if n in index and n != name] for name in names}
    cycles = []
    for component in strongly_connected(names, edges):
        if len(component) < 2:
            continue
        members = set(component)
        start = min(component, key=index.__getitem__)
        cycles.append(_shortest_cycle(start, edges, members))
    cycles.sort(key=lambda cycle: index[cycle[0]])
    return cycles


def strongly_connected(names: Sequence[str], edges: Mapping[str, list[str]]) -> list[list[str]]:
    """The strongly connected groups of a graph (``edges[name]`` must hold every name).

    Tarjan's algorithm, iterative so a long chain of needs cannot overflow the stack.
    """
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    for root in names:
        if root in order:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                order[node] = low[node] = len(order)
                stack.append(node)
                on_stack.add(node)
            targets = edges[node]
            if i < len(targets):
                work.append((node, i + 1))
                target = targets[i]
                if target not in order:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node] = min(low[node], order[target])
                continue
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == order[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
    return components


def _shortest_cycle(start: str, edges: Mapping[str, list[str]], members: set[str]) -> list[str]:
    """Breadth-first from ``start`` inside its component, back to ``start``."""
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for target in edges[node]:
            if target not in members:
                continue
            if target == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if target not in came_from:
                came_from[target] = node
                queue.append(target)
    raise AssertionError("a strongly connected component always has a cycle")  # pragma: no cover


def start_order(names: Sequence[str], needs: Mapping[str, Sequence[str]]) -> list[str]:
    """Names in an order in which they can start: each after all it needs, ties in file order.

    Needs naming jobs outside ``names`` are ignored. Raises ``ValueError`` on a cycle.
    """
    index = {name: i for i, name in enumerate(names)}
    waiting = {name: 0 for name in names}
    needed_by: dict[str, list[str]] = {name: [] for name in names}
    for name in names:
        for need in dict.fromkeys(needs.get(name, ())):
            if need in index:
                waiting[name] += 1
                needed_by[need].append(name)
    ready = [index[name] for name in names if waiting[name] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        name = names[heapq.heappop(ready)]
        order.append(name)
        for follower in needed_by[name]:
            waiting[follower] -= 1
            if waiting[follower] == 0:
                heapq.heappush(ready, index[follower])
    if len(order) != len(names):
        raise ValueError("cyclic dependency")
    return order


def parallel_groups(order: Sequence[str], needs: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Group jobs (given in start order) by level: a job's level is one more than its needs'."""
    level: dict[str, int] = {}
    groups: list[list[str]] = []
    for name in order:
        mine = 1 + max((level[n] for n in needs.get(name, ()) if n in level), default=-1)
        level[name] = mine
        if mine == len(groups):
            groups.append([])
        groups[mine].append(name)
    return groups


def plan_pipeline(pipeline: Pipeline) -> Plan:
    """The execution plan of a validated pipeline (see ``Plan``).

    Raises ``PipelineInvalid`` if the pipeline was built by hand with a need it cannot have (one
    outside its stage in a native file, an unknown or later-stage job in a GitLab one) or a
    cycle (the front ends never return such a pipeline).
    """
    dag = pipeline.format == "gitlab" or any(job.dag for job in pipeline.jobs)
    _check_needs(pipeline, dag)
    stage_of = {job.name: job.stage for job in pipeline.jobs}
    running = {job.name for job in pipeline.jobs if job.run}
    after: dict[str, list[str]] = {}
    done_before: list[str] = []  # jobs that run in the stages already planned
    for stage in pipeline.stages:
        for job in stage.jobs:
            if not job.run:
                continue
            if dag and not job.dag:
                after[job.name] = list(done_before)
            else:
                after[job.name] = [n for n in dict.fromkeys(job.needs) if n in running]
        done_before += [job.name for job in stage.jobs if job.run]
    group = _groups(pipeline, after, dag)
    stages: list[StagePlan] = []
    layout: list[StagePlan] = []
    for stage in pipeline.stages:
        names = [job.name for job in stage.jobs if job.run]
        if dag:
            index = {name: i for i, name in enumerate(names)}
            order = sorted(names, key=lambda name: (group[name], index[name]))
        else:
            order = start_order(names, after)
        groups: dict[int, list[str]] = {}
        for name in order:
            groups.setdefault(group[name], []).append(name)
        by_name = {job.name: job for job in stage.jobs}
        waits = {name: [n for n in after[name] if stage_of[n] == stage.name] for name in order}
        runs = [_narrowed(by_name[name], waits[name]) for name in order]
        grouped = [groups[level] for level in sorted(groups)]
        if runs:
            stages.append(StagePlan(name=stage.name, jobs=runs, groups=grouped))
        shown = [by_name[name] for name in order] + [job for job in stage.jobs if not job.run]
        layout.append(StagePlan(name=stage.name, jobs=shown, groups=grouped))
    return Plan(stages=stages, layout=layout, after=after, group=group, dag=dag)


def _narrowed(job: Job, needs: list[str]) -> Job:
    """``job`` with ``needs`` set to what the executor waits for (the job itself if unchanged)."""
    return job if job.needs == needs else job.model_copy(update={"needs": needs})


def _groups(pipeline: Pipeline, after: Mapping[str, list[str]], dag: bool) -> dict[str, int]:
    """Each running job's parallel group: 1 + the highest group of what it waits for."""
    group: dict[str, int] = {}
    scopes = [pipeline.jobs] if dag else [stage.jobs for stage in pipeline.stages]
    for jobs in scopes:
        names = [job.name for job in jobs if job.run]
        for name in start_order(names, after):
            group[name] = 1 + max((group[n] for n in after[name] if n in group), default=0)
    return group


def _check_needs(pipeline: Pipeline, dag: bool) -> None:
    """Refuse needs a front end would have refused, and cycles (one problem each)."""
    stage_index = {stage.name: i for i, stage in enumerate(pipeline.stages)}
    stage_of = {job.name: job.stage for job in pipeline.jobs}
    problems = []
    for stage in pipeline.stages:
        names = [job.name for job in stage.jobs]
        needs = {job.name: job.needs for job in stage.jobs}
        for job in stage.jobs:
            for need in job.needs:
                if not dag and need not in needs:
                    problems.append(
                        f"job '{job.name}' needs '{need}', which is not a job of stage "
                        f"'{stage.name}'"
                    )
                elif dag and need not in stage_of:
                    problems.append(f"job '{job.name}' needs '{need}', which is not defined")
                elif dag and stage_index[stage_of[need]] > stage_index[stage.name]:
                    problems.append(
                        f"job '{job.name}' needs '{need}' of stage '{stage_of[need]}', which "
                        f"runs after stage '{stage.name}'"
                    )
        problems += [
            f"cyclic dependency in stage '{stage.name}': {' -> '.join(cycle)}"
            for cycle in find_cycles(names, needs)
        ]
    if problems:
        source = pipeline.source or "<pipeline>"
        raise PipelineInvalid([Problem(source, 1, 1, message) for message in problems])


def to_dry_run_dict(pipeline: Pipeline, plan: Plan) -> dict[str, Any]:
    """The stable ``cicd dry-run --format json`` document (SPEC §3.1), keys in that order.

    A native file whose jobs all run gives exactly SPEC §3.1's keys. A GitLab file, or a
    selection that leaves jobs out, adds keys after them: per job ``before_script``, ``when``,
    ``run``, ``skip_reason``, ``group``, ``after`` (what it waits for, across stages) and
    ``need_stages`` (the stage of each need); ``format`` and ``ignored`` for the pipeline.
    """
    stage_of = {job.name: job.stage for job in pipeline.jobs}
    extended = pipeline.format != "native" or any(not job.run for job in pipeline.jobs)

    def job_entry(job: Job) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "name": job.name,
            "image": job.image,
            "needs": list(job.needs),
            "allow_failure": job.allow_failure,
            "script": list(job.script),
        }
        if extended:
            entry |= {
                "before_script": list(job.before_script),
                "when": job.when,
                "run": job.run,
                "skip_reason": job.skip_reason,
                "group": plan.group.get(job.name),
                "after": list(plan.after.get(job.name, [])),
                "need_stages": {need: stage_of[need] for need in job.needs if need in stage_of},
            }
        return entry

    document: dict[str, Any] = {
        "pipeline": pipeline.name,
        "stages": [
            {"name": stage.name, "jobs": [job_entry(job) for job in stage.jobs]}
            for stage in plan.layout
        ],
    }
    if extended:
        document |= {"format": pipeline.format, "ignored": list(pipeline.ignored)}
    return document
