"""Action runners: carry out a job's action (HTTP request, queue message) and report an outcome."""

from __future__ import annotations

from shared.actions.base import ActionContext, ActionOutcome, ActionRunner
from shared.actions.registry import Runners

__all__ = ["ActionContext", "ActionOutcome", "ActionRunner", "Runners"]
