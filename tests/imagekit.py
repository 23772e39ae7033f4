"""Local test images made from the busybox test image, and removed after."""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import Iterator


@contextlib.contextmanager
def image_with_user(base: str, user: str = "1000:1000") -> Iterator[str]:
    """``base`` with ``USER user``, as many published images run; removed on the way out."""
    name = f"cicd-test-user:{uuid.uuid4().hex[:8]}"
    made = subprocess.run(
        ["docker", "create", base, "true"], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        subprocess.run(
            ["docker", "commit", "--change", f"USER {user}", made, name],
            capture_output=True,
            check=True,
        )
    finally:
        subprocess.run(["docker", "rm", "-f", made], capture_output=True, check=False)
    try:
        yield name
    finally:
        subprocess.run(["docker", "rmi", "-f", name], capture_output=True, check=False)
