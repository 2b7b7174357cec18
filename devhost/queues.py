"""Poll a storage queue for a queue-trigger function with the host's `extensions.queues` rules.

- Fetch `batchSize` messages; fetch again once `newBatchThreshold` or fewer are still running.
- Empty queue: randomised exponential back-off from 100 ms up to `maxPollingInterval`;
  messages found: poll again at once.
- Received messages stay invisible for 10 minutes while they run (not renewed).
- Success deletes the message. Failure makes it visible again after `visibilityTimeout`, or,
  once it has been dequeued `maxDequeueCount` times, moves it to `<queue>-poison`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import math
import random

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.functions.queue import QueueMessage as FunctionQueueMessage
from azure.storage.queue import QueueMessage
from azure.storage.queue.aio import QueueClient

from devhost.functions import FunctionSpec
from devhost.host_config import QueueOptions
from devhost.invoker import Outcome, invoke
from devhost.timers import wait_or_stop

logger = logging.getLogger(__name__)

# How long a received message stays hidden while its function runs (the host's value).
RUNNING_VISIBILITY_SECONDS = 600
MIN_POLLING_INTERVAL = 0.1


class Backoff:
    """The host's RandomizedExponentialBackoffStrategy: min + 2^(n-1) * min * (0.8..1.2)."""

    def __init__(self, minimum: float, maximum: float) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.reset()

    def reset(self) -> None:
        self.current = self.minimum
        self._exponent = 1

    def next_delay(self) -> float:
        """The wait after a poll that found nothing."""
        if self.current < self.maximum:
            increment = random.uniform(0.8, 1.2) * 2 ** (self._exponent - 1) * self.minimum
            candidate = self.minimum + increment
            if candidate < self.maximum:
                self.current = candidate
                self._exponent += 1
            else:
                self.current = self.maximum
        return self.current


def decode_body(content: str, encoding: str) -> bytes:
    if encoding == "none":
        return content.encode("utf-8")
    try:
        return base64.b64decode(content, validate=True)
    except binascii.Error as error:
        raise ValueError(
            "message is not base64: send it with TextBase64EncodePolicy or set "
            "extensions.queues.messageEncoding to 'none' in host.json"
        ) from error


def to_function_message(message: QueueMessage, body: bytes) -> FunctionQueueMessage:
    """The worker's QueueMessage class: `func.QueueMessage` itself has no dequeue_count etc."""
    return FunctionQueueMessage(  # type: ignore[no-untyped-call]  # the library's __init__ is untyped
        id=message.id,
        body=body,
        dequeue_count=message.dequeue_count,
        insertion_time=message.inserted_on,
        expiration_time=message.expires_on,
        pop_receipt=message.pop_receipt,
        time_next_visible=message.next_visible_on,
    )


class QueueListener:
    def __init__(self, spec: FunctionSpec, connection_string: str, options: QueueOptions) -> None:
        self.spec = spec
        self.options = options
        self.queue_name = str(spec.trigger["queueName"])
        self._queue = QueueClient.from_connection_string(connection_string, self.queue_name)
        self._poison = QueueClient.from_connection_string(
            connection_string, f"{self.queue_name}-poison"
        )
        self._running: set[asyncio.Task[None]] = set()

    async def create_queue(self) -> None:
        """Create the queue if missing (the host does, so senders can start at once).

        No SDK retries here: its default back-off would hang start-up for over a minute
        when storage is not running.
        """
        try:
            await self._queue.create_queue(retry_total=0)
        except ResourceExistsError:
            pass
        except AzureError as error:
            raise RuntimeError(
                f"function {self.spec.name}: cannot create queue {self.queue_name!r} at "
                f"{self._queue.url} ({error.__class__.__name__}). Is Azurite running? "
                "(`make run` / `python -m devhost --with-azurite` starts one)"
            ) from None

    async def run(self, stopping: asyncio.Event) -> None:
        """Poll until `stopping` is set, then let the running invocations finish."""
        backoff = Backoff(MIN_POLLING_INTERVAL, self.options.max_polling_interval.total_seconds())
        try:
            while not stopping.is_set():
                while len(self._running) > self.options.threshold:
                    await asyncio.wait(self._running, return_when=asyncio.FIRST_COMPLETED)
                if stopping.is_set():
                    break
                try:
                    messages = await self._receive_batch()
                except Exception as error:
                    logger.warning("Polling queue %s failed: %r", self.queue_name, error)
                    messages = []
                if messages:
                    backoff.reset()
                    for message in messages:
                        self._start(message)
                elif await wait_or_stop(stopping, backoff.next_delay()):
                    break
            if self._running:
                await asyncio.wait(self._running)
        finally:
            for task in self._running:
                task.cancel()
            await asyncio.gather(*self._running, return_exceptions=True)

    async def close(self) -> None:
        await self._queue.close()
        await self._poison.close()

    async def _receive_batch(self) -> list[QueueMessage]:
        size = self.options.batch_size
        pages = self._queue.receive_messages(
            messages_per_page=size, max_messages=size, visibility_timeout=RUNNING_VISIBILITY_SECONDS
        )
        return [message async for message in pages]

    def _start(self, message: QueueMessage) -> None:
        task = asyncio.create_task(self._process(message))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _process(self, message: QueueMessage) -> None:
        try:
            if message.dequeue_count is not None and (
                message.dequeue_count > self.options.max_dequeue_count
            ):
                # Dequeued too often without an outcome (e.g. the host died mid-run).
                await self._move_to_poison(message)
                return
            outcome = await self._invoke(message)
            if outcome.succeeded:
                await self._queue.delete_message(message.id, message.pop_receipt)
            elif (message.dequeue_count or 0) >= self.options.max_dequeue_count:
                await self._move_to_poison(message)
            else:
                await self._queue.update_message(
                    message.id,
                    message.pop_receipt,
                    visibility_timeout=math.ceil(self.options.visibility_timeout.total_seconds()),
                )
        except Exception as error:
            # The message reappears when its visibility runs out: at-least-once, like the host.
            logger.error("Settling message %s of %s failed: %r", message.id, self.queue_name, error)

    async def _invoke(self, message: QueueMessage) -> Outcome:
        try:
            body = decode_body(message.content or "", self.options.message_encoding)
        except ValueError as error:
            logger.error("Function %s, message %s: %s", self.spec.name, message.id, error)
            return Outcome(succeeded=False, error=error)
        return await invoke(
            self.spec,
            to_function_message(message, body),
            reason=f"New queue message detected on '{self.queue_name}'",
        )

    async def _move_to_poison(self, message: QueueMessage) -> None:
        """Copy the message as it is on the wire to `<queue>-poison`, then delete the original."""
        with contextlib.suppress(ResourceExistsError):
            await self._poison.create_queue()
        await self._poison.send_message(message.content)
        await self._queue.delete_message(message.id, message.pop_receipt)
        logger.warning(
            "Message %s has reached MaxDequeueCount of %d: moved to %s",
            message.id,
            self.options.max_dequeue_count,
            self._poison.queue_name,
        )


async def invoke_with_input(spec: FunctionSpec, text: str) -> Outcome:
    """A manual run (admin API): the input becomes the message body; no storage involved."""
    message = to_function_message(QueueMessage(content=text), text.encode("utf-8"))
    return await invoke(spec, message, reason="Manual")
