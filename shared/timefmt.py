"""The one textual form of instants in storage and messages: ISO-8601 UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def to_iso(instant: datetime) -> str:
    """`2026-11-21T10:53:26Z` (or `.123Z` when it has milliseconds)."""
    instant = instant.astimezone(UTC)
    if instant.microsecond:
        return instant.strftime("%Y-%m-%dT%H:%M:%S.") + f"{instant.microsecond // 1000:03d}Z"
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def from_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def compact(instant: datetime) -> str:
    """A sortable key fragment: `20261121T105326Z` (second precision)."""
    return instant.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def epoch_ms(instant: datetime) -> int:
    return int(instant.timestamp() * 1000)
