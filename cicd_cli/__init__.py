"""The ``cicd`` command line: thin commands that parse arguments, call the backend and render."""

__version__ = "0.1.0"
