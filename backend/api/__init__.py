"""The cicd HTTP API: FastAPI under ``/api/v1``, one routes module per resource.

``create_app(service, settings)`` builds the application; ``cicd server`` serves it with uvicorn.
Routes hold no logic: they call the ``Service`` (history, cancel) or the ``RunLauncher`` (submit
and execute in the background) and map the error tree to HTTP statuses.
"""

from backend.api.app import API_PREFIX, create_app

__all__ = ["API_PREFIX", "create_app"]
