"""The JSON Schema (draft 2020-12) of the native ``.pipelines/*.yaml`` format, for editors.

Editors (yaml-language-server in VS Code, IntelliJ, Neovim...) use it to complete keys, show each
key's documentation and underline mistakes as they are typed. ``cicd schema`` prints it, and
``docs/pipeline-format.schema.json`` holds the same text (a test compares them).

Validation (``validate.py``) stays the truth: the limits below are read from it, and a key
added to its lists and not described here fails ``tests/pipeline/test_schema.py``. The schema checks
what one document can show on its own (keys, types, name shapes, ranges); what needs the whole
file — a job's stage is declared, ``needs`` name jobs of the same stage, no cycles, no stage
without jobs — is left to ``cicd check``.
"""

from __future__ import annotations

import json
from typing import Any

from backend.pipeline.model import DEFAULT_IMAGE, DEFAULT_STAGES
from backend.pipeline.resources_keyword import MAX_CPUS, MAX_MEMORY, MIN_CPUS, MIN_MEMORY
from backend.pipeline.validate import MAX_NAME, MAX_RETRY

SCHEMA_URI = "https://json-schema.org/draft/2020-12/schema"

# Patterns are written for both ECMA-262 (editors) and Python's re (tests): no lookarounds, no
# \Z, only escapes both read the same way.
_NON_BLANK = r"\S"  # validate.py's value.strip(): at least one character that is not space
_ONE_LINE = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]+$"  # validate._NAME_TEXT
_ROOTED = r"^/"
_DOT_SEGMENT = r"(^|/)\.\.?(/|$)"
# cache_keyword: no '/' (nor %2F), not made only of dots (nor %2E), one non-blank character
_CACHE_KEY = r"^(?!(?:[.]|%2[eE])*$)(?!.*(?:/|%2[fF]))(?=.*\S)"
_PIPELINE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"  # validate._PIPELINE_NAME
_VARIABLE_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"  # validate._VARIABLE_NAME
# validate.parse_duration: a bare number of seconds, or hours, minutes, seconds in that order
_DURATION = r"^\s*([0-9]+|([0-9]+h)?\s*([0-9]+m)?\s*([0-9]+s)?)\s*$"
# resources_keyword._SIZE: a number and an optional unit (the minimum is left to cicd check)
_MEMORY = r"^\s*[0-9]{1,20}([.][0-9]{1,9})?\s*([kKmMgGtTpP]?)([iI][bB]?|[bB])?\s*$"
_NOT_ALL_ZERO = r"[1-9]"  # a duration of 0 is refused, and so is an empty one


def _text(description: str) -> dict[str, Any]:
    return {"type": "string", "pattern": _NON_BLANK, "description": description}


def _definitions() -> dict[str, Any]:
    """Shapes used by more than one key (``$defs``)."""
    return {
        "name": {
            "description": (
                f"A job or stage name: one printable line of at most {MAX_NAME} characters, "
                "not starting with '/' and without a '.' or '..' segment (names are labels, "
                "never paths). 'deploy/staging', 'build: [a, b]' and 'test 1/3' are fine."
            ),
            "type": "string",
            "maxLength": MAX_NAME,
            "allOf": [
                {"pattern": _NON_BLANK},
                {"pattern": _ONE_LINE},
                {"not": {"pattern": _ROOTED}},
                {"not": {"pattern": _DOT_SEGMENT}},
            ],
        },
        "stages": {
            "description": (
                "Stage names in run order. Default: "
                f"[{', '.join(DEFAULT_STAGES)}], of which those no job uses are dropped; "
                "every stage listed explicitly must have at least one job. Give it at top "
                "level or under 'pipeline', not both."
            ),
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"$ref": "#/$defs/name"},
            "examples": [["build", "test", "deploy"]],
        },
        "variables": {
            "description": (
                "Environment variables: names of letters, digits and '_' (not starting with a "
                "digit) to scalar values; numbers are passed as written, booleans as "
                "true/false, null as an empty string."
            ),
            "type": "object",
            "propertyNames": {"pattern": _VARIABLE_NAME},
            "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
            "examples": [{"PIP_NO_CACHE_DIR": "1"}],
        },
        "image": _text(
            "A container image reference (docker pull syntax). A job's image wins over the "
            f"pipeline's; without either, {DEFAULT_IMAGE}."
        ),
        "duration": {
            "description": (
                "A duration over zero: a number of seconds (90), or hours, minutes and seconds "
                "in that order (30s, 10m, 1h30m)."
            ),
            "oneOf": [
                {"type": "integer", "minimum": 1},
                {"type": "string", "allOf": [{"pattern": _DURATION}, {"pattern": _NOT_ALL_ZERO}]},
            ],
            "examples": ["10m", "1h30m", 90],
        },
    }


