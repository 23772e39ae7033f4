"""Finding pipeline files in .pipelines/, checking them all, finding one by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.errors import NotFound, PipelineInvalid
from backend.pipeline import find_pipeline_by_name, find_pipelines, load_all


def _write(folder: Path, name: str, pipeline: str, stage: str = "build") -> Path:
    path = folder / name
    path.write_text(
        f"pipeline:\n  name: {pipeline}\njobs:\n  - {{name: a, stage: {stage}, script: x}}\n"
    )
    return path


@pytest.fixture
def pipelines(tmp_path: Path) -> Path:
    folder = tmp_path / ".pipelines"
    folder.mkdir()
    return folder


def test_find_pipelines_yaml_and_yml_sorted(pipelines):
    for name in ("b.yml", "a.yaml", "notes.txt", "c.YAML.bak"):
        (pipelines / name).write_text("x")
    (pipelines / "dir.yaml").mkdir()
    assert [p.name for p in find_pipelines(pipelines)] == ["a.yaml", "b.yml"]


def test_find_pipelines_missing_folder(tmp_path):
    assert find_pipelines(tmp_path / "nope") == []


def test_load_all_returns_every_valid_pipeline(pipelines):
    _write(pipelines, "a.yaml", "one")
    _write(pipelines, "b.yml", "two")
    valid, problems = load_all(pipelines)
    assert problems == []
    assert [(p.name, pl.name) for p, pl in valid] == [
        ("a.yaml", "one"),
        ("b.yml", "two"),
    ]


def test_load_all_reports_every_file_and_duplicate_names(pipelines):
    _write(pipelines, "a.yaml", "same")
    _write(pipelines, "b.yaml", "same")
    _write(pipelines, "c.yaml", "other", stage="nope")
    _, problems = load_all(pipelines)
    assert [str(p) for p in problems] == [
        f"{pipelines}/b.yaml:2:9: pipeline name 'same' is already used by {pipelines}/a.yaml",
        f"{pipelines}/c.yaml:4:22: job 'a' has stage 'nope', which is not defined (stages: "
        "build, test, doc, deploy; declare others with 'stages')",
    ]


def test_find_pipeline_by_name_even_when_invalid(pipelines):
    _write(pipelines, "a.yaml", "one")
    wanted = _write(pipelines, "b.yaml", "two", stage="nope")
    assert find_pipeline_by_name(pipelines, "two") == wanted


def test_find_pipeline_by_name_lists_names_when_missing(pipelines):
    _write(pipelines, "a.yaml", "one")
    (pipelines / "broken.yaml").write_text("[")
    with pytest.raises(NotFound) as info:
        find_pipeline_by_name(pipelines, "three")
    assert str(info.value) == (
        f"no pipeline named 'three' in {pipelines}/ (available: one; without a readable name: "
        "broken.yaml)"
    )


def test_find_pipeline_by_name_empty_folder(pipelines):
    with pytest.raises(NotFound) as info:
        find_pipeline_by_name(pipelines, "x")
    assert (
        str(info.value)
        == f"no pipeline named 'x' in {pipelines}/ (it has no *.yaml or *.yml files)"
    )


def test_directory_source_refuses_includes_outside_the_tree(tmp_path: Path) -> None:
    # a cloned repository must not make `cicd check` read the user's other files
    from backend.pipeline.discover import DirectorySource
    from backend.pipeline.gitlab.front import load_gitlab

    secret = tmp_path / "secret.yml"
    secret.write_text("j: {script: leaked}\n")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "link.yml").symlink_to(secret)
    (repo / ".gitlab-ci.yml").write_text(
        "include: [../secret.yml, /../secret.yml, link.yml]\nj: {script: x}\n"
    )
    with pytest.raises(PipelineInvalid) as caught:
        load_gitlab(".gitlab-ci.yml", DirectorySource(repo), name="repo")
    assert [str(p) for p in caught.value.problems] == [
        ".gitlab-ci.yml:1:11: local file '../secret.yml' does not exist",
        ".gitlab-ci.yml:1:26: local file '../secret.yml' does not exist",
        ".gitlab-ci.yml:1:42: local file 'link.yml' does not exist",
    ]
