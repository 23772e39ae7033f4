"""Turning what a user typed into a ``RunRequest``: which repo and commit, which file.

Used by the CLI before it runs embedded or sends the request to a server, so both run the same
thing: the pipeline file *as committed*, validated with its overrides.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from backend.errors import NotFound, PipelineInvalid, UsageError
from backend.pipeline import parse_pipeline
from backend.runner.base import PullPolicy
from backend.runner.gitfiles import list_committed, read_committed
from backend.runner.workspace import Source, redact_url, request_key, resolve_source
from backend.service import RunRequest

PIPELINES_DIR = ".pipelines"
DEFAULT_FILE = f"{PIPELINES_DIR}/pipeline.yaml"


@dataclass(frozen=True)
class PreparedRun:
    """A validated request, where its commit lives, and its duplicate-detection key."""

    request: RunRequest
    source: Source
    key: str


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
) -> PreparedRun:
    """Resolve the source, read and validate the committed file.

    ``dirty`` (the CLI only, on the user's own working tree) lists its uncommitted changes in
    ``source.dirty``: that runs ``git status``, which nothing else (a worker, a server) may run.
    """
    if file and name:
        raise UsageError("-f/--file and -p/--pipeline cannot be used together")
    source = resolve_source(repo, branch, commit, cwd=cwd, cache_dir=cache_dir, dirty=dirty)
    if name:
        path = find_file_by_name(source, name)
    else:
        path = _file_in_repo(file or DEFAULT_FILE, source, cwd, local=repo is None)
    text = read_committed(source.git_dir, source.commit, path)
    pipeline = parse_pipeline(text, path, overrides=list(overrides or ()))
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
    )
    content = text + "\0" + "\n".join(overrides or ())
    return PreparedRun(request, source, request_key(source, pipeline.name, content))
