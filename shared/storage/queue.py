"""The executions queue: one message per attempt, made visible at the second it is due.

Messages are Base64 text, the Functions host's default `messageEncoding`, so the queue trigger
reads them under `func start`, in Azure and in the local host alike.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import TextBase64DecodePolicy, TextBase64EncodePolicy
from azure.storage.queue.aio import QueueClient

from shared.model.job import ActionName

MESSAGE_VERSION = 1
# Queue storage caps a message's invisibility at 7 days; longer waits are re-sent on arrival.
MAX_VISIBILITY_SECONDS = 7 * 24 * 3600 - 60
# How early a message may surface; the executor holds it until its exact second. A crowded
# second's messages surface earlier still (shared/engine/lead.py `early_arrival`), never more
# than MAX_EARLY_SECONDS early.
EARLY_ARRIVAL_SECONDS = 1
MAX_EARLY_SECONDS = 120


@dataclass(frozen=True)
class AttemptMessage:
    """Points at one attempt of one run: the executor re-reads everything else from the store."""

    collection: str
    run_key: str
    phase: ActionName
    attempt: int

    def to_json(self) -> str:
        return json.dumps(
            {
                "v": MESSAGE_VERSION,
                "collection": self.collection,
                "run": self.run_key,
                "phase": self.phase.value,
                "attempt": self.attempt,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> AttemptMessage:
        data = json.loads(text)
        return cls(
            collection=data["collection"],
            run_key=data["run"],
            phase=ActionName(data["phase"]),
            attempt=int(data["attempt"]),
        )

    @property
    def step(self) -> tuple[int, int]:
        return (0 if self.phase is ActionName.MAIN_ACTION else 1, self.attempt)


def visibility_delay(due: datetime, now: datetime, early: int = EARLY_ARRIVAL_SECONDS) -> int:
    """Whole seconds to hide a message so it surfaces `early` to `early` + 1 seconds before
    `due`: polling then has that long to pick it up, and the executor waits out the rest to
    hit the second."""
    seconds = math.floor((due - now).total_seconds()) - early
    return max(0, min(seconds, MAX_VISIBILITY_SECONDS))


def host_queue_client(connection: str, queue_name: str) -> QueueClient:
    """A client for a queue a Functions trigger reads: Base64 text, the host's default encoding."""
    return QueueClient.from_connection_string(
        connection,
        queue_name,
        message_encode_policy=TextBase64EncodePolicy(),
        message_decode_policy=TextBase64DecodePolicy(),
    )


async def create_if_missing(client: QueueClient) -> None:
    try:
        await client.create_queue()
    except ResourceExistsError:
        pass


class AttemptQueue:
    def __init__(self, client: QueueClient, connection: str = "") -> None:
        self._client = client
        self._connection = connection
        self._ready = False

    @classmethod
    def from_connection_string(cls, connection: str, queue_name: str) -> AttemptQueue:
        return cls(host_queue_client(connection, queue_name), connection)

    @property
    def name(self) -> str:
        return self._client.queue_name

    @property
    def client(self) -> QueueClient:
        return self._client

    async def ensure(self) -> None:
        if not self._ready:
            await create_if_missing(self._client)
            self._ready = True

    async def send(
        self,
        message: AttemptMessage,
        *,
        due: datetime,
        now: datetime,
        early: int = EARLY_ARRIVAL_SECONDS,
    ) -> None:
        """Hidden until `early` seconds (and up to one more) before `due`."""
        await self._client.send_message(
            message.to_json(),
            visibility_timeout=visibility_delay(due, now, early),
            time_to_live=-1,
        )

    async def depths(self) -> tuple[int, int]:
        """Approximate message counts of this queue and of its poison queue (`<name>-poison`,
        where the Functions host moves a message after its fifth failed delivery)."""
        own = await self._client.get_queue_properties()
        poison = QueueClient.from_connection_string(
            self._connection, f"{self._client.queue_name}-poison"
        )
        async with poison:
            try:
                poisoned = (await poison.get_queue_properties()).approximate_message_count or 0
            except ResourceNotFoundError:
                poisoned = 0
        return own.approximate_message_count or 0, poisoned

    async def close(self) -> None:
        await self._client.close()
