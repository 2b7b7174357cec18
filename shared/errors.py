"""Domain errors.

SchedulerError
 ├── NotFound            a collection, job or run that does not exist
 ├── Conflict            a write that lost a race (ETag mismatch, row already there)
 └── InvalidRequest      input refused, with the field it is about (-> HTTP 400)
"""

from __future__ import annotations


class SchedulerError(Exception):
    pass


class NotFound(SchedulerError):
    pass


class Conflict(SchedulerError):
    """Another writer changed the row first; re-read and decide again."""


class InvalidRequest(SchedulerError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
