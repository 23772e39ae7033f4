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
from backend.pipeline import (
    GITLAB_FILE,
    Job,
    Pipeline,
    Plan,
    find_pipeline_by_name,
    find_pipelines,
    is_gitlab_file,
    load_all,
    load_gitlab_file,
    load_pipeline,
    plan_pipeline,
    select_jobs,
    to_dry_run_dict,
)
from cicd_cli.errors import EXIT_FAILED, EXIT_USAGE, abort

PIPELINES_DIR = Path(".pipelines")
DEFAULT_FILE = PIPELINES_DIR / "pipeline.yaml"
NAME_HELP = (
    "GitLab file: the pipeline's name (default: the repository folder's name). "
    ".pipelines/ file: use the file of the pipeline with this name."
)


class PlanFormat(StrEnum):
    """How ``dry-run`` prints the plan."""

    TEXT = "text"
    YAML = "yaml"
    JSON = "json"
    MERMAID = "mermaid"
    DOT = "dot"


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


def _load(
    file: Path | None, name: str | None, overrides: list[str], env: list[str]
) -> tuple[Pipeline, Path]:
    """The pipeline to check or plan, and its file.

    A GitLab file is ``-f`` naming one, or, without ``-f``, ``.gitlab-ci.yml`` when there are no
    ``.pipelines/`` files; its includes are read from the work tree and its rules see the work
    tree's HEAD (branch, tag, message) and ``--env``.
    """
    from backend.requests import (
        gitlab_pipeline_name,
        parse_pairs,
        work_tree_context,
        work_tree_root,
    )

    gitlab = file is not None and is_gitlab_file(str(file))
    if file is None and not find_pipelines(PIPELINES_DIR) and Path(GITLAB_FILE).is_file():
        gitlab, file = True, Path(GITLAB_FILE)
    if gitlab and file is not None:
        if overrides:
            abort(
                "--override sets keys of .pipelines/ files; for a GitLab file use --env", EXIT_USAGE
            )
        root = work_tree_root(Path.cwd())
        context = work_tree_context(root, parse_pairs(env, "--env"))
        return load_gitlab_file(
            file, root, name=gitlab_pipeline_name(name, root.name), context=context
        ), file
    if name and file is not None:
        abort("-f/--file and -p/--pipeline cannot be used together", EXIT_USAGE)
    path = find_pipeline_by_name(PIPELINES_DIR, name) if name else file or DEFAULT_FILE
    return load_pipeline(path, overrides=overrides), path


def check(
    file: Path | None = typer.Option(
        None,
        "-f",
        "--file",
        help="Pipeline file to check: a .pipelines/ file or a .gitlab-ci.yml "
        "[default: .pipelines/pipeline.yaml; .gitlab-ci.yml when there is no .pipelines/].",
        show_default=False,
    ),
    name: str | None = typer.Option(None, "-p", "--pipeline", help=NAME_HELP),
    all_files: bool = typer.Option(
        False,
        "--all",
        help="Check every *.yaml and *.yml file in .pipelines/, and that "
        "their pipeline names are unique.",
    ),
) -> None:
    """Validate a pipeline file (or, with --all, every file in .pipelines/).

    A .gitlab-ci.yml is read with its local includes from the work tree.

    Prints every problem at once on stderr, one per line: FILE:LINE:COLUMN: MESSAGE.

    Prints one summary line per valid file on stdout.

    Exit status: 0 every file is valid, 1 a file is invalid, 2 usage error.
    """
    if all_files and file is not None:
        abort("-f/--file and --all cannot be used together", EXIT_USAGE)
    if not all_files:
        try:
            pipeline, path = _load(file, name, [], [])
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
    file: Path | None = typer.Option(
        None,
        "-f",
        "--file",
        help="Pipeline file to plan: a .pipelines/ file or a .gitlab-ci.yml "
        "[default: .pipelines/pipeline.yaml; .gitlab-ci.yml when there is no .pipelines/].",
        show_default=False,
    ),
    name: str | None = typer.Option(None, "-p", "--pipeline", help=NAME_HELP),
    fmt: str = typer.Option(
        PlanFormat.TEXT.value,
        "--format",
        metavar="text|yaml|json|mermaid|dot",
        help="text for people; json or yaml for scripts; mermaid or dot (Graphviz) for a graph "
        "of the jobs and their needs.",
    ),
    override: list[str] = typer.Option(
        [],
        "--override",
        metavar="KEY=VALUE",
        help="Set a key of the file first, as `cicd run` would, e.g. jobs.compile.image=gcc:13.",
    ),
    job: list[str] = typer.Option(
        [],
        "--job",
        metavar="NAME",
        help="Plan only this job (repeatable), as `cicd run --job` would; the others are shown "
        "as not run. Not --jobs, which limits how many jobs run at once.",
    ),
    with_needs: bool = typer.Option(
        False, "--with-needs", help="With --job: also run what those jobs need, transitively."
    ),
    manual: list[str] = typer.Option(
        [], "--manual", metavar="NAME", help="Start this `when: manual` job (repeatable)."
    ),
    env: list[str] = typer.Option(
        [],
        "--env",
        metavar="KEY=VALUE",
        help="A variable for the GitLab file's rules and jobs; beats the file's variables.",
    ),
) -> None:
    """Print the execution plan of a pipeline file without running anything.

    Stages in run order; in each stage, jobs in an order in which they can start.

    Jobs that can start together form a numbered group; each shows its image, needs and script.

    A GitLab file is one DAG across stages (a job with needs: starts when they are done, whatever
    its stage), so its groups count across the whole run. Jobs that do not run (rules, --job,
    manual) are listed with the reason.

    --format json (or yaml) prints the stable shape scripts rely on:

    {pipeline, stages: [{name, jobs: [{name, image, needs, allow_failure, script}]}]}

    GitLab files and selections add keys: before_script, when, run, skip_reason, group, after
    and need_stages per job; format and ignored for the pipeline.

    --format mermaid (or dot) prints a graph: the jobs as nodes grouped by stage, and exactly
    the needs edges (a job without needs gets none: it waits for the stage order); jobs that
    do not run are dashed.

    Exit status: 0 ok, 1 the file is invalid (its problems are printed), 2 usage error.
    """
    try:
        output = PlanFormat(fmt.lower())
    except ValueError:
        choices = ", ".join(f.value for f in PlanFormat)
        abort(f"--format {fmt}: expected one of {choices}", EXIT_USAGE)
    try:
        pipeline, path = _load(file, name, override, env)
        pipeline = select_jobs(pipeline, job, with_needs=with_needs, manual=manual)
        plan = plan_pipeline(pipeline)
    except PipelineInvalid as exc:
        _fail(exc.problems)
    if output is PlanFormat.JSON:
        document = to_dry_run_dict(pipeline, plan)
        typer.echo(json.dumps(document, indent=2, ensure_ascii=False))
    elif output is PlanFormat.YAML:
        typer.echo(_yaml_text(to_dry_run_dict(pipeline, plan)), nl=False)
    elif output in (PlanFormat.MERMAID, PlanFormat.DOT):
        from backend.plan_graph import to_dot, to_mermaid

        draw = to_mermaid if output is PlanFormat.MERMAID else to_dot
        typer.echo(draw(pipeline, plan), nl=False)
    else:
        _print_plan(pipeline, plan, str(path))