def _pipeline_properties() -> dict[str, Any]:
    return {
        "name": {
            "description": (
                "The pipeline's name, unique among the repository's .pipelines/ files: letters, "
                f"digits, '.', '_' and '-', starting with a letter or digit, at most {MAX_NAME} "
                "characters (runs are named NAME#N)."
            ),
            "type": "string",
            "maxLength": MAX_NAME,
            "pattern": _PIPELINE_NAME,
            "examples": ["build-and-test"],
        },
        "stages": {"$ref": "#/$defs/stages"},
        "image": {"$ref": "#/$defs/image"},
        "variables": {"$ref": "#/$defs/variables"},
        "workspace": {
            "description": (
                "shared: every job works in the run's one checkout and sees what earlier jobs "
                "left there; isolated: each job gets its own copy of the clean checkout plus "
                "the artifacts of the jobs of earlier stages (and of those it needs)."
            ),
            "enum": ["shared", "isolated"],
            "default": "shared",
        },
        "fail_fast": {
            "description": (
                "true: the first job that fails without allow_failure stops the run (running "
                "jobs are killed, the rest CANCELED); false: running jobs finish and the jobs "
                "that wait for the failed one (later stages, needs) are SKIPPED, as on GitLab."
            ),
            "type": "boolean",
            "default": True,
        },
    }


def _artifact_list(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "type": "array",
        "items": {"type": "string", "pattern": _NON_BLANK},
    }


def _artifacts_mapping() -> dict[str, Any]:
    paths = _artifact_list("Patterns of the files to keep.")
    return {
        "type": "object",
        "properties": {
            "paths": paths,
            "exclude": _artifact_list("Patterns of files not to keep after all."),
            "when": {
                "description": "Which outcomes keep them.",
                "enum": ["on_success", "on_failure", "always"],
                "default": "on_success",
            },
            "expire_in": {
                "description": "How long they are kept ('1 week', '3 days 2h', 'never'); "
                "'cicd gc' removes them after.",
                "type": "string",
                "pattern": _NON_BLANK,
            },
            "untracked": {
                "description": "Also keep every file the commit does not hold.",
                "type": "boolean",
                "default": False,
            },
            "name": _text("The name of the artifacts (recorded)."),
            "reports": {
                "type": "object",
                "properties": {
                    "dotenv": {
                        "description": "KEY=VALUE files: variables for the jobs that get the "
                        "artifacts.",
                        "oneOf": [
                            {"type": "string", "pattern": _NON_BLANK},
                            _artifact_list("dotenv files"),
                        ],
                    },
                    "junit": {
                        "oneOf": [
                            {"type": "string", "pattern": _NON_BLANK},
                            _artifact_list("JUnit XML files"),
                        ],
                    },
                },
                "additionalProperties": False,
            },
        },
        "additionalProperties": False,
    }


