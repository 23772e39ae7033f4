"""The local Prefect server's process: ``python -m flows.prefect_server --host H --port P``.

What ``prefect server start`` does in the foreground (one uvicorn worker serving Prefect's app
with its services, settings from the environment), without loading Prefect's command line
first: a cold start waits for this process, and the CLI's own imports cost ~0.5 s of it.
``flows.prefect_api`` starts it with the environment it needs.
"""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> None:
    """Serve Prefect's API, UI and services on ``--host``/``--port`` until stopped."""
    parser = argparse.ArgumentParser(prog="python -m flows.prefect_server")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)

    import uvicorn
    from prefect.server.api.server import create_app
    from prefect.settings import get_current_settings

    settings = get_current_settings().server
    uvicorn.run(
        app=create_app(final=True),
        host=args.host,
        port=args.port,
        timeout_keep_alive=settings.api.keepalive_timeout,
        ws_ping_interval=settings.api.websocket_ping_interval,
        ws_ping_timeout=settings.api.websocket_ping_timeout,
        log_level=settings.logging_level.lower(),
    )


if __name__ == "__main__":
    main()