def _yaml_text(document: dict[str, Any]) -> str:
    """The plan as YAML; multi-line script entries as literal ``|`` blocks."""
    for stage in document["stages"]:
        for job in stage["jobs"]:
            for key in ("before_script", "script"):
                if key in job:
                    job[key] = [
                        LiteralScalarString(line) if "\n" in line else line for line in job[key]
                    ]
    yaml = YAML()
    yaml.default_flow_style = False
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    return buffer.getvalue()


def _print_plan(pipeline: Pipeline, plan: Plan, source: str) -> None:
    """A tree per stage: numbered parallel groups, each job with its image, needs and script.

    Jobs that do not run follow under "not run", with the reason.
    """
    console = Console(highlight=False, markup=False)
    skipped = sum(not job.run for job in pipeline.jobs)
    console.print(
        Text.assemble(
            ("pipeline ", "bold"),
            (f"'{pipeline.name}'", "bold cyan"),
            f" ({source}): {_plural(len(plan.layout), 'stage')}, "
            f"{_plural(len(pipeline.jobs), 'job')}",
            f", {skipped} not run" if skipped else "",
        )
    )
    if pipeline.overrides:
        shown = ", ".join(f"{key}={value}" for key, value in pipeline.overrides.items())
        console.print(Text(f"overrides: {shown}", style="yellow"))
    if plan.dag:  # GitLab: needs make one DAG, so a group may start before its stage
        console.print(Text("one DAG across stages: groups count across the whole run", style="dim"))
    stage_of = {job.name: job.stage for job in pipeline.jobs}
    running = {job.name for job in pipeline.jobs if job.run}
    for number, stage in enumerate(plan.layout, start=1):
        jobs = {job.name: job for job in stage.jobs}
        tree = Tree(Text(f"stage {number}/{len(plan.layout)}: {stage.name}", style="bold"))
        for group in stage.groups:
            level = plan.group[group[0]]
            together = f" — {len(group)} jobs start together" if len(group) > 1 else ""
            branch = tree.add(Text(f"group {level}{together}", style="dim"))
            for name in group:
                _add_job(branch, jobs[name], stage.name, stage_of, running)
        left_out = [job for job in stage.jobs if not job.run]
        if left_out:
            branch = tree.add(Text("not run", style="dim"))
            for job in left_out:
                label = Text.assemble((job.name, "bold"), "  ", (job.image, "cyan"))
                label.append(f"  — {job.skip_reason or 'not run'}", style="yellow")
                branch.add(label)
        console.print(tree)
    for keyword in pipeline.ignored:
        console.print(Text(f"ignored: {keyword}", style="yellow"))


def _add_job(
    branch: Tree, job: Job, stage: str, stage_of: dict[str, str], running: set[str]
) -> None:
    """One job that runs: image, needs (with their stage when another, or "not run"), script."""
    label = Text.assemble((job.name, "bold"), "  ", (job.image, "cyan"))
    needs = []
    for need in job.needs:
        notes = [stage_of[need]] if stage_of.get(need, stage) != stage else []
        notes += [] if need in running else ["not run"]
        needs.append(f"{need} ({', '.join(notes)})" if notes else need)
    if needs:
        label.append(f"  needs: {', '.join(needs)}", style="magenta")
    elif job.dag:
        label.append("  needs: none", style="magenta")
    if job.when != "on_success":
        label.append(f"  when: {job.when}", style="yellow")
    if job.allow_failure:
        label.append("  (allowed to fail)", style="yellow")
    node = branch.add(label)
    for entry in [*job.before_script, *job.script]:
        lines = entry.rstrip("\n").splitlines() or [""]
        node.add(Text("$ " + "\n  ".join(lines)))