def _cache_mapping() -> dict[str, Any]:
    """One ``cache:`` entry (backend/pipeline/cache_keyword.py)."""
    strings = {"type": "array", "items": {"type": "string", "pattern": _NON_BLANK}}
    return {
        "type": "object",
        "properties": {
            "key": {
                "description": "The cache's name ($VARIABLES expanded): no '/', not only dots; "
                "or {files: [1 or 2 files], prefix}: a hash of those files' contents.",
                "oneOf": [
                    {"type": "string", "pattern": _CACHE_KEY},
                    {"type": "integer"},
                    {
                        "type": "object",
                        "properties": {
                            "files": {**strings, "minItems": 1, "maxItems": 2},
                            "prefix": _text("Put before the hash, with '-'."),
                        },
                        "required": ["files"],
                        "additionalProperties": False,
                    },
                ],
                "default": "default",
            },
            "paths": {**strings, "description": "Patterns of the files to keep (as artifacts)."},
            "policy": {
                "description": "pull: restore only; push: save only; pull-push: both.",
                "enum": ["pull", "push", "pull-push"],
                "default": "pull-push",
            },
            "when": {
                "description": "Which outcomes save it.",
                "enum": ["on_success", "on_failure", "always"],
                "default": "on_success",
            },
            "untracked": {
                "description": "Also keep every file the commit does not hold.",
                "type": "boolean",
                "default": False,
            },
            "fallback_keys": {**strings, "description": "Keys tried in order when key has none."},
        },
        "additionalProperties": False,
    }


def _string_list() -> dict[str, Any]:
    return {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}


def _pull_policy() -> dict[str, Any]:
    choice = {"enum": ["always", "if-not-present", "never"]}
    return {"oneOf": [choice, {"type": "array", "minItems": 1, "items": choice}]}


def _job_properties() -> dict[str, Any]:
    return {
        "name": {
            "$ref": "#/$defs/name",
            "description": "The job's name, unique in the pipeline.",
        },
        "stage": _text("The stage the job runs in: one of the pipeline's stages."),
        "image": {
            "description": (
                "An image name, or {name, entrypoint, pull_policy} as in GitLab: entrypoint "
                "replaces the image's and gets the job's shell as arguments; pull_policy "
                "(always, if-not-present, never, or a list tried in order) wins over --pull."
            ),
            "oneOf": [
                {"$ref": "#/$defs/image"},
                {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        "name": {"$ref": "#/$defs/image"},
                        "entrypoint": _string_list(),
                        "pull_policy": _pull_policy(),
                    },
                },
            ],
            "examples": ["python:3.12", {"name": "python:3.12", "pull_policy": "never"}],
        },
        "services": {
            "description": (
                "Containers started before the job on a network of its own, reachable by alias "
                "and by names derived from the image; removed with the job."
            ),
            "type": "array",
            "maxItems": 20,
            "items": {
                "oneOf": [
                    {"$ref": "#/$defs/image"},
                    {
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"$ref": "#/$defs/image"},
                            "alias": {"type": "string", "minLength": 1},
                            "entrypoint": _string_list(),
                            "command": _string_list(),
                            "variables": {"$ref": "#/$defs/variables"},
                            "pull_policy": _pull_policy(),
                        },
                    },
                ]
            },
            "examples": [[{"name": "postgres:16", "alias": "db"}]],
        },
        "script": {
            "description": (
                "Shell commands run in order with 'sh -e' in /workspace: the first failing "
                "command fails the job."
            ),
            "oneOf": [
                {"type": "string", "pattern": _NON_BLANK},
                {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "string", "pattern": _NON_BLANK},
                },
            ],
            "examples": ["make", ["pip install .", "pytest -q"]],
        },
        "needs": {
            "description": (
                "Jobs of the same stage that must succeed before this one starts; it starts as "
                "soon as they have, not level by level."
            ),
            "type": "array",
            "uniqueItems": True,
            "items": {"type": "string", "pattern": _NON_BLANK},
            "default": [],
            "examples": [["compile"]],
        },
        "allow_failure": {
            "description": "When true, the job's failure fails neither its stage nor the run.",
            "type": "boolean",
            "default": False,
        },
        "artifacts": {
            "description": (
                "Workspace paths copied to the artifact store when the job succeeds: a file, "
                "'dir/', '*' within one path segment, '**' across segments. A pattern that "
                "matches nothing is a warning. Or a mapping as GitLab's (paths, exclude, when, "
                "expire_in, untracked, name, reports: dotenv)."
            ),
            "oneOf": [
                {"type": "array", "items": {"type": "string", "pattern": _NON_BLANK}},
                _artifacts_mapping(),
            ],
            "default": [],
            "examples": [["build/", "dist/*.whl", "reports/**/junit.xml"]],
        },
        "cache": {
            "description": (
                "Paths kept between runs under a key in CICD_HOME/cache, restored before the "
                "job and saved after it: one mapping or a list of up to 4, as GitLab's "
                "(key or key: {files, prefix}, paths, policy, when, untracked, fallback_keys)."
            ),
            "oneOf": [
                _cache_mapping(),
                {"type": "array", "maxItems": 4, "items": _cache_mapping()},
            ],
            "examples": [{"key": "pip", "paths": [".cache/pip/"]}],
        },
        "variables": {"$ref": "#/$defs/variables"},
        "timeout": {
            "$ref": "#/$defs/duration",
            "description": "The job fails when it runs longer (no limit by default).",
        },
        "retry": {
            "description": f"Run a failed job again up to this many times (0 to {MAX_RETRY}).",
            "type": "integer",
            "minimum": 0,
            "maximum": MAX_RETRY,
            "default": 0,
        },
        "resources": {
            "description": (
                "Limits Docker enforces on the job's container: cpus (a number of CPUs) and "
                "memory (a size like 512m or 2g; the job cannot swap beyond it, and is killed "
                "when it needs more: 'out of memory (OOM killed)')."
            ),
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "cpus": {
                    "description": f"CPUs, from {MIN_CPUS:g} to {MAX_CPUS:g}, e.g. 1.5.",
                    "type": "number",
                    "minimum": MIN_CPUS,
                    "maximum": MAX_CPUS,
                },
                "memory": {
                    "description": (
                        "A size: bytes, or a number with a unit k, m, g, t (powers of 1024, "
                        "as Docker reads them; 256Mi and 1GiB too); at least 6m."
                    ),
                    "oneOf": [
                        {"type": "integer", "minimum": MIN_MEMORY, "maximum": MAX_MEMORY},
                        {"type": "string", "pattern": _MEMORY},
                    ],
                },
            },
            "examples": [{"cpus": 1.5, "memory": "512m"}],
        },
    }


