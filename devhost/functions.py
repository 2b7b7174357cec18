"""Find the functions to run, from the app object only (`app.get_functions()`), like the host.

Each function's trigger comes from its function.json (`get_function_json()`), with `%NAME%`
expressions resolved from the app settings, so devhost cannot drift from `function_app.py`.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devhost.settings import is_disabled, resolve

logger = logging.getLogger(__name__)

HTTP_TRIGGER = "httpTrigger"
TIMER_TRIGGER = "timerTrigger"
QUEUE_TRIGGER = "queueTrigger"
SUPPORTED_TRIGGERS = (HTTP_TRIGGER, TIMER_TRIGGER, QUEUE_TRIGGER)


@dataclass(frozen=True)
class FunctionSpec:
    """One registered function: its trigger binding (settings resolved) and the user's callable."""

    name: str
    trigger: Mapping[str, Any]
    user_function: Callable[..., Any]
    directory: Path

    @property
    def trigger_type(self) -> str:
        return str(self.trigger["type"])

    @property
    def arg_name(self) -> str:
        return str(self.trigger["name"])

    @property
    def wants_context(self) -> bool:
        """The worker passes an invocation context to a parameter named `context`."""
        return "context" in inspect.signature(self.user_function).parameters


def load_app(app_path: str) -> Any:
    """Import "module:attribute" (the caller puts the project directory on sys.path)."""
    module_name, _, attribute = app_path.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attribute or "app")


# get_functions() works once per app object (its duplicate-name check remembers the earlier
# call); the worker indexes once per process, but tests start many hosts in one process.
_INDEXED: weakref.WeakKeyDictionary[Any, list[Any]] = weakref.WeakKeyDictionary()


def _functions_of(app: Any) -> list[Any]:
    if app not in _INDEXED:
        _INDEXED[app] = app.get_functions()
    return _INDEXED[app]


def discover(app: Any, settings: Mapping[str, str], directory: Path) -> list[FunctionSpec]:
    """The enabled functions devhost can run; others are logged and skipped, never silently."""
    specs = []
    for function in _functions_of(app):
        name = str(function.get_function_name())
        if is_disabled(name, settings):
            logger.info("Function %s is disabled by AzureWebJobs.%s.Disabled", name, name)
            continue
        bindings = json.loads(function.get_function_json())["bindings"]
        trigger = next(b for b in bindings if str(b["type"]).endswith("Trigger"))
        unsupported = [
            b["type"]
            for b in bindings
            if b is not trigger and (b["type"], b["name"]) != ("http", "$return")
        ]
        if trigger["type"] not in SUPPORTED_TRIGGERS or unsupported:
            logger.warning(
                "Function %s is NOT run by devhost: bindings %s are not supported",
                name,
                [trigger["type"], *unsupported],
            )
            continue
        try:
            resolved = {
                key: resolve(value, settings) if isinstance(value, str) else value
                for key, value in trigger.items()
            }
        except LookupError as error:
            raise LookupError(f"function {name}: {error}") from error
        specs.append(FunctionSpec(name, resolved, function.get_user_function(), directory))
    return specs
