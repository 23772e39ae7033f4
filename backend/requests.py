"""Turning what a user typed into a ``RunRequest``: which repo and commit, which file.

Used by the CLI before it runs embedded or sends the request to a server, so both run the same
thing: the pipeline file *as committed*, validated with its overrides.

A GitLab file (``-f .gitlab-ci.yml``, or the repository's ``.gitlab-ci.yml`` when it has no
``.pipelines/``) is read with its includes from the same commit, evaluated against a
``GitlabContext`` built from git by ``gitlab_context`` (the server builds the same one from the
request), and named after the repository's folder unless ``-p NAME`` names it.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from backend.errors import NotFound, PipelineInvalid, UsageError
from backend.pipeline import (
    GITLAB_FILE,
    GitlabContext,
    Pipeline,
    is_gitlab_file,
    parse_pipeline,
    select_jobs,
    selection_of,
)
from backend.pipeline.validate import name_problem
from backend.runs import PullPolicy
from backend.schemas import RunPublic
from backend.service import PipelineSource, RunRequest
from backend.source.git import git
from backend.source.gitfiles import CommitSource, commit_facts, list_committed, read_committed
from backend.source.workspace import Source, redact_url, resolve_source

PIPELINES_DIR = ".pipelines"
DEFAULT_FILE = f"{PIPELINES_DIR}/pipeline.yaml"


@dataclass(frozen=True)
class PreparedRun:
    """A validated request and where its commit lives: what ``Service.start`` takes (it keys
    and plans the run), or what a client sends to a server (with a bundle of the commit)."""

    request: RunRequest
    source: Source


def parse_pairs(pairs: list[str], option: str) -> dict[str, str]:
    """``KEY=VALUE`` strings to a dict (UsageError naming the option on a malformed one)."""
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{option} '{pair}': expected KEY=VALUE")
        result[key] = value
    return result


def read_secrets(names: list[str]) -> dict[str, str]:
    """The values of ``--secret NAME`` options, read from this process's environment."""
    secrets = {}
    for name in names:
        if name not in os.environ:
            raise UsageError(f"--secret {name}: no such variable in the environment")
        secrets[name] = os.environ[name]
    return secrets


def _file_in_repo(file: str, source: Source, cwd: Path, local: bool) -> str:
    path = Path(file)
    if local and (path.is_absolute() or (cwd / path).exists()):
        top = Path(source.repo).resolve()  # the working tree, not its .git directory
        try:
            return (cwd / path).resolve().relative_to(top).as_posix()
        except ValueError:
            raise UsageError(f"-f {file}: not inside the repository {top}") from None
    return path.as_posix()


def find_file_by_name(source: Source, name: str) -> str:
    """The ``.pipelines/`` file of ``source.commit`` whose pipeline is called ``name``."""
    names = []
    for path in list_committed(source.git_dir, source.commit, PIPELINES_DIR):
        if not path.endswith((".yaml", ".yml")):
            continue
        try:
            pipeline = parse_pipeline(read_committed(source.git_dir, source.commit, path), path)
        except PipelineInvalid:
            continue
        if pipeline.name == name:
            return path
        names.append(pipeline.name)
    known = ", ".join(sorted(names)) or "none"
    raise NotFound(f"no pipeline named '{name}' in {PIPELINES_DIR}/ (pipelines: {known})")


def project_name(repo: str) -> str:
    """The project's name for a repository path or URL: its last part, without ``.git``."""
    path = repo.replace("\\", "/").rstrip("/")
    if not path.startswith("/"):  # a URL: ``host:path`` or ``scheme://host:port/path``
        path = path.split(":")[-1].rstrip("/")
    return posixpath.basename(path).removesuffix(".git") or "project"


def gitlab_pipeline_name(name: str | None, folder: str) -> str:
    """A GitLab file's pipeline name: ``-p NAME``, else the repository folder's name."""
    if name is None:
        return folder
    problem = "must not be empty" if not name.strip() else name_problem(name)
    if problem:
        raise UsageError(f"-p {name!r}: a pipeline name {problem}")
    return name


def gitlab_context(
    git_dir: Path,
    commit: str,
    branch: str | None,
    repo: str,
    env: Mapping[str, str],
    source: str = "push",
) -> GitlabContext:
    """What a GitLab file's rules and predefined variables see for ``commit`` of ``repo``.

    Built from git alone (tag at the commit, its message, ``origin/HEAD`` as default branch or
    ``main``) and the request's own fields, so the CLI and a server that re-reads the committed
    file evaluate the same rules. ``source`` is ``CI_PIPELINE_SOURCE`` (``RunRequest.source``).
    """
    facts = commit_facts(git_dir, commit)
    name = project_name(repo)
    return GitlabContext(
        branch=branch,
        tag=facts.tag,
        commit=commit,
        message=facts.message,
        default_branch=facts.default_branch,
        project_name=name,
        project_path=f"local/{name}",
        repository_url=redact_url(repo),
        env=dict(env),
        source=source,
    )


