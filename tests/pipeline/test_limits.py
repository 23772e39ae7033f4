"""Limits on what a pipeline file can be and expand to: its size, its aliases, override depth."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend.errors import PipelineInvalid
from backend.pipeline import load_pipeline, parse_pipeline

MAX_FILE_BYTES = 1024 * 1024  # the documented limit of a pipeline file
VALID = "pipeline: {name: demo}\njobs: [{name: x, stage: build, script: [a]}]\n"
TOO_LARGE = "ci.yaml:1:1: file is larger than 1 MiB, the limit"


def script_bomb(jobs: int = 1000) -> str:
    """~50 KB: a 1,000-character line, a list of it 1,000 times, that list as every job's script.

    Expanded, the scripts are ``jobs`` MB; loaded, it is a few thousand nodes.
    """
    line = "echo " + "x" * 995
    lines = ", ".join(["*line"] * 1000)
    body = "".join(f"  - {{name: j{i}, stage: build, script: *lines}}\n" for i in range(jobs))
    return (
        f'pipeline: {{name: bomb}}\n.line: &line "{line}"\n.lines: &lines [{lines}]\njobs:\n{body}'
    )


def problems_of(text: str, overrides: list[str] | None = None) -> list[str]:
    with pytest.raises(PipelineInvalid) as info:
        parse_pipeline(text, "ci.yaml", overrides or [])
    return [str(problem) for problem in info.value.problems]


def test_parse_pipeline_script_alias_bomb_refused_at_the_alias() -> None:
    start = time.process_time()
    assert problems_of(script_bomb()) == [
        "ci.yaml:20:39: alias '*lines' expands the file beyond the 16 MiB limit (every use of "
        "an anchor counts its whole size)"
    ]
    assert time.process_time() - start < 0.5


def test_parse_pipeline_variables_alias_bomb_refused_at_the_alias() -> None:
    value = "v" * 100_000
    variables = ", ".join(f"V{i}: *v" for i in range(1000))  # 100 MB of environment
    text = (
        f".v: &v {value}\npipeline: {{name: bomb, variables: {{{variables}}}}}\n"
        "jobs: [{name: x, stage: build, script: [a]}]\n"
    )
    assert problems_of(text) == [
        "ci.yaml:2:1592: alias '*v' expands the file beyond the 16 MiB limit (every use of an "
        "anchor counts its whole size)"
    ]


def test_parse_pipeline_merge_chain_bomb_refused() -> None:
    keys = ", ".join(f"k{i}: v" for i in range(10_000))
    chain = "".join(f".m{i}: &m{i} {{<<: *m0}}\n" for i in range(1, 3000))  # 30M copied keys
    text = f".m0: &m0 {{{keys}}}\n{chain}{VALID}"
    start = time.process_time()
    lines = problems_of(text)
    assert time.process_time() - start < 5.0  # expanding it would take minutes
    assert lines == ["ci.yaml:12:13: merge keys '<<' copy more than 100000 keys in all, the limit"]


def test_parse_pipeline_needs_cross_product_refused() -> None:
    names = ", ".join(["*n"] * 50_000)
    jobs = "".join(
        f"  - {{name: j{i}, stage: build, script: x, needs: *all}}\n" for i in range(2000)
    )
    text = f"pipeline: {{name: p}}\n.n: &n j0\n.all: &all [{names}]\njobs:\n{jobs}"
    start = time.process_time()
    lines = problems_of(text)
    assert time.process_time() - start < 5.0  # expanding it would take minutes
    assert len(lines) == 1 and "alias '*all' expands the file beyond" in lines[0]


def test_parse_pipeline_anchors_reused_within_the_limit_accepted() -> None:
    text = script_bomb(jobs=10)  # 10 MB of script: big, but a file may reuse its anchors
    pipeline = parse_pipeline(text, "ci.yaml")
    assert len(pipeline.jobs) == 10 and len(pipeline.jobs[9].script) == 1000


def test_parse_pipeline_text_over_the_size_limit_refused() -> None:
    text = VALID + "#" * (MAX_FILE_BYTES - len(VALID)) + "\n"
    assert problems_of(text) == [TOO_LARGE]


def test_parse_pipeline_text_over_the_size_limit_in_bytes_refused() -> None:
    text = VALID + "# " + "é" * (MAX_FILE_BYTES // 2) + "\n"  # fewer characters than bytes
    assert len(text) < MAX_FILE_BYTES
    assert problems_of(text) == [TOO_LARGE]


def test_parse_pipeline_text_at_the_size_limit_accepted() -> None:
    text = VALID + "#" * (MAX_FILE_BYTES - len(VALID) - 1) + "\n"
    assert len(text.encode()) == MAX_FILE_BYTES
    assert parse_pipeline(text, "ci.yaml").name == "demo"


def test_load_pipeline_file_over_the_size_limit_refused(tmp_path: Path) -> None:
    path = tmp_path / "ci.yaml"
    path.write_text(VALID + "#" * MAX_FILE_BYTES + "\n")
    with pytest.raises(PipelineInvalid) as info:
        load_pipeline(path, display_name="ci.yaml")
    assert [str(p) for p in info.value.problems] == [TOO_LARGE]


def test_load_pipeline_endless_file_refused() -> None:
    with pytest.raises(PipelineInvalid) as info:
        load_pipeline("/dev/zero", display_name="ci.yaml")
    assert [str(p) for p in info.value.problems] == [TOO_LARGE]


@pytest.mark.parametrize("depth", [1001, 5000, 100_000])
def test_parse_pipeline_deeply_nested_override_one_problem(depth: int) -> None:
    value = "[" * depth + "]" * depth
    assert problems_of(VALID, [f"jobs.x.script={value}"]) == [
        "ci.yaml:1:1: override 'jobs.x.script=[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[...': "
        "its value nests deeper than YAML allows (1000 levels)"
    ]


def test_parse_pipeline_nested_override_up_to_the_limit_reported_at_the_script() -> None:
    value = "[" * 1000 + "]" * 1000
    assert problems_of(VALID, [f"jobs.x.script={value}"]) == [
        "ci.yaml:2:40: override 'jobs.x.script=[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[...': "
        "job 'x': 'script' lines must be non-empty strings, not a list"
    ]


@given(st.text(max_size=12))
def test_resolve_plain_fast_path_skips_only_texts_no_pattern_matches(text: str) -> None:
    from backend.pipeline import loader

    patterns = [loader._NULL, loader._BOOL, loader._INT10, loader._INT8, loader._INT16]
    patterns += [loader._FLOAT, loader._INF, loader._NAN]
    if text and text[0] not in loader._NON_STRING_STARTS:
        assert not any(pattern.fullmatch(text) for pattern in patterns)
        assert loader.resolve_plain(text) == text


def test_parse_yaml_big_flat_file_stays_under_150_mb() -> None:
    # a 1 MiB file of half a million one-letter scalars: the most nodes the size limit lets in
    code = (
        "from backend.pipeline.loader import parse_yaml\n"
        "text = '[' + ','.join(['a'] * 524_000) + ']'\n"
        "parse_yaml(text, 'f')\n"
        # VmHWM, the peak of this process's own memory: ru_maxrss would also count the parent's
        # (Linux keeps it across fork and exec, and a long pytest session grows to 400 MB)
        "status = open('/proc/self/status').read().split('VmHWM:')[1]\n"
        "print(status.split()[0])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(done.stdout) / 1024 < 150


def test_parse_pipeline_overrides_over_the_size_limit_refused() -> None:
    overrides = [f"pipeline.variables.V{i}={'v' * 1000}" for i in range(1100)]
    assert problems_of(VALID, overrides) == [
        "ci.yaml:1:1: overrides add up to more than 1 MiB, the limit"
    ]
