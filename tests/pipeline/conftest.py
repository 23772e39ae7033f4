"""Fixtures for pipeline tests: parse a YAML text, or get its problem lines."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence

import pytest

from backend.errors import PipelineInvalid
from backend.pipeline import Pipeline, parse_pipeline

FILE = "ci.yaml"


def _text(text: str) -> str:
    """``text`` dedented, without its first newline (line 1 is the first line written)."""
    return textwrap.dedent(text).lstrip("\n")


@pytest.fixture
def parse() -> Callable[..., Pipeline]:
    """Parse a valid pipeline text (dedented) named ci.yaml, with optional overrides."""

    def parse(text: str, overrides: Sequence[str] = ()) -> Pipeline:
        return parse_pipeline(_text(text), FILE, overrides)

    return parse


@pytest.fixture
def problems() -> Callable[..., list[str]]:
    """Every problem line of an invalid pipeline text (dedented) named ci.yaml."""

    def problems(text: str, overrides: Sequence[str] = ()) -> list[str]:
        with pytest.raises(PipelineInvalid) as info:
            parse_pipeline(_text(text), FILE, overrides)
        return [str(problem) for problem in info.value.problems]

    return problems