def work_tree_context(root: Path, env: Mapping[str, str]) -> GitlabContext:
    """The ``GitlabContext`` of a work tree's HEAD (``check``/``dry-run``); defaults outside git."""
    head = git("rev-parse", "--verify", "--quiet", "HEAD", cwd=root, check=False)
    if head.returncode != 0:  # not a repository, or one without a commit yet
        return GitlabContext(project_name=root.name, project_path=f"local/{root.name}", env=env)
    git_dir = Path(git("rev-parse", "--absolute-git-dir", cwd=root).stdout.strip())
    ref = git("symbolic-ref", "--quiet", "--short", "HEAD", cwd=root, check=False)
    branch = ref.stdout.strip() if ref.returncode == 0 else None
    return gitlab_context(git_dir, head.stdout.strip(), branch, str(root), env)


def work_tree_root(cwd: Path) -> Path:
    """The top folder of the git work tree around ``cwd`` (``cwd`` itself outside git)."""
    top = git("rev-parse", "--show-toplevel", cwd=cwd, check=False)
    return Path(top.stdout.strip()) if top.returncode == 0 and top.stdout.strip() else cwd


def read_gitlab_committed(
    git_dir: Path,
    commit: str,
    path: str,
    *,
    name: str,
    context: GitlabContext,
    selection: tuple[Sequence[str], Sequence[str], bool] = ((), (), False),
) -> tuple[str, Pipeline]:
    """The text and the pipeline of the committed GitLab file ``path``, includes from ``commit``.

    ``selection`` is ``(--job names, --manual names, --with-needs)``.
    """
    from backend.pipeline.gitlab.front import load_gitlab  # only for a GitLab file

    text = read_committed(git_dir, commit, path)
    pipeline = load_gitlab(path, CommitSource(git_dir, commit), name=name, context=context)
    names, manual, with_needs = selection
    return text, select_jobs(pipeline, names, with_needs=with_needs, manual=manual)


def as_committed_gitlab(
    sent: Pipeline,
    path: str,
    git_dir: Path,
    commit: str,
    branch: str | None,
    repo: str,
    env: Mapping[str, str],
    source: str = "push",
) -> tuple[str, Pipeline]:
    """A server's reading of a submitted GitLab file: the committed file, under the name and
    with the job selection the client sent (``sent``), in the same context the CLI built."""
    names, manual = selection_of(sent)
    context = gitlab_context(git_dir, commit, branch, repo, env, source)
    return read_gitlab_committed(
        git_dir, commit, path, name=sent.name, context=context, selection=(names, manual, False)
    )


def _committed_gitlab_default(source: Source) -> bool:
    """Whether the commit has no ``.pipelines/`` files but a ``.gitlab-ci.yml``."""
    if any(
        p.endswith((".yaml", ".yml"))
        for p in list_committed(source.git_dir, source.commit, PIPELINES_DIR)
    ):
        return False
    try:
        read_committed(source.git_dir, source.commit, GITLAB_FILE)
    except NotFound:
        return False
    return True


