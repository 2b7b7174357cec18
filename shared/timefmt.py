"""The one textual form of instants in storage and messages: ISO-8601 UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def to_iso(instant: datetime) -> str:
    """`2026-11-21T10:53:26Z` (or `.123Z` when it has milliseconds); always a 4-digit year."""
    instant = instant.astimezone(UTC)
    text = f"{instant.year:04d}-{instant:%m-%dT%H:%M:%S}"
    if instant.microsecond:
        text += f".{instant.microsecond // 1000:03d}"
    return text + "Z"


def as_stored(instant: datetime) -> datetime:
    """The instant as `to_iso` keeps it (whole milliseconds), so a value written and read back
    compares equal to the one kept in memory."""
    return instant.replace(microsecond=instant.microsecond // 1000 * 1000)


def from_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def compact(instant: datetime) -> str:
    """A sortable key fragment: `20261121T105326Z` (second precision)."""
    instant = instant.astimezone(UTC)
    return f"{instant.year:04d}{instant:%m%dT%H%M%S}Z"


def epoch_ms(instant: datetime) -> int:
    return int(instant.timestamp() * 1000)
