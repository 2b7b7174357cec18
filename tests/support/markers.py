"""A pytest plugin that keeps the storage markers true: every test that reaches the session's
Azurite (through any fixture) is marked `integration` or `e2e`, and no test under a `unit`
directory reaches it. So `-m "not integration and not e2e"` runs without storage, and a new
test that forgets its marker fails the run at collection instead of silently lying."""

from __future__ import annotations

import pytest

AZURITE_FIXTURE = "azurite"
STORAGE_MARKERS = frozenset({"integration", "e2e"})


def marker_problems(items: list[pytest.Item]) -> list[str]:
    """One line per test whose markers do not say what it uses."""
    problems = []
    for item in items:
        uses_azurite = AZURITE_FIXTURE in getattr(item, "fixturenames", ())
        marked = {mark.name for mark in item.iter_markers()} & STORAGE_MARKERS
        if "unit" in item.path.relative_to(item.config.rootpath).parts[:-1]:
            if uses_azurite:
                problems.append(f"{item.nodeid}: a unit test must not use Azurite")
            elif marked:
                problems.append(f"{item.nodeid}: a unit test marked {', '.join(sorted(marked))}")
        elif uses_azurite and not marked:
            problems.append(f"{item.nodeid}: uses Azurite but is not marked integration or e2e")
    return problems


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    problems = marker_problems(items)
    if problems:
        raise pytest.UsageError("Test markers that do not match:\n" + "\n".join(problems))
