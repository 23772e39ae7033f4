"""The cicd backend: pipeline model, runner, store, service and API."""
