"""Whatever the input, loading ends in a Pipeline or PipelineInvalid: never anything else."""

from __future__ import annotations

import io
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from backend.errors import PipelineInvalid
from backend.pipeline import parse_pipeline, plan_pipeline

EXAMPLES = Path(__file__).parents[2] / "examples"
VALID_TEXTS = [
    (EXAMPLES / name / ".pipelines/pipeline.yaml").read_text()
    for name in ("python-project", "dag", "invalid")
]
KEYS = [
    "pipeline", "jobs", "stages", "name", "stage", "image", "script", "needs", "allow_failure",
    "artifacts", "variables", "timeout", "retry", "build", "test", "a", "b", "<<",
]  # fmt: skip
OVERRIDES = st.lists(
    st.one_of(
        st.sampled_from(["pipeline.image=x", "jobs.a.retry=1", "jobs.b.script=[1]", "bad"]),
        st.text(max_size=20),
    ),
    max_size=3,
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-5, max_value=5),
    st.floats(allow_nan=False),
    st.sampled_from([*KEYS, "", "yes", "10m", "1h30m", "a: b", "*x", "&y"]),
    st.text(max_size=10),
)
documents = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(KEYS), children, max_size=5),
    ),
    max_leaves=30,
)


def _dump(document: object) -> str:
    buffer = io.StringIO()
    YAML(typ="safe", pure=True).dump(document, buffer)
    return buffer.getvalue()


def _load(text: str, overrides: list[str] | tuple[str, ...] = ()) -> None:
    try:
        pipeline = parse_pipeline(text, "fuzz.yaml", overrides)
    except PipelineInvalid as exc:
        assert exc.problems
        assert all(p.file == "fuzz.yaml" and p.line >= 1 and p.column >= 1 for p in exc.problems)
        assert exc.problems == sorted(exc.problems)
        assert all("\n" not in p.message for p in exc.problems)
        return
    plan_pipeline(pipeline)


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(documents, OVERRIDES)
def test_parse_pipeline_generated_documents_never_crash(document, overrides):
    _load(_dump(document), overrides)


@settings(max_examples=150)
@given(st.text(alphabet=st.sampled_from([*list("ab:- \n[]{},&*!'\"#|>?%@`\t\\"), "\x00"])))
def test_parse_pipeline_yaml_punctuation_soup_never_crashes(text):
    _load(text)


@settings(max_examples=150)
@given(st.text(max_size=200))
def test_parse_pipeline_any_text_never_crashes(text):
    _load(text)


@st.composite
def mutations(draw: st.DrawFn) -> str:
    """A valid (or known-invalid) pipeline with a few random edits."""
    text = draw(st.sampled_from(VALID_TEXTS))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        lines = text.splitlines(keepends=True)
        kind = draw(st.sampled_from(["delete", "insert", "duplicate", "swap", "replace"]))
        if kind == "delete" and text:
            start = draw(st.integers(0, len(text) - 1))
            text = text[:start] + text[start + draw(st.integers(1, 20)) :]
        elif kind == "insert":
            at = draw(st.integers(0, len(text)))
            text = text[:at] + draw(st.text(max_size=8)) + text[at:]
        elif kind == "duplicate" and lines:
            i = draw(st.integers(0, len(lines) - 1))
            text = "".join(lines[: i + 1] + lines[i:])
        elif kind == "swap" and len(lines) > 1:
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
            text = "".join(lines)
        elif kind == "replace":
            word = draw(st.sampled_from([*KEYS, "true", "5", "[]", "{}", "null", "~"]))
            other = draw(st.sampled_from([*KEYS, "true", "5", "[x]", "{a: 1}", "''", "-"]))
            text = text.replace(word, other, 1)
    return text


@settings(max_examples=100)
@given(mutations(), OVERRIDES)
def test_parse_pipeline_mutated_examples_never_crash(text, overrides):
    _load(text, overrides)
