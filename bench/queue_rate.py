"""(b) The yardstick for the dispatch rate: how fast the same Azurite accepts plain queue sends
from one client, with the dispatcher's concurrency and with one message in flight."""

from __future__ import annotations

from azure.storage.queue import TextBase64EncodePolicy
from azure.storage.queue.aio import QueueClient

from bench.util import CpuMeter, CpuSample, bounded, unique_name
from shared.model.job import ActionName
from shared.storage.queue import AttemptMessage

MESSAGES = 1_000
WARM_UP = 32

# A message of the dispatcher's size and shape.
BODY = AttemptMessage("due", "run|due-0001|1|20261122T000000Z", ActionName.MAIN_ACTION, 0).to_json()


async def plain_sends(connection: str, in_flight: int, meter: CpuMeter) -> CpuSample:
    """Wall and CPU time to send MESSAGES messages through one warmed-up client, `in_flight`
    at once, encoded and without expiry like the executions queue's messages."""
    client = QueueClient.from_connection_string(
        connection, unique_name("plain"), message_encode_policy=TextBase64EncodePolicy()
    )
    async with client:
        await client.create_queue()
        await bounded(in_flight, (client.send_message(BODY) for _ in range(WARM_UP)))
        with meter.measure() as sample:
            await bounded(
                in_flight,
                (client.send_message(BODY, time_to_live=-1) for _ in range(MESSAGES)),
            )
    # The queue is left in place: deleting messages makes Azurite's in-memory queue GC re-sort
    # its extent index once per deleted message a minute later, stalling every request.
    return sample
