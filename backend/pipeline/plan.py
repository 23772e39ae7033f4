"""Planning: the cycle check and, per stage, the order in which jobs can start.

Inside a stage the ``needs`` form a DAG. The start order is a stable topological sort (Kahn's
algorithm always taking the earliest-in-file job that is ready), so ties keep file order. The
parallel groups are the DAG's levels: group 1 needs nothing, group N needs something of group N-1.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
    """The execution plan of a pipeline: stages in run order."""

    stages: list[StagePlan]


def find_cycles(names: Sequence[str], needs: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Every dependency cycle among ``names``, one per strongly connected group of jobs.

    Each cycle is a closed path ``[a, b, ..., a]`` meaning *a needs b needs ... needs a*. It starts
    at the earliest-in-file job of its group and is the shortest way back to it, so messages are
    stable. Needs naming jobs outside ``names`` and self-needs are ignored (reported elsewhere).
    """
    index = {name: i for i, name in enumerate(names)}
    edges = {name: [n for n in needs.get(name, ()) if n in index and n != name] for name in names}
    cycles = []
    for component in _strongly_connected(names, edges):
        if len(component) < 2:
            continue
        members = set(component)
        start = min(component, key=index.__getitem__)
        cycles.append(_shortest_cycle(start, edges, members))
    cycles.sort(key=lambda cycle: index[cycle[0]])
    return cycles


def _strongly_connected(names: Sequence[str], edges: Mapping[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative so a long chain of needs cannot overflow the stack."""
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
    """The execution plan of a validated pipeline.

    Raises ``PipelineInvalid`` if the pipeline was built by hand with a need outside its stage or a
    cycle (``load_pipeline`` never returns such a pipeline).
    """
    stages = []
    for stage in pipeline.stages:
        names = [job.name for job in stage.jobs]
        needs = {job.name: job.needs for job in stage.jobs}
        problems = [
            f"job '{job.name}' needs '{need}', which is not a job of stage '{stage.name}'"
            for job in stage.jobs
            for need in job.needs
            if need not in needs
        ]
        problems += [
            f"cyclic dependency in stage '{stage.name}': {' -> '.join(cycle)}"
            for cycle in find_cycles(names, needs)
        ]
        if problems:
            source = pipeline.source or "<pipeline>"
            raise PipelineInvalid([Problem(source, 1, 1, message) for message in problems])
        order = start_order(names, needs)
        by_name = {job.name: job for job in stage.jobs}
        stages.append(
            StagePlan(
                name=stage.name,
                jobs=[by_name[name] for name in order],
                groups=parallel_groups(order, needs),
            )
        )
    return Plan(stages=stages)


def to_dry_run_dict(pipeline: Pipeline, plan: Plan) -> dict[str, Any]:
    """The stable ``cicd dry-run --format json`` document (SPEC §3.1), keys in that order."""
    return {
        "pipeline": pipeline.name,
        "stages": [
            {
                "name": stage.name,
                "jobs": [
                    {
                        "name": job.name,
                        "image": job.image,
                        "needs": list(job.needs),
                        "allow_failure": job.allow_failure,
                        "script": list(job.script),
                    }
                    for job in stage.jobs
                ],
            }
            for stage in plan.stages
        ],
    }
