"""What a GitLab pipeline is evaluated against, and which files are GitLab CI files.

Apart from the front end (``front.py``) so that reading a native pipeline, or building a request
for one, does not import the GitLab language (~50 ms of imports in every ``cicd run``).
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field

MERGE_REQUEST = "merge_request_event"


@dataclass(frozen=True)
class GitlabContext:
    """What rules, only/except and predefined variables are evaluated against."""

    branch: str | None = "main"
    tag: str | None = None
    commit: str = "0" * 40
    message: str = ""
    default_branch: str = "main"
    source: str = "push"
    project_name: str = "project"
    project_path: str = "local/project"
    repository_url: str = ""
    pipeline_iid: int = 1
    env: Mapping[str, str] = field(default_factory=dict)  # cicd run --env: beats file variables

    @property
    def ref(self) -> str:
        """The tag, or else the branch (``CI_COMMIT_REF_NAME``)."""
        return self.tag if self.tag is not None else self.branch or ""

    def described(self) -> str:
        """``branch 'main'``, ``tag 'v1'`` or ``merge request from branch 'x'``, for messages."""
        if self.tag is not None:
            return f"tag '{self.tag}'"
        if self.source == MERGE_REQUEST:
            return f"merge request from branch '{self.branch}'"
        return f"branch '{self.branch}'"


def is_gitlab_file(path: str) -> bool:
    """Whether ``path`` is a GitLab CI file: ``.gitlab-ci.yml``/``.yaml``, or under ``.gitlab/``."""
    normal = path.replace("\\", "/")
    base = posixpath.basename(normal)
    if base in (".gitlab-ci.yml", ".gitlab-ci.yaml"):
        return True
    return ".gitlab" in normal.split("/")[:-1] and base.endswith((".yml", ".yaml"))
