"""``artifacts: reports: junit`` end to end: real containers write JUnit files, ``cicd run``,
``cicd report`` (text and JSON) and a real ``cicd server``'s API show what they counted; hostile
files (an entity bomb, an external entity, an oversized file, a link out) are one warning line
each and never crash the run (issue 10, item 2).
"""

from __future__ import annotations

import re
import signal
import subprocess
import textwrap
import time

import httpx
import pytest
from e2ekit import BUSYBOX, CICD, Project, jobs
from prockit import free_port, stop_group

pytestmark = pytest.mark.docker

UNIT_XML = """\
<?xml version="1.0" encoding="UTF-8"?>
<testsuites>
  <testsuite name="math" tests="3">
    <testcase classname="tests.test_math" name="test_add" time="0.01"/>
    <testcase classname="tests.test_math" name="test_div" time="0.02">
      <failure message="ZeroDivisionError">Traceback ...</failure>
    </testcase>
    <testcase classname="tests.test_math" name="test_sub" time="0.03"/>
  </testsuite>
</testsuites>
"""

BOMB_XML = """\
<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<testsuite><testcase name="&lol4;"/></testsuite>
"""

XXE_XML = """\
<?xml version="1.0"?>
<!DOCTYPE testsuite [<!ENTITY leak SYSTEM "file:///etc/passwd">]>
<testsuite><testcase name="&leak;"><failure/></testcase></testsuite>
"""

GITLAB_CI = f"""
stages: [test]
default:
  image: {BUSYBOX}
unit:
  stage: test
  allow_failure: true
  script:
    - mkdir -p reports
    - cp fixtures/unit.xml reports/unit.xml
    - echo "1 failed, 2 passed"
    - exit 1
  artifacts:
    reports:
      junit: reports/*.xml
hostile:
  stage: test
  script:
    - mkdir -p out
    - cp fixtures/bomb.xml fixtures/xxe.xml out/
    - dd if=/dev/zero of=out/huge.xml bs=1048576 count=11 2>/dev/null
    - ln -s /etc/passwd out/passwd.xml
  artifacts:
    reports:
      junit: [out/*.xml, missing.xml]
plain:
  stage: test
  script: echo no reports
"""

UNIT_TESTS = {
    "total": 3,
    "failed": 1,
    "errors": 0,
    "skipped": 0,
    "time": 0.06,
    "failed_names": ["tests.test_math.test_div"],
}


@pytest.fixture
def project(project: Project) -> Project:
    """The session's project with GITLAB_CI and its JUnit fixtures committed."""
    project.commit(
        {
            ".gitlab-ci.yml": textwrap.dedent(GITLAB_CI).lstrip("\n"),
            "fixtures/unit.xml": UNIT_XML,
            "fixtures/bomb.xml": BOMB_XML,
            "fixtures/xxe.xml": XXE_XML,
        }
    )
    return project


def _cells(lines: list[str]) -> dict[str, list[str]]:
    """Each table row's cells by its first cell (the last row of a name wins)."""
    rows = [
        [cell.strip() for cell in re.split("[│┃]", line)]
        for line in lines
        if " | " not in line and ("│" in line or "┃" in line)
    ]
    return {row[0]: row for row in rows}


