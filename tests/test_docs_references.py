"""The references in docs/ cannot drift from the code they describe.

- README.md and docs/*.md link only to files (and headings) that exist;
- docs/pipeline-format.md has a row for every key validation knows and every overridable key,
  states the limits the loader enforces, and its error example is exactly what `cicd check`
  prints;
- docs/gitlab.md has a row for every keyword the GitLab front end accepts (read from its own
  constants), and marks as ignored every keyword the front end ignores.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path
from typing import Any

import pytest

import backend.pipeline.gitlab
from backend.errors import PipelineInvalid
from backend.pipeline import OVERRIDABLE, parse_pipeline
from backend.pipeline.gitlab.variables import predefined
from backend.pipeline.loader import MAX_EXPANDED, MAX_FILE_BYTES, MAX_MERGED_KEYS, MiB
from backend.pipeline.validate import JOB_KEYS, MAX_NAME, MAX_RETRY, PIPELINE_KEYS, TOP_KEYS

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
FORMAT = DOCS / "pipeline-format.md"
GITLAB = DOCS / "gitlab.md"

_LINK = re.compile(r"\]\(([^)\s]+)\)")
_CODE = re.compile(r"`([^`]+)`")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings (outside code blocks)."""
    found = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            found.add(slug(line.lstrip("#")))
    return found


def local_links(path: Path) -> list[str]:
    """The links of a Markdown file that point into the repository."""
    links = _LINK.findall(path.read_text(encoding="utf-8"))
    return [link for link in links if not re.match(r"[a-z]+:", link)]


def section(path: Path, heading: str) -> str:
    """The text of the section whose heading is ``heading``, up to the next heading as high."""
    text = path.read_text(encoding="utf-8")
    match = re.search(rf"^(#+) {re.escape(heading)}\n", text, re.MULTILINE)
    assert match is not None, f"{path.name} has no section '{heading}'"
    rest = text[match.end() :]
    end = re.search(rf"^#{{1,{len(match.group(1))}}} ", rest, re.MULTILINE)
    return rest if end is None else rest[: end.start()]


def rows(text: str) -> list[tuple[set[str], list[str]]]:
    """Each table row of ``text``: the code spans of its first cell, and all its cells."""
    result = []
    for line in text.splitlines():
        if not line.startswith("|") or re.match(r"\|[-| ]+\|$", line):
            continue
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        result.append((set(_CODE.findall(cells[0])), cells))
    return result


def first_cells(text: str) -> set[str]:
    """Every code span in the first cell of the tables of ``text``."""
    return {code for codes, _ in rows(text) for code in codes}


# -- links ------------------------------------------------------------------------------------


@pytest.mark.parametrize("document", [README, *sorted(DOCS.glob("*.md"))], ids=lambda p: p.name)
def test_docs_links_point_at_files_and_headings_that_exist(document: Path) -> None:
    broken = []
    for link in local_links(document):
        target, _, anchor = link.partition("#")
        path = (document.parent / target).resolve() if target else document
        if not path.exists():
            broken.append(link)
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(link)
    assert broken == [], f"{document.name} links to what does not exist: {broken}"


def test_docs_readme_links_to_the_references() -> None:
    links = local_links(README)
    for target in ("docs/pipeline-format.md", "docs/pipeline-format.schema.json", "docs/gitlab.md"):
        assert target in links, f"README.md does not link to {target}"


# -- docs/pipeline-format.md --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("heading", "keys"),
    [("Top level", TOP_KEYS), ("`pipeline:`", PIPELINE_KEYS), ("Jobs", JOB_KEYS)],
    ids=["top", "pipeline", "job"],
)
def test_docs_pipeline_format_has_a_row_for_every_key(heading: str, keys: tuple[str, ...]) -> None:
    missing = set(keys) - first_cells(section(FORMAT, heading))
    assert missing == set(), f"docs/pipeline-format.md, '{heading}': no row for {sorted(missing)}"


def test_docs_pipeline_format_has_a_section_for_every_job_key() -> None:
    headings = {slug(h) for h in re.findall(r"^### (.+)$", FORMAT.read_text(), re.MULTILINE)}
    assert set(JOB_KEYS) - headings == set()


def test_docs_pipeline_format_lists_every_overridable_key() -> None:
    listed = first_cells(section(FORMAT, "Overrides: `--override KEY=VALUE`"))
    assert listed == set(OVERRIDABLE)


def test_docs_pipeline_format_states_the_limits() -> None:
    limits = section(FORMAT, "Limits")
    assert f"| file size | {MAX_FILE_BYTES // MiB} MiB of UTF-8 text |" in limits
    assert f"| {MAX_EXPANDED // MiB} MiB " in limits
    assert f"| {MAX_MERGED_KEYS:,} in a file |" in limits
    assert f"| {MAX_NAME} characters " in limits
    assert f"| `retry` | {MAX_RETRY} |" in limits


