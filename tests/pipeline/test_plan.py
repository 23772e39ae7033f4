"""Planning: start order, parallel groups, cycle detection and the dry-run document."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.errors import PipelineInvalid
from backend.pipeline import Job, Pipeline, Stage, plan_pipeline, to_dry_run_dict
from backend.pipeline.plan import find_cycles, parallel_groups, start_order

FAST = settings(max_examples=40)


@st.composite
def dags(draw: st.DrawFn) -> tuple[list[str], dict[str, list[str]]]:
    """Job names in file order and acyclic needs (edges follow a hidden topological order)."""
    size = draw(st.integers(min_value=0, max_value=15))
    topo = [f"j{i}" for i in range(size)]
    needs = {
        name: draw(st.lists(st.sampled_from(topo[:i]), unique=True)) if i else []
        for i, name in enumerate(topo)
    }
    names = draw(st.permutations(topo))
    return list(names), needs


@FAST
@given(dags())
def test_start_order_every_job_after_its_needs(dag):
    names, needs = dag
    order = start_order(names, needs)
    assert sorted(order) == sorted(names)
    position = {name: i for i, name in enumerate(order)}
    assert all(position[need] < position[name] for name in names for need in needs[name])


@FAST
@given(dags())
def test_start_order_ties_keep_file_order(dag):
    names, needs = dag
    order = start_order(names, needs)
    done: set[str] = set()
    for name in order:
        ready = [n for n in names if n not in done and set(needs[n]) <= done]
        assert name == ready[0]  # the earliest-in-file job that can start
        done.add(name)


@FAST
@given(dags())
def test_parallel_groups_are_levels(dag):
    names, needs = dag
    groups = parallel_groups(start_order(names, needs), needs)
    level = {name: i for i, group in enumerate(groups) for name in group}
    assert sorted(level) == sorted(names)
    for name in names:
        assert level[name] == 1 + max((level[n] for n in needs[name]), default=-1)


@FAST
@given(dags(), st.data())
def test_find_cycles_always_detects_a_back_edge(dag, data):
    names, needs = dag
    assert find_cycles(names, needs) == []
    chains = [(n, d) for n in names for d in needs[n]]
    if not chains:
        return
    job, need = data.draw(st.sampled_from(chains))
    needs = {**needs, need: [*needs[need], job]}  # need -> job -> need
    cycles = find_cycles(names, needs)
    assert cycles
    for cycle in cycles:
        assert cycle[0] == cycle[-1]
        assert all(b in needs[a] for a, b in itertools.pairwise(cycle))
    with pytest.raises(ValueError):
        start_order(names, needs)


def test_find_cycles_starts_at_earliest_job_and_takes_shortest_path():
    names = ["a", "b", "c", "d"]
    needs = {"a": [], "b": ["c"], "c": ["d", "b"], "d": ["b"]}
    assert find_cycles(names, needs) == [["b", "c", "b"]]


def test_find_cycles_long_chain_does_not_recurse():
    names = [f"j{i}" for i in range(5000)]
    needs = {name: [names[i - 1]] for i, name in enumerate(names)}  # j0 needs j4999: one ring
    (cycle,) = find_cycles(names, needs)
    assert cycle[:3] == ["j0", "j4999", "j4998"] and len(cycle) == 5001


def _job(name: str, stage: str = "test", needs: list[str] | None = None) -> Job:
    return Job(name=name, stage=stage, image="img", script=[f"echo {name}"], needs=needs or [])


def test_plan_pipeline_orders_each_stage():
    pipeline = Pipeline(
        name="demo",
        stages=[
            Stage(name="build", jobs=[_job("compile", "build")]),
            Stage(
                name="test",
                jobs=[_job("report", needs=["unit"]), _job("slow"), _job("unit")],
            ),
        ],
    )
    plan = plan_pipeline(pipeline)
    assert [(s.name, [j.name for j in s.jobs], s.groups) for s in plan.stages] == [
        ("build", ["compile"], [["compile"]]),
        ("test", ["slow", "unit", "report"], [["slow", "unit"], ["report"]]),
    ]


def test_plan_pipeline_refuses_a_hand_built_cycle():
    pipeline = Pipeline(
        name="demo",
        source="x.yaml",
        stages=[Stage(name="test", jobs=[_job("a", needs=["b"]), _job("b", needs=["a"])])],
    )
    with pytest.raises(PipelineInvalid) as info:
        plan_pipeline(pipeline)
    assert [str(p) for p in info.value.problems] == [
        "x.yaml:1:1: cyclic dependency in stage 'test': a -> b -> a"
    ]


def test_to_dry_run_dict_has_the_spec_shape(parse):
    pipeline = parse(
        """
        pipeline: {name: demo, image: base:1}
        jobs:
          - {name: unit, stage: test, script: pytest, needs: [lint], allow_failure: true}
          - {name: lint, stage: test, script: [ruff, mypy], image: py:3}
          - {name: compile, stage: build, script: make}
        """
    )
    document = to_dry_run_dict(pipeline, plan_pipeline(pipeline))
    assert json.dumps(document) == json.dumps(
        {
            "pipeline": "demo",
            "stages": [
                {
                    "name": "build",
                    "jobs": [
                        {
                            "name": "compile",
                            "image": "base:1",
                            "needs": [],
                            "allow_failure": False,
                            "script": ["make"],
                        }
                    ],
                },
                {
                    "name": "test",
                    "jobs": [
                        {
                            "name": "lint",
                            "image": "py:3",
                            "needs": [],
                            "allow_failure": False,
                            "script": ["ruff", "mypy"],
                        },
                        {
                            "name": "unit",
                            "image": "base:1",
                            "needs": ["lint"],
                            "allow_failure": True,
                            "script": ["pytest"],
                        },
                    ],
                },
            ],
        }
    )


@FAST
@given(dags())
def test_plan_pipeline_matches_start_order(dag):
    names, needs = dag
    if not names:
        return
    stage = Stage(name="test", jobs=[_job(name, needs=needs[name]) for name in names])
    plan = plan_pipeline(Pipeline(name="demo", stages=[stage]))
    assert [job.name for job in plan.stages[0].jobs] == start_order(names, needs)
