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


def _gl(
    name: str, stage: str, needs: list[str] | None = None, *, run: bool = True, reason: str = ""
) -> Job:
    """A GitLab job: ``needs=None`` means no ``needs:`` key (it waits for earlier stages)."""
    return Job(
        name=name,
        stage=stage,
        image="img",
        script=[f"echo {name}"],
        needs=needs or [],
        dag=needs is not None,
        run=run,
        skip_reason=reason or None,
    )


def _gitlab(*stages: tuple[str, list[Job]]) -> Pipeline:
    return Pipeline(
        name="demo",
        source=".gitlab-ci.yml",
        format="gitlab",
        stages=[Stage(name=name, jobs=jobs) for name, jobs in stages],
    )


def test_plan_pipeline_gitlab_is_one_dag_across_stages():
    pipeline = _gitlab(
        ("build", [_gl("compile", "build")]),
        ("test", [_gl("unit", "test", ["compile"]), _gl("lint", "test", []), _gl("e2e", "test")]),
        ("deploy", [_gl("ship", "deploy"), _gl("notes", "deploy", [])]),
    )
    plan = plan_pipeline(pipeline)
    assert plan.dag is True
    assert plan.after == {
        "compile": [],
        "unit": ["compile"],
        "lint": [],
        "e2e": ["compile"],
        "ship": ["compile", "unit", "lint", "e2e"],
        "notes": [],
    }
    assert plan.group == {"compile": 1, "unit": 2, "lint": 1, "e2e": 2, "ship": 3, "notes": 1}
    assert [(s.name, [j.name for j in s.jobs], s.groups) for s in plan.layout] == [
        ("build", ["compile"], [["compile"]]),
        ("test", ["lint", "unit", "e2e"], [["lint"], ["unit", "e2e"]]),
        ("deploy", ["notes", "ship"], [["notes"], ["ship"]]),
    ]


def test_plan_pipeline_gitlab_executor_waits_only_inside_a_stage():
    pipeline = _gitlab(
        ("build", [_gl("compile", "build")]),
        ("test", [_gl("unit", "test", ["compile", "lint"]), _gl("lint", "test", [])]),
    )
    plan = plan_pipeline(pipeline)
    # the stage barrier covers 'compile'; 'lint' is waited for inside the stage
    assert [(s.name, [(j.name, j.needs) for j in s.jobs]) for s in plan.stages] == [
        ("build", [("compile", [])]),
        ("test", [("lint", []), ("unit", ["lint"])]),
    ]
    assert plan.layout[1].jobs[1].needs == ["compile", "lint"]  # dry-run shows what the file says


def test_plan_pipeline_not_run_jobs_are_shown_but_never_started():
    pipeline = _gitlab(
        ("build", [_gl("compile", "build"), _gl("docs", "build", run=False, reason="rules")]),
        ("test", [_gl("unit", "test", ["docs"])]),
        ("deploy", [_gl("ship", "deploy", run=False, reason="manual")]),
    )
    plan = plan_pipeline(pipeline)
    assert [s.name for s in plan.stages] == ["build", "test"]  # deploy has nothing to run
    assert [[j.name for j in s.jobs] for s in plan.stages] == [["compile"], ["unit"]]
    assert plan.after == {"compile": [], "unit": []}  # a need that does not run is no wait
    assert [[j.name for j in s.jobs] for s in plan.layout] == [
        ["compile", "docs"],
        ["unit"],
        ["ship"],
    ]
    assert [s.groups for s in plan.layout] == [[["compile"]], [["unit"]], []]


def test_plan_pipeline_gitlab_refuses_a_need_on_a_later_stage():
    pipeline = _gitlab(
        ("build", [_gl("compile", "build", ["unit"])]),
        ("test", [_gl("unit", "test", ["nope"])]),
    )
    with pytest.raises(PipelineInvalid) as info:
        plan_pipeline(pipeline)
    assert [str(p) for p in info.value.problems] == [
        ".gitlab-ci.yml:1:1: job 'compile' needs 'unit' of stage 'test', which runs after "
        "stage 'build'",
        ".gitlab-ci.yml:1:1: job 'unit' needs 'nope', which is not defined",
    ]


def test_plan_pipeline_native_with_unselected_need_runs_without_waiting():
    pipeline = Pipeline(
        name="demo",
        stages=[
            Stage(
                name="test",
                jobs=[
                    _job("lint").model_copy(update={"run": False, "skip_reason": "not selected"}),
                    _job("unit", needs=["lint"]),
                ],
            )
        ],
    )
    plan = plan_pipeline(pipeline)
    assert plan.dag is False
    assert [(j.name, j.needs) for j in plan.stages[0].jobs] == [("unit", [])]
    assert [j.name for j in plan.layout[0].jobs] == ["unit", "lint"]


def test_to_dry_run_dict_gitlab_adds_keys_after_the_spec_ones():
    pipeline = _gitlab(
        ("build", [_gl("compile", "build")]),
        ("test", [_gl("unit", "test", ["compile"]), _gl("docs", "test", run=False, reason="r")]),
    )
    document = to_dry_run_dict(pipeline, plan_pipeline(pipeline))
    unit, docs = document["stages"][1]["jobs"]
    assert list(unit) == [
        "name", "image", "needs", "allow_failure", "script",
        "before_script", "when", "run", "skip_reason", "group", "after", "need_stages",
    ]  # fmt: skip
    assert (unit["needs"], unit["group"], unit["after"], unit["need_stages"]) == (
        ["compile"], 2, ["compile"], {"compile": "build"},
    )  # fmt: skip
    shown = (docs["run"], docs["skip_reason"], docs["group"], docs["after"])
    assert shown == (False, "r", None, [])
    assert (document["format"], document["ignored"]) == ("gitlab", [])


@st.composite
def gitlab_pipelines(draw: st.DrawFn) -> Pipeline:
    """Stages of jobs; each job without needs or with needs on jobs of its or earlier stages."""
    stages: list[tuple[str, list[Job]]] = []
    earlier: list[str] = []
    for s in range(draw(st.integers(min_value=1, max_value=4))):
        jobs: list[Job] = []
        for j in range(draw(st.integers(min_value=1, max_value=4))):
            name = f"s{s}j{j}"
            pool = earlier + [job.name for job in jobs]  # same-stage needs point backwards
            needs = draw(st.none() | st.lists(st.sampled_from(pool), unique=True) if pool else
                         st.none() | st.just([]))  # fmt: skip
            jobs.append(_gl(name, f"stage{s}", needs, run=draw(st.booleans()), reason="x"))
        stages.append((f"stage{s}", jobs))
        earlier += [job.name for job in jobs]
    return _gitlab(*stages)


@FAST
@given(gitlab_pipelines())
def test_plan_pipeline_gitlab_waits_are_consistent(pipeline):
    plan = plan_pipeline(pipeline)
    running = [job for job in pipeline.jobs if job.run]
    assert [job.name for s in plan.stages for job in s.jobs] == sorted(
        (job.name for job in running), key=lambda n: (n[:3], plan.group[n], n)
    )
    for stage in plan.stages:
        seen: set[str] = set()
        for job in stage.jobs:  # the executor waits only inside the stage, for earlier jobs
            assert set(job.needs) <= seen
            seen.add(job.name)
    for job in running:
        assert all(plan.group[job.name] > plan.group[n] for n in plan.after[job.name])
        if not job.dag:
            assert plan.after[job.name] == [j.name for j in running if j.stage < job.stage]
