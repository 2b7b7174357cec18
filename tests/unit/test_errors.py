"""One exception tree: every exception the app defines derives from SchedulerError, and the
tree in shared/errors.py's docstring names each of them."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import shared
from shared import errors


def _app_exceptions() -> set[type[BaseException]]:
    found: set[type[BaseException]] = set()
    for module_info in pkgutil.walk_packages(shared.__path__, "shared."):
        module = importlib.import_module(module_info.name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__.startswith("shared."):
                found.add(value)
    return found


def test_every_app_exception_is_in_the_one_tree() -> None:
    outside = {
        e.__qualname__ for e in _app_exceptions() if not issubclass(e, errors.SchedulerError)
    }
    assert outside == set()


def test_the_tree_in_the_docstring_names_every_public_exception() -> None:
    doc = errors.__doc__ or ""
    public = {e.__name__ for e in _app_exceptions() if not e.__name__.startswith("_")}
    assert {name for name in public if name not in doc} == set()
