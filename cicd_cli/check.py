"""``cicd check`` and ``cicd dry-run``: validate pipeline files and show their execution plan."""

from __future__ import annotations

import io
import json
from enum import StrEnum
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.text import Text
from rich.tree import Tree
from ruamel.yaml import YAML
from ruamel.yaml.scalarstring import LiteralScalarString

from backend.errors import PipelineInvalid, Problem
from backend.pipeline import Pipeline, Plan, load_all, load_pipeline, plan_pipeline, to_dry_run_dict
from cicd_cli.errors import EXIT_FAILED, EXIT_USAGE, abort

PIPELINES_DIR = Path(".pipelines")
DEFAULT_FILE = PIPELINES_DIR / "pipeline.yaml"


class PlanFormat(StrEnum):
    """How ``dry-run`` prints the plan."""

    TEXT = "text"
    YAML = "yaml"
    JSON = "json"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _summary(name: str, pipeline: Pipeline) -> str:
    return (
        f"{name}: ok — pipeline '{pipeline.name}', {_plural(len(pipeline.stages), 'stage')}, "
        f"{_plural(len(pipeline.jobs), 'job')}"
    )


def _fail(problems: list[Problem]) -> NoReturn:
    for problem in problems:
        typer.echo(str(problem), err=True)
    raise typer.Exit(EXIT_FAILED)


def check(
    file: Path | None = typer.Option(
        None,
        "-f",
        "--file",
        help="Pipeline file to check.",
        show_default=str(DEFAULT_FILE),
    ),
    all_files: bool = typer.Option(
        False,
        "--all",
        help="Check every *.yaml and *.yml file in .pipelines/, and that "
        "their pipeline names are unique.",
    ),
) -> None:
    """Validate a pipeline file (or, with --all, every file in .pipelines/).

    Prints every problem at once on stderr, one per line: FILE:LINE:COLUMN: MESSAGE.

    Prints one summary line per valid file on stdout.

    Exit status: 0 every file is valid, 1 a file is invalid, 2 usage error.
    """
    if all_files and file is not None:
        abort("-f/--file and --all cannot be used together", EXIT_USAGE)
    if not all_files:
        path = file or DEFAULT_FILE
        try:
            pipeline = load_pipeline(path)
        except PipelineInvalid as exc:
            _fail(exc.problems)
        typer.echo(_summary(str(path), pipeline))
        return
    valid, problems = load_all(PIPELINES_DIR)
    if not valid and not problems:
        abort(f"no pipeline files (*.yaml, *.yml) in {PIPELINES_DIR}/")
    for path, pipeline in valid:
        typer.echo(_summary(str(path), pipeline))
    if problems:
        _fail(problems)


def dry_run(
    file: Path = typer.Option(DEFAULT_FILE, "-f", "--file", help="Pipeline file to plan."),
    fmt: str = typer.Option(
        PlanFormat.TEXT.value,
        "--format",
        metavar="text|yaml|json",
        help="text for people; json or yaml for scripts.",
    ),
    override: list[str] = typer.Option(
        [],
        "--override",
        metavar="KEY=VALUE",
        help="Set a key of the file first, as `cicd run` would, e.g. jobs.compile.image=gcc:13.",
    ),
) -> None:
    """Print the execution plan of a pipeline file without running anything.

    Stages in run order; in each stage, jobs in an order in which they can start.

    Jobs that can start together form a numbered group; each shows its image, needs and script.

    --format json (or yaml) prints the stable shape scripts rely on:

    {pipeline, stages: [{name, jobs: [{name, image, needs, allow_failure, script}]}]}

    Exit status: 0 ok, 1 the file is invalid (its problems are printed), 2 usage error.
    """
    try:
        output = PlanFormat(fmt.lower())
    except ValueError:
        choices = ", ".join(f.value for f in PlanFormat)
        abort(f"--format {fmt}: expected one of {choices}", EXIT_USAGE)
    try:
        pipeline = load_pipeline(file, overrides=override)
        plan = plan_pipeline(pipeline)
    except PipelineInvalid as exc:
        _fail(exc.problems)
    document = to_dry_run_dict(pipeline, plan)
    if output is PlanFormat.JSON:
        typer.echo(json.dumps(document, indent=2, ensure_ascii=False))
    elif output is PlanFormat.YAML:
        typer.echo(_yaml_text(document), nl=False)
    else:
        _print_plan(pipeline, plan, str(file))


def _yaml_text(document: dict[str, Any]) -> str:
    """The plan as YAML; multi-line script entries as literal ``|`` blocks."""
    for stage in document["stages"]:
        for job in stage["jobs"]:
            job["script"] = [
                LiteralScalarString(line) if "\n" in line else line for line in job["script"]
            ]
    yaml = YAML()
    yaml.default_flow_style = False
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    return buffer.getvalue()


def _print_plan(pipeline: Pipeline, plan: Plan, source: str) -> None:
    """A tree per stage: numbered parallel groups, each job with its image, needs and script."""
    console = Console(highlight=False)
    console.print(
        Text.assemble(
            ("pipeline ", "bold"),
            (f"'{pipeline.name}'", "bold cyan"),
            f" ({source}): {_plural(len(plan.stages), 'stage')}, "
            f"{_plural(len(pipeline.jobs), 'job')}",
        )
    )
    if pipeline.overrides:
        shown = ", ".join(f"{key}={value}" for key, value in pipeline.overrides.items())
        console.print(Text(f"overrides: {shown}", style="yellow"))
    for number, stage in enumerate(plan.stages, start=1):
        jobs = {job.name: job for job in stage.jobs}
        tree = Tree(Text(f"stage {number}/{len(plan.stages)}: {stage.name}", style="bold"))
        for level, group in enumerate(stage.groups, start=1):
            together = f" — {len(group)} jobs start together" if len(group) > 1 else ""
            branch = tree.add(Text(f"group {level}{together}", style="dim"))
            for name in group:
                job = jobs[name]
                label = Text.assemble((job.name, "bold"), "  ", (job.image, "cyan"))
                if job.needs:
                    label.append(f"  needs: {', '.join(job.needs)}", style="magenta")
                if job.allow_failure:
                    label.append("  (allowed to fail)", style="yellow")
                node = branch.add(label)
                for entry in job.script:
                    lines = entry.rstrip("\n").splitlines() or [""]
                    node.add(Text("$ " + "\n  ".join(lines)))
        console.print(tree)
