"""A job's resources, needs and JUnit summary in the API's job JSON, over real HTTP."""

from __future__ import annotations

from collections.abc import Callable

from apikit import Api

from backend.schemas import JobTestsPublic
from backend.store.records import JobSpec


def test_job_json_has_usage_needs_and_junit(start_api: Callable[..., Api]) -> None:
    api = start_api()
    store = api.service.store
    run_id, _ = store.create_run(
        "demo",
        [("test", [JobSpec("lint", "bb", False), JobSpec("unit", "py", False, needs=["lint"])])],
        repo="r", branch="main", commit="c", file="f", request_key="k",
    )  # fmt: skip
    store.set_job(run_id, "unit", memory_peak_bytes=126_001_152, cpu_seconds=1.25)
    store.set_job_tests(
        run_id, "unit",
        JobTestsPublic(total=5, failed=1, errors=1, skipped=1, time=0.5,
                       failed_names=["t.a", "t.b"]),
    )  # fmt: skip

    with api.client() as client:
        job = client.get("/runs/demo/1/jobs/unit").json()
        document = client.get(api.url + "/openapi.json").json()
    described = document["components"]["schemas"]["JobRunPublic"]

    assert {key: job[key] for key in ("memory_peak_bytes", "cpu_seconds", "needs", "junit")} == {
        "memory_peak_bytes": 126_001_152,
        "cpu_seconds": 1.25,
        "needs": ["lint"],
        "junit": {"tests": 5, "passed": 2, "failed": 1, "errors": 1, "skipped": 1,
                  "failed_names": ["t.a", "t.b"]},
    }  # fmt: skip
    assert "peak memory" in described["properties"]["memory_peak_bytes"]["description"]
    assert api.backend().job("demo", 1, "lint").needs is None
