"""A plan as a graph for other tools: Mermaid (``flowchart``) and Graphviz DOT text.

Nodes are the plan's jobs, grouped by stage; edges are exactly the ``needs`` edges, from the
job needed to the job that needs it. A job without ``needs`` gets no edge: it waits for the
stage order (a native job for its stage's start, a GitLab job for every job of the earlier
stages), which the stage groups show; no edge is invented for it. Jobs the run leaves out
(rules, ``--job``, manual) are drawn dashed.

Job and stage names are labels only: nodes are ``n0``, ``n1``... and stages ``s0``... (DOT:
``cluster_0``...), so no name, whatever quotes, brackets or ``#`` it holds, can end a label
early or add a node, an edge or a directive.
"""

from __future__ import annotations

from backend.pipeline.model import Pipeline
from backend.pipeline.plan import Plan

_MERMAID_ESCAPED = set('"#&<>`')


def _nodes(plan: Plan) -> tuple[list[tuple[str, list[str]]], dict[str, str]]:
    """Stages with their job names (plan layout order) and each job's node id."""
    layout = plan.layout or plan.stages
    stages = [(stage.name, [job.name for job in stage.jobs]) for stage in layout]
    ids: dict[str, str] = {}
    for _, jobs in stages:
        for job in jobs:
            ids.setdefault(job, f"n{len(ids)}")
    return stages, ids


def _edges(pipeline: Pipeline, ids: dict[str, str]) -> list[tuple[str, str]]:
    """(needed, needing) for every ``needs`` entry naming a job of the plan, in plan order."""
    return [(need, name) for name in ids for need in pipeline.job(name).needs if need in ids]


def mermaid_label(text: str) -> str:
    """``text`` for a double-quoted Mermaid label: quotes, ``#``, ``&``, ``<``, ``>`` and
    backticks as Mermaid's ``#NN;`` entity codes."""
    escaped = "".join(f"#{ord(ch)};" if ch in _MERMAID_ESCAPED else ch for ch in text)
    return " ".join(escaped.splitlines()) if "\n" in escaped or "\r" in escaped else escaped


def to_mermaid(pipeline: Pipeline, plan: Plan) -> str:
    """The plan as a Mermaid ``flowchart LR``: a subgraph per stage, an arrow per need."""
    stages, ids = _nodes(plan)
    running = {job.name for job in pipeline.jobs if job.run}
    lines = ["flowchart LR"]
    for index, (stage, jobs) in enumerate(stages):
        lines.append(f'  subgraph s{index}["{mermaid_label(stage)}"]')
        lines += [f'    {ids[job]}["{mermaid_label(job)}"]' for job in jobs]
        lines.append("  end")
    lines += [f"  {ids[need]} --> {ids[job]}" for need, job in _edges(pipeline, ids)]
    left_out = [ids[job] for job in ids if job not in running]
    if left_out:
        lines.append("  classDef notrun stroke-dasharray: 5 5")
        lines.append(f"  class {','.join(left_out)} notrun")
    return "\n".join(lines) + "\n"


def dot_string(text: str) -> str:
    """``text`` as a DOT double-quoted string: backslashes doubled (so no ``\\n``, ``\\N``...
    escape of DOT's labels applies), quotes escaped, line breaks as ``\\n``."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n") + '"'


def to_dot(pipeline: Pipeline, plan: Plan) -> str:
    """The plan as a Graphviz ``digraph``: a cluster per stage, an edge per need."""
    stages, ids = _nodes(plan)
    running = {job.name for job in pipeline.jobs if job.run}
    lines = [
        f"digraph {dot_string(pipeline.name)} {{",
        "  rankdir=LR;",
        "  node [shape=box];",
    ]
    for index, (stage, jobs) in enumerate(stages):
        lines.append(f"  subgraph cluster_{index} {{")
        lines.append(f"    label={dot_string(stage)};")
        for job in jobs:
            style = "" if job in running else ", style=dashed"
            lines.append(f"    {ids[job]} [label={dot_string(job)}{style}];")
        lines.append("  }")
    lines += [f"  {ids[need]} -> {ids[job]};" for need, job in _edges(pipeline, ids)]
    lines.append("}")
    return "\n".join(lines) + "\n"
