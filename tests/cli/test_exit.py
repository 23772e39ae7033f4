"""``cicd_cli.app._exit``: skipping interpreter teardown must not lose output, hooks or threads."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=60, check=False,
    )


def test_exit_fast_runs_exit_hooks_flushes_output_and_keeps_the_code() -> None:
    done = run_python(
        """
        import atexit, sys
        from cicd_cli.app import _exit
        atexit.register(lambda: print("hook ran"))
        sys.stdout.write("unflushed " * 1000)
        sys.stderr.write("to stderr")
        _exit(3)
        """
    )
    assert done.returncode == 3
    assert done.stdout == "unflushed " * 1000 + "hook ran\n"
    assert done.stderr == "to stderr"


def test_exit_waits_for_a_running_non_daemon_thread() -> None:
    done = run_python(
        """
        import threading, time
        from cicd_cli.app import _exit
        def work():
            time.sleep(0.5)
            print("thread finished", flush=True)
        threading.Thread(target=work).start()
        _exit(4)
        """
    )
    assert done.returncode == 4
    assert done.stdout == "thread finished\n"


def test_exit_with_prefect_loaded_exits_normally() -> None:
    # Prefect's own exit hooks and threads ship its last logs and states: no shortcut then
    done = run_python(
        """
        import sys, types
        sys.modules["prefect"] = types.ModuleType("prefect")  # stands for a loaded Prefect
        from cicd_cli.app import _exit
        try:
            _exit(5)
        except SystemExit:
            print("normal exit")
            raise
        """
    )
    assert done.returncode == 5
    assert done.stdout == "normal exit\n"
