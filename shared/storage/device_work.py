"""The device-work queue (`SCHEDULER_DEVICE_WORK_QUEUE`): the devices' calls, a chunk of devices
of one record bucket per message (`devices`), and the sweeps that end what is left (cancel,
abort, time limit), each message hidden until its time (a rollout's pacing is the messages'
visibility delays). A broadcast's start is a scheduler job (shared/broadcasts/starts.py);
`start` and `device` (one device each) messages are only read, from earlier versions.

Its own queue, not the attempts' one: a broadcast to 100,000 devices must not delay the
scheduler's jobs behind it. Messages are Base64 text like the attempts' (the host's default)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from azure.storage.queue.aio import QueueClient

from shared.storage.queue import MAX_VISIBILITY_SECONDS, create_if_missing, host_queue_client

START, DEVICE, DEVICES, SWEEP = "start", "device", "devices", "sweep"


@dataclass(frozen=True)
class WorkMessage:
    """What to do (`devices`, `sweep`; `start`, `device` from earlier versions) for which job
    and which devices at which attempt; the stored rows decide everything else, so a repeated
    or stale message does nothing."""

    action: str
    job_id: str
    device_id: str = ""
    attempt: int = 0
    devices: tuple[tuple[str, int], ...] = ()  # (device id, attempt) of a `devices` chunk

    @classmethod
    def chunk(cls, job_id: str, devices: Iterable[tuple[str, int]]) -> WorkMessage:
        return cls(DEVICES, job_id, devices=tuple(devices))

    def work(self) -> list[tuple[str, int]]:
        """The (device id, attempt) pairs this message asks for: a chunk's, or a `device`
        message's one."""
        if self.action == DEVICE:
            return [(self.device_id, self.attempt)]
        return list(self.devices)

    def to_json(self) -> str:
        body: dict[str, object] = {"v": 1, "do": self.action, "job": self.job_id}
        if self.action == DEVICES:
            body["devices"] = [[device_id, attempt] for device_id, attempt in self.devices]
        else:
            body.update(device=self.device_id, attempt=self.attempt)
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> WorkMessage:
        data = json.loads(text)
        return cls(
            str(data["do"]),
            str(data["job"]),
            str(data.get("device", "")),
            int(data.get("attempt", 0)),
            tuple((str(d), int(a)) for d, a in data.get("devices", [])),
        )


class DeviceWorkQueue:
    def __init__(self, client: QueueClient) -> None:
        self.client = client
        self._ready = False

    @classmethod
    def from_connection_string(cls, connection: str, queue_name: str) -> DeviceWorkQueue:
        return cls(host_queue_client(connection, queue_name))

    async def ensure(self) -> DeviceWorkQueue:
        if not self._ready:
            await create_if_missing(self.client)
            self._ready = True
        return self

    async def send(self, message: WorkMessage, *, due: datetime, now: datetime) -> None:
        """Hidden until `due` (whole seconds, rounded up so it never surfaces early)."""
        seconds = (due - now).total_seconds()
        delay = max(0, min(int(-(-seconds // 1)), MAX_VISIBILITY_SECONDS))
        await self.client.send_message(message.to_json(), visibility_timeout=delay, time_to_live=-1)

    async def close(self) -> None:
        await self.client.close()
