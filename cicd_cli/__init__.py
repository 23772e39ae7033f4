"""The ``cicd`` command line: thin commands that parse arguments, call the backend and render."""

import sys

__version__ = "0.1.0"

# httpx imports its own command line (click, pygments, rich.progress: ~60 ms, 40 modules) at
# ``import httpx`` whenever those are installed, as Prefect's and rich's dependencies make
# them; cicd never runs it. A None entry makes that optional import fail as if they were
# missing, and httpx falls back to a stub ``httpx.main``. Nothing else changes in httpx.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
