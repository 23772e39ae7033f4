"""Job names as GitLab writes them (``deploy/staging``, ``a/b``, ``a b``), run for real.

Names are labels, never paths: each job gets its own log and its own artifacts, everything the
run writes stays under ``CICD_HOME``, and no file or folder there is named after a job as given.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest
from e2ekit import BUSYBOX, Project, git, jobs

pytestmark = pytest.mark.docker

NAMES = {"deploy/staging": "out1", "a/b": "out2", "a b": "out3"}
PIPELINE = f"""\
pipeline: {{name: names, image: {BUSYBOX}}}
jobs:
""" + "".join(
    textwrap.indent(
        textwrap.dedent(
            f"""\
            - name: {name}
              stage: build
              artifacts: [{folder}/]
              script:
                - echo "line of $CICD_JOB"
                - mkdir -p {folder}
                - echo "made by $CICD_JOB" > {folder}/note.txt
            """
        ),
        "  ",
    )
    for name, folder in NAMES.items()
)


def _tree(root: Path) -> set[str]:
    """Every path under ``root``, relative, without following symlinks."""
    found = set()
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            found.add(str(Path(folder, name).relative_to(root)))
    return found


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> Project:
    """``names#1`` run to its end, with the project's folders compared before and after."""
    root = tmp_path_factory.mktemp("names")
    project = Project.create(root)
    project.commit({".pipelines/pipeline.yaml": PIPELINE})
    before = _tree(root)
    out = project.run()
    assert out.returncode == 0, out.stdout + out.stderr
    new = {path for path in _tree(root) - before if not path.startswith("home")}
    assert new == set()  # nothing written outside CICD_HOME (the repo is left as it was)
    assert git(project.repo, "status", "--porcelain") == ""
    return project


def test_run_job_names_like_paths_each_have_their_own_log(ran: Project) -> None:
    assert set(jobs(ran.report("names", 1))) == set(NAMES)
    for name in NAMES:
        out = ran.cicd("logs", "names#1", "--job", name, "--no-timestamps")
        assert out.returncode == 0, out.stderr
        folder = NAMES[name]
        assert out.stdout.splitlines() == [
            '$ echo "line of $CICD_JOB"',
            f"line of {name}",
            f"$ mkdir -p {folder}",
            f'$ echo "made by $CICD_JOB" > {folder}/note.txt',
            "cicd: collected 1 artifact file(s)",
        ]


def test_run_job_names_like_paths_each_have_their_own_artifacts(
    ran: Project, tmp_path: Path
) -> None:
    out = ran.cicd("artifacts", "names#1", "--format", "json")
    assert out.returncode == 0, out.stderr
    listed = {(a["job"], a["path"]) for a in json.loads(out.stdout)["artifacts"]}
    assert listed == {(name, f"{folder}/note.txt") for name, folder in NAMES.items()}
    for name, folder in NAMES.items():
        one = ran.cicd("artifacts", "names#1", "--job", name, "--format", "json")
        paths = [a["path"] for a in json.loads(one.stdout)["artifacts"]]
        assert paths == [f"{folder}/note.txt"], one.stdout
    got = tmp_path / "got"
    assert ran.cicd("artifacts", "names#1", "--download", str(got)).returncode == 0
    for name, folder in NAMES.items():
        assert (got / name / folder / "note.txt").read_text() == f"made by {name}\n"


def test_run_job_names_never_become_paths_under_home(ran: Project) -> None:
    home = ran.home.resolve()
    stored = [Path(home, p) for p in _tree(home)]
    for path in stored:  # no symlink or '..' leads out
        assert path.resolve().is_relative_to(home), path
    names = {path.name for path in stored}
    assert not names & {"deploy", "staging", "a", "b", "a b", "a_b", "a_b.log"}, sorted(names)
    logs = [p for p in stored if p.suffix == ".log" and p.is_relative_to(home / "logs")]
    assert len(logs) == len(NAMES)  # one each: 'a/b' and 'a b' do not share one
    assert sorted(p.name.split("-")[0] for p in logs) == ["a_b", "a_b", "deploy_staging"]