def test_docs_pipeline_format_error_example_is_what_check_prints() -> None:
    text = FORMAT.read_text(encoding="utf-8")
    match = re.search(
        r"<!-- checked by tests/test_docs_references.py[^\n]*\n```yaml\n(.*?)```\n\n"
        r"```\n\$ cicd check -f (\S+)\n(.*?)```",
        text,
        re.DOTALL,
    )
    assert match is not None, "docs/pipeline-format.md lost its checked error example"
    pipeline, filename, output = match.groups()
    with pytest.raises(PipelineInvalid) as info:
        parse_pipeline(pipeline, filename)
    assert [str(problem) for problem in info.value.problems] == output.splitlines()


# -- docs/gitlab.md -----------------------------------------------------------------------------


def gitlab_rows() -> dict[str, list[str]]:
    """Keyword -> the cells of its row, in the keyword tables of docs/gitlab.md."""
    table: dict[str, list[str]] = {}
    for heading in ("Global keywords", "Job keywords", "YAML features"):
        for codes, cells in rows(section(GITLAB, heading)):
            for code in codes:
                table.setdefault(code, cells)
    return table


def front_end_constant(name: str) -> Any:
    """The constant ``name`` of whichever module of the GitLab front end defines it.

    Looked up across the package, so the test follows the front end's modules as they are split
    or renamed, and fails only when the constant itself is gone.
    """
    package = backend.pipeline.gitlab
    for module in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        value = getattr(importlib.import_module(module.name), name, None)
        if value is not None:
            return value
    raise AssertionError(f"the GitLab front end no longer defines {name}: update this test")


def _subkeys(prefix: str, constant: str) -> set[str]:
    return {f"{prefix}:{key}" for key in front_end_constant(constant)}


ACCEPTED = {
    "global keywords": lambda: set(front_end_constant("GLOBAL_KEYS")),
    "job keywords": lambda: set(front_end_constant("JOB_KEYS")),
    "default: keys": lambda: set(front_end_constant("DEFAULT_KEYS")),
    "workflow keys": lambda: _subkeys("workflow", "WORKFLOW_KEYS"),
    "image: keys": lambda: _subkeys("image", "IMAGE_KEYS"),
    "services: keys": lambda: _subkeys("services", "SERVICE_KEYS"),
    "cache: keys": lambda: _subkeys("cache", "CACHE_KEYS"),
    "artifacts: keys": lambda: _subkeys("artifacts", "ARTIFACT_KEYS"),
    "needs: keys": lambda: _subkeys("needs", "NEED_KEYS"),
    "environment: keys": lambda: _subkeys("environment", "ENVIRONMENT_KEYS"),
    "rules: keys": lambda: _subkeys("rules", "JOB_RULE_KEYS"),
    "workflow:rules: keys": lambda: _subkeys("workflow:rules", "WORKFLOW_RULE_KEYS"),
    "only: keys": lambda: _subkeys("only", "POLICY_KEYS"),
    "except: keys": lambda: _subkeys("except", "POLICY_KEYS"),
    "include: kinds": lambda: {"include:local"} | _subkeys("include", "SERVER_KINDS"),
}


@pytest.mark.parametrize("group", list(ACCEPTED), ids=list(ACCEPTED))
def test_docs_gitlab_table_has_every_keyword_the_front_end_accepts(group: str) -> None:
    missing = ACCEPTED[group]() - set(gitlab_rows())
    assert missing == set(), f"docs/gitlab.md has no row for {sorted(missing)}"


def test_docs_gitlab_table_marks_ignored_keywords_ignored() -> None:
    table = gitlab_rows()
    ignored = [
        *front_end_constant("IGNORED"),
        *(f"workflow:{key}" for key in front_end_constant("WORKFLOW_NOTES")),
    ]
    statuses = {key: table[key][1] for key in ignored if key in table}  # a missing row: above
    assert statuses == dict.fromkeys(statuses, "accepted and ignored")


STATUSES = ("supported", "parsed, not executed yet", "accepted and ignored", "refused")


def test_docs_gitlab_table_rows_have_one_of_the_four_statuses() -> None:
    odd = {key: cells[1] for key, cells in gitlab_rows().items() if cells[1] not in STATUSES}
    assert odd == {}


def test_docs_gitlab_lists_exactly_the_predefined_variables() -> None:
    common = {
        "commit": "0" * 40,
        "message": "",
        "default_branch": "main",
        "pipeline_id": 1,
        "pipeline_iid": 1,
        "job_id": 1,
        "job_name": "job",
        "stage": "test",
        "project_dir": "/workspace",
        "project_name": "project",
        "project_path": "local/project",
        "repository_url": "",
        "source": "push",
    }
    defined: set[str] = set()
    for is_tag in (False, True):
        defined |= set(
            predefined(
                **common, ref="v1", is_tag=is_tag, node_index=1, node_total=2, job_status="success"
            )
        )
    assert first_cells(section(GITLAB, "Predefined variables")) == defined
