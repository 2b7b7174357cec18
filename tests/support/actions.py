"""Typed access to the payload of an action of a known kind, for assertions."""

from __future__ import annotations

from shared.kinds.http.model import HttpRequest
from shared.kinds.storage_queue import StorageQueueMessage
from shared.model.actions import JobErrorAction


def request_of(action: JobErrorAction) -> HttpRequest:
    """The `request` of an Http/Https action (fails the test for any other kind)."""
    request = action.payload_as(HttpRequest)
    assert request is not None, action
    return request


def queue_message_of(action: JobErrorAction) -> StorageQueueMessage:
    """The `queueMessage` of a StorageQueue action (fails the test for any other kind)."""
    message = action.payload_as(StorageQueueMessage)
    assert message is not None, action
    return message