def pipeline_schema() -> dict[str, Any]:
    """The JSON Schema of a native pipeline file, as a JSON-ready dict."""
    return {
        "$schema": SCHEMA_URI,
        "title": "cicd pipeline (.pipelines/*.yaml)",
        "description": (
            "A cicd pipeline file. 'cicd check' is the reference: it also checks what a schema "
            "cannot (declared stages, needs within a stage, cycles) and reports every problem "
            "as FILE:LINE:COLUMN: MESSAGE."
        ),
        "type": "object",
        "required": ["pipeline", "jobs"],
        "properties": {
            "pipeline": {
                "description": "The pipeline's header: its name, and what every job shares.",
                "type": "object",
                "required": ["name"],
                "properties": _pipeline_properties(),
                "additionalProperties": False,
            },
            "stages": {"$ref": "#/$defs/stages"},
            "jobs": {
                "description": "The jobs, each a mapping with at least name, stage and script.",
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["name", "stage", "script"],
                    "properties": _job_properties(),
                    "additionalProperties": False,
                },
            },
        },
        # keys starting with '.' hold YAML anchors for '<<' merges and are otherwise ignored
        "patternProperties": {r"^\.": {}},
        "additionalProperties": False,
        "not": {
            "description": "'stages' both at top level and under 'pipeline'",
            "required": ["stages", "pipeline"],
            "properties": {"pipeline": {"required": ["stages"]}},
        },
        "$defs": _definitions(),
    }


def schema_text() -> str:
    """The schema as ``cicd schema`` prints it and ``docs/`` keeps it: 2-space JSON, ASCII."""
    return json.dumps(pipeline_schema(), indent=2) + "\n"
