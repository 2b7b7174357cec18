"""Shared fixtures: one private in-memory Azurite per test session, unique names per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from devhost.azurite import Azurite, start_azurite


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """A private Azurite on free ports, stopped by its pid when the session ends."""
    instance = start_azurite()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def storage_connection(azurite: Azurite) -> str:
    return azurite.connection_string


@pytest.fixture
def unique_name() -> str:
    """A short name unique to this test, valid for tables (alphanumeric) and queues (lowercase)."""
    return "t" + uuid.uuid4().hex[:12]


# Collection fails if a test's storage markers do not match what it uses.
from tests.support.markers import pytest_collection_modifyitems  # noqa: E402, F401
