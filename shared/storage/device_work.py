"""The device-work queue (`SCHEDULER_DEVICE_WORK_QUEUE`): each device's call and the sweeps that
end what is left (cancel, abort, time limit), one message each, hidden until its time (a
rollout's pacing is the messages' visibility delays). A broadcast's start is a scheduler job
(shared/broadcasts/starts.py); `start` messages are only read, from earlier versions.

Its own queue, not the attempts' one: a broadcast to 100,000 devices must not delay the
scheduler's jobs behind it. Messages are Base64 text like the attempts' (the host's default)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import TextBase64DecodePolicy, TextBase64EncodePolicy
from azure.storage.queue.aio import QueueClient

from shared.storage.queue import MAX_VISIBILITY_SECONDS

START, DEVICE, SWEEP = "start", "device", "sweep"


@dataclass(frozen=True)
class WorkMessage:
    """What to do (`start`, `device`, `sweep`) for which job, device and attempt; the stored
    rows decide everything else, so a repeated or stale message does nothing."""

    action: str
    job_id: str
    device_id: str = ""
    attempt: int = 0

    def to_json(self) -> str:
        return json.dumps(
            {
                "v": 1,
                "do": self.action,
                "job": self.job_id,
                "device": self.device_id,
                "attempt": self.attempt,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> WorkMessage:
        data = json.loads(text)
        return cls(
            str(data["do"]),
            str(data["job"]),
            str(data.get("device", "")),
            int(data.get("attempt", 0)),
        )


class DeviceWorkQueue:
    def __init__(self, client: QueueClient) -> None:
        self.client = client
        self._ready = False

    @classmethod
    def from_connection_string(cls, connection: str, queue_name: str) -> DeviceWorkQueue:
        return cls(
            QueueClient.from_connection_string(
                connection,
                queue_name,
                message_encode_policy=TextBase64EncodePolicy(),
                message_decode_policy=TextBase64DecodePolicy(),
            )
        )

    async def ensure(self) -> DeviceWorkQueue:
        if not self._ready:
            try:
                await self.client.create_queue()
            except ResourceExistsError:
                pass
            self._ready = True
        return self

    async def send(self, message: WorkMessage, *, due: datetime, now: datetime) -> None:
        """Hidden until `due` (whole seconds, rounded up so it never surfaces early)."""
        seconds = (due - now).total_seconds()
        delay = max(0, min(int(-(-seconds // 1)), MAX_VISIBILITY_SECONDS))
        await self.client.send_message(message.to_json(), visibility_timeout=delay, time_to_live=-1)

    async def close(self) -> None:
        await self.client.close()