def prepare_run(
    *,
    cwd: Path,
    cache_dir: Path,
    repo: str | None = None,
    branch: str | None = None,
    commit: str | None = None,
    file: str | None = None,
    name: str | None = None,
    overrides: list[str] | None = None,
    env: dict[str, str] | None = None,
    secrets: dict[str, str] | None = None,
    jobs: int | None = None,
    pull: PullPolicy = PullPolicy.IF_NOT_PRESENT,
    force: bool = False,
    dirty: bool = False,
    select: Sequence[str] = (),
    with_needs: bool = False,
    manual: Sequence[str] = (),
    pipeline_source: PipelineSource = "push",
) -> PreparedRun:
    """Resolve the source, read and validate the committed file, select its jobs.

    ``dirty`` (the CLI only, on the user's own working tree) lists its uncommitted changes in
    ``source.dirty``: that runs ``git status``, which nothing else (a worker, a server) may run.
    ``select``/``with_needs``/``manual`` are ``--job``/``--with-needs``/``--manual``. For a GitLab
    file ``name`` (``-p``) is the pipeline's name; for a ``.pipelines/`` file it finds the file.
    ``pipeline_source`` is what started the run (CI_PIPELINE_SOURCE; ``schedule`` for a
    schedule's run).
    """
    gitlab = bool(file) and is_gitlab_file(file or "")
    if file and name and not gitlab:
        raise UsageError("-f/--file and -p/--pipeline cannot be used together")
    source = resolve_source(repo, branch, commit, cwd=cwd, cache_dir=cache_dir, dirty=dirty)
    if not file and _committed_gitlab_default(source):
        gitlab, file = True, GITLAB_FILE
    if gitlab and overrides:
        raise UsageError("--override sets keys of .pipelines/ files; for a GitLab file use --env")
    if gitlab:
        path = _file_in_repo(file or GITLAB_FILE, source, cwd, local=repo is None)
        context = gitlab_context(
            source.git_dir, source.commit, source.branch, source.repo, env or {}, pipeline_source
        )
        text, pipeline = read_gitlab_committed(
            source.git_dir,
            source.commit,
            path,
            name=gitlab_pipeline_name(name, project_name(source.repo)),
            context=context,
            selection=(select, manual, with_needs),
        )
    else:
        if name:
            path = find_file_by_name(source, name)
        else:
            path = _file_in_repo(file or DEFAULT_FILE, source, cwd, local=repo is None)
        text = read_committed(source.git_dir, source.commit, path)
        pipeline = parse_pipeline(text, path, overrides=list(overrides or ()))
        pipeline = select_jobs(pipeline, select, with_needs=with_needs, manual=manual)
    if not any(job.run for job in pipeline.jobs):
        raise UsageError(f"no job of pipeline '{pipeline.name}' runs ({_why_none(pipeline)})")
    request = RunRequest(
        pipeline=pipeline,
        file=path,
        file_content=text,
        repo=redact_url(source.repo),  # a token in a URL never reaches the store
        branch=source.branch,
        commit=source.commit,
        overrides=list(overrides or ()),
        env=dict(env or {}),
        secrets=dict(secrets or {}),
        jobs=jobs,
        pull=pull,
        force=force,
        source=pipeline_source,
    )
    return PreparedRun(request, source)


def prepare_retry(
    run: RunPublic,
    source: Source,
    *,
    job: str | None = None,
    env: dict[str, str] | None = None,
    secrets: dict[str, str] | None = None,
    jobs: int | None = None,
    pull: PullPolicy = PullPolicy.IF_NOT_PRESENT,
) -> PreparedRun:
    """The request of ``cicd retry``: run ``run``'s commit, file and overrides again at
    ``source`` (which holds that commit), with the jobs ``backend.retry`` picks.

    ``UsageError`` naming the run when its file is gone from the commit, no longer defines
    the pipeline, or there is nothing to retry. ``env`` is given to the re-run jobs on top of
    the run's own ``--env`` values (``Service.start`` adds those from the store).
    """
    from backend.retry import plan_retry, recorded_jobs, retry_selection

    name = f"{run.pipeline}#{run.run}"
    if not run.file:
        raise UsageError(f"cannot retry {name}: its pipeline file was not recorded")
    env = dict(env or {})
    try:
        if is_gitlab_file(run.file):
            context = gitlab_context(
                source.git_dir, source.commit, run.branch, run.repo or source.repo, env
            )
            text, pipeline = read_gitlab_committed(
                source.git_dir, source.commit, run.file, name=run.pipeline, context=context
            )
        else:
            text = read_committed(source.git_dir, source.commit, run.file)
            pipeline = parse_pipeline(text, run.file, overrides=list(run.overrides))
    except (NotFound, PipelineInvalid) as exc:
        raise UsageError(f"cannot retry {name}: {exc}") from None
    if pipeline.name != run.pipeline:
        raise UsageError(
            f"cannot retry {name}: {run.file} names pipeline '{pipeline.name}' at that commit"
        )
    try:
        recorded = select_jobs(pipeline, recorded_jobs(run))
        plan = plan_retry(recorded, run, job)
        selected = select_jobs(pipeline, retry_selection(run, job, plan))
    except UsageError as exc:
        raise UsageError(f"cannot retry {name}: {exc}") from None
    request = RunRequest(
        pipeline=selected,
        file=run.file,
        file_content=text,
        repo=redact_url(run.repo or source.repo),
        branch=run.branch,
        commit=source.commit,
        overrides=list(run.overrides),
        env=env,
        secrets=dict(secrets or {}),
        jobs=jobs,
        pull=pull,
        retry_of=run.run,
        retry_job=job,
    )
    return PreparedRun(request, source)


def _why_none(pipeline: Pipeline) -> str:
    """The reasons jobs do not run, each once, for the "nothing runs" message."""
    reasons = dict.fromkeys(job.skip_reason or "not run" for job in pipeline.jobs)
    return "; ".join(reasons) if reasons else "it has no jobs"
