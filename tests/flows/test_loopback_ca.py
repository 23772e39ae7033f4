"""Prefect clients of cicd's local server load one CA certificate, not the bundle
(flows/prefect_api.py:loopback_ca_file): each client builds a TLS context at creation, which
with the whole certifi bundle cost ~37 ms of CPU per task run for a plain-HTTP loopback API.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import textwrap
from pathlib import Path

import certifi

from flows.prefect_api import loopback_ca_file, stop_local_server

BEGIN = "-----BEGIN CERTIFICATE-----"

# configure_prefect, then a Prefect client as a task run makes one: which CA file, how many CAs
_PROBE = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from flows.prefect_api import configure_prefect
    url = configure_prefect(Path(sys.argv[1]))
    import os, ssl
    from prefect.client.orchestration import get_client
    client = get_client()
    pool = client._client._transport._pool
    print(json.dumps({
        "url": url,
        "file": os.environ.get("PREFECT_API_SSL_CERT_FILE"),
        "cas": pool._ssl_context.cert_store_stats()["x509_ca"],
    }))
""")


def _probe(home: Path, **env: str) -> dict:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PREFECT_API_URL", "PREFECT_HOME", "PREFECT_API_AUTH_STRING")
        and not k.startswith("PREFECT_API_SSL")
    }
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(home)],
        env={**clean, "CICD_HOME": str(home), **env},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_loopback_ca_file_holds_the_bundles_first_certificate(tmp_path: Path) -> None:
    path = loopback_ca_file(tmp_path)
    text = path.read_text()
    assert text.count(BEGIN) == 1
    assert text.strip() in Path(certifi.where()).read_text()
    assert ssl.create_default_context(cafile=str(path)).cert_store_stats()["x509_ca"] == 1
    before = path.stat().st_mtime_ns
    assert loopback_ca_file(tmp_path) == path and path.stat().st_mtime_ns == before  # made once
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no partial file left


def test_loopback_ca_prefect_client_of_local_server_loads_one_certificate(tmp_path: Path) -> None:
    home = tmp_path / "home"
    try:
        found = _probe(home)
        assert found["url"].startswith("http://127.0.0.1:")
        assert found["file"] == str(home / "prefect" / "loopback-ca.pem")
        assert found["cas"] == 1
        # a CA file the user chose is kept
        mine = tmp_path / "mine.pem"
        mine.write_text(Path(certifi.where()).read_text())
        kept = _probe(home, PREFECT_API_SSL_CERT_FILE=str(mine))
        assert kept["file"] == str(mine) and kept["cas"] > 100
    finally:
        stop_local_server(home)


def test_loopback_ca_prefect_api_given_by_user_is_left_alone(tmp_path: Path) -> None:
    """A Prefect API cicd did not start (maybe HTTPS) keeps Prefect's own CA bundle."""
    found = _probe(tmp_path / "home", PREFECT_API_URL="https://prefect.example.invalid/api")
    assert found["file"] is None and found["cas"] > 100
    assert not (tmp_path / "home" / "prefect" / "loopback-ca.pem").exists()
