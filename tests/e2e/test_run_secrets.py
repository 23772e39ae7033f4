"""``cicd run --secret`` through the installed console script (in-process runs)."""

from __future__ import annotations

import json

import pytest
from e2ekit import BUSYBOX, Project

PIPELINE = f"""\
pipeline: {{name: secrets, image: {BUSYBOX}}}
jobs:
  - {{name: show, stage: build, script: 'echo "token=$TOKEN"'}}
"""


@pytest.mark.docker
def test_run_secret_name_not_a_shell_name_is_a_usage_error(project: Project) -> None:
    project.commit({".pipelines/pipeline.yaml": PIPELINE})
    project.env["MY-TOKEN"] = "not-for-the-environment"

    out = project.run("--secret", "MY-TOKEN")

    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.splitlines() == [
        "error: secret name 'MY-TOKEN' is not a shell variable name "
        "(letters, digits and _, not starting with a digit)"
    ]
    assert out.stdout == ""
    assert json.loads(project.cicd("report", "--format", "json").stdout) == {"pipelines": []}