def test_reports_junit_run_report_and_json_show_the_counts(project: Project) -> None:
    started = time.monotonic()
    out = project.run("-f", ".gitlab-ci.yml")
    assert out.returncode == 0, out.stdout + out.stderr  # unit's failure is allowed
    assert time.monotonic() - started < 60  # the bomb was not expanded

    unit = out.job_lines("unit")
    assert "cicd: junit report: 3 tests, 1 failed, 0 errors, 0 skipped" in unit
    assert unit[-1] == "FAILED (exit code 1): allowed to fail"
    hostile = out.job_lines("hostile")
    warnings = sorted(line for line in hostile if line.startswith("cicd: junit report"))
    assert warnings == [
        "cicd: junit report: warning: 'out/bomb.xml' ignored: refused: DTDForbidden "
        "(DTDs and entities are not allowed)",
        "cicd: junit report: warning: 'out/huge.xml' ignored: it is larger than 10 MiB",
        "cicd: junit report: warning: 'out/passwd.xml' is a symlink out of the workspace; skipped",
        "cicd: junit report: warning: 'out/xxe.xml' ignored: refused: DTDForbidden "
        "(DTDs and entities are not allowed)",
        "cicd: junit report: warning: pattern 'missing.xml' matched no files",
    ]
    assert hostile[-1] == "SUCCESS (exit code 0)"
    summary = _cells(out.lines)
    assert summary["unit"][1:3] == ["test", "FAILED (allowed)"]
    assert summary["unit"][-1] == "3 tests, 1 failed"
    assert summary["plain"][-1] == ""

    report = project.report("repo", 1)
    found = jobs(report)
    assert found["unit"]["tests"] == UNIT_TESTS
    assert (found["unit"]["status"], found["unit"]["allowed"]) == ("FAILED", True)
    assert found["hostile"]["tests"] is None  # nothing it left could be read
    assert found["plain"]["tests"] is None

    text = project.cicd("report", "-p", "repo", "--run", "1")
    assert text.returncode == 0, text.stderr
    rows = _cells(text.lines)
    assert rows["unit"][1] == "FAILED (allowed)"
    assert rows["unit"][-1] == "3 tests, 1 failed"
    one = project.cicd("report", "-p", "repo", "--run", "1", "--job", "unit")
    assert "failed: tests.test_math.test_div" in one.lines[-1]
    assert any(line.split() == ["tests", "3", "tests,", "1", "failed"] for line in one.lines)


def test_reports_junit_api_job_json_has_tests(project: Project) -> None:
    out = project.run("-f", ".gitlab-ci.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    port = free_port()
    server = subprocess.Popen(
        [str(CICD), "server", "--port", str(port)],
        env=project.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/api/v1"
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stdout.read() if server.stdout else b""
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "cicd server did not answer"
            time.sleep(0.2)
        token = (project.home / "server" / "token").read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}
        job = httpx.get(f"{url}/runs/repo/1/jobs/unit", headers=headers, timeout=10)
        plain = httpx.get(f"{url}/runs/repo/1/jobs/plain", headers=headers, timeout=10)
        run = httpx.get(f"{url}/runs/repo/1", headers=headers, timeout=10)
        schema = httpx.get(f"http://127.0.0.1:{port}/openapi.json", headers=headers, timeout=10)
    finally:
        stop_group(server, signal.SIGTERM)
    assert (job.status_code, plain.status_code, run.status_code) == (200, 200, 200)
    assert job.json()["tests"] == UNIT_TESTS
    assert (job.json()["status"], job.json()["allowed"]) == ("FAILED", True)
    assert plain.json()["tests"] is None
    assert jobs(run.json())["unit"]["tests"] == UNIT_TESTS
    described = schema.json()["components"]["schemas"]["JobRunPublic"]["properties"]
    assert "null when it left no report" in str(described["tests"])


NATIVE = f"""\
pipeline: {{name: native, image: {BUSYBOX}}}
jobs:
  - name: unit
    stage: test
    script: ["mkdir -p out", "cp fixtures/unit.xml out/unit.xml"]
    artifacts: {{paths: [out/], reports: {{junit: ["out/*.xml"]}}}}
"""


def test_reports_junit_native_format_reads_them_too(project: Project) -> None:
    project.commit({".pipelines/native.yaml": NATIVE})
    out = project.run("-p", "native")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "cicd: junit report: 3 tests, 1 failed, 0 errors, 0 skipped" in out.job_lines("unit")
    assert jobs(project.report("native", 1))["unit"]["tests"] == UNIT_TESTS
