"""Processes cicd starts and watches: whether one still runs, and what environment it gets.

Shared by the daemon, the local Prefect server and run settling.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def pid_running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (a killed child nobody reaped).

    A zombie counts as gone: where PID 1 never reaps, a killed daemon or server would otherwise
    look alive for ever.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): trust kill(0)
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


# What a background process cicd starts (the local daemon, the local Prefect server) inherits
# from the command that happened to start it. That command's environment may hold secrets
# (`cicd run --secret TOKEN` reads TOKEN from it; CI systems export DOCKER_PASSWORD and the like)
# which would then sit in the long-lived process's /proc/<pid>/environ for hours; secrets travel
# in the run request instead. Only what configures cicd, Prefect, Docker, git, Python, the
# locale, proxies and certificates is passed on, by name: a prefix like DOCKER_ would let secrets
# by (values, not paths to them: an agent socket or a CA file is named, never its content).
INHERITED_NAMES = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP",
    "VIRTUAL_ENV", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
    "http_proxy", "https_proxy", "no_proxy", "all_proxy",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
    # what the docker SDK reads (and the folder of registry logins, not the logins themselves)
    "DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONFIG", "DOCKER_CONTEXT",
    "PYTHONPATH", "PYTHONHOME", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PYTHONWARNINGS",
    "PYTHONUTF8", "PYTHONIOENCODING", "PYTHONPYCACHEPREFIX", "PYTHONSAFEPATH", "PYTHONNOUSERSITE",
    # git, when the daemon fetches a repository: where the ssh agent and certificates are
    "SSH_AUTH_SOCK", "GIT_SSH", "GIT_SSH_COMMAND", "GIT_SSL_CAINFO", "GIT_SSL_CAPATH",
    # cicd's own settings outside ``Settings``
    "CICD_DAEMON", "CICD_DAEMON_IDLE_TIMEOUT", "CICD_HEAD_TIMEOUT", "CICD_KEEP_ALIVE",
    "CICD_MAX_CONNECTIONS", "CICD_GIT_TIMEOUT",
})
# Prefect's settings (PREFECT_API_KEY included: the daemon needs it to reach a given Prefect API)
INHERITED_PREFIXES = ("LC_", "PREFECT_", "XDG_")
# a server's own token is given to it explicitly; a client's CICD_SERVER means nothing to it
NOT_INHERITED = frozenset({"CICD_API_TOKEN", "CICD_SERVER"})


def _settings_names() -> frozenset[str]:
    from backend.settings import Settings

    prefix = str(Settings.model_config.get("env_prefix", "CICD_"))
    return frozenset(f"{prefix}{name}".upper() for name in Settings.model_fields)


def background_env(environ: Mapping[str, str], **extra: str) -> dict[str, str]:
    """The environment for a background process: the allow-listed part of ``environ``, + ``extra``.

    Allowed: ``INHERITED_NAMES``, the ``CICD_*`` variables of ``backend.settings.Settings``, and
    names starting with ``INHERITED_PREFIXES`` (``PREFECT_*``, ``LC_*``, ``XDG_*``), except
    ``NOT_INHERITED``.
    """
    allowed = INHERITED_NAMES | _settings_names()
    env = {
        name: value
        for name, value in environ.items()
        if (name in allowed or name.startswith(INHERITED_PREFIXES)) and name not in NOT_INHERITED
    }
    env.update(extra)
    return env
