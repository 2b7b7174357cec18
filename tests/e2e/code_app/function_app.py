"""The app as a user extends it: the project's function_app, and the user's handlers module
imported next to it so they are registered before the first job runs (README "Code jobs")."""

from __future__ import annotations

from function_app import app
from tests.e2e.code_app import jobs

__all__ = ["app", "jobs"]
