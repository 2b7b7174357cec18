"""Continuous WebJobs on a serverless host: one holder at a time keeps the script running,
inside a Functions invocation, and hands over before the invocation's time limit.

- The holder is whoever holds the WebJob's lease (its row in `{prefix}Continuous`, written with
  the ETag read, renewed every `POLL_SECONDS`). It is a message `continuous` on the device-work
  queue, handled by `handle`: take the lease, run the script (process.py, WEBJOBS_TYPE=continuous),
  poll the row every second (renew the lease, see a stop), and at the slice's end stop the
  script gracefully (shutdown file, SIGTERM, SIGKILL after stopping_wait_time), release the
  lease and send the next message visible at once: the next invocation restarts it in seconds.
- A script that ends by itself (any exit code, as Kudu) is restarted after the restart delay:
  PendingRestart meanwhile, the message hidden until then. A holder that died (its lease
  expired) is noticed by `watch`, which the dispatch timer calls: PendingRestart, then the same.
- Start and stop set the desired state; start sends the first message; the holder sees a stop
  within a second and ends the script gracefully. Each start of the script is one run, with its
  own output blob (`continuous-<name>/<run id>/m000.log`).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from shared.kinds.webjob.catalog import WEBJOBS_REF, job_name_of
from shared.kinds.webjob.folders import CONTINUOUS, WebJobFolder, read_folder
from shared.kinds.webjob.process import ProcessResult, run_script
from shared.storage.continuous import (
    PENDING_RESTART,
    RUNNING,
    STARTING,
    STOPPED,
    ContinuousRow,
    ContinuousRows,
)
from shared.storage.device_work import WorkMessage
from shared.storage.output import output_name
from shared.timefmt import compact

if TYPE_CHECKING:
    from shared.clock import Clock
    from shared.kinds.webjob.kind import WebJobSettings
    from shared.storage.device_work import DeviceWorkQueue
    from shared.storage.output import OutputStore

log = logging.getLogger(__name__)

CONTINUOUS_MESSAGE = "continuous"
POLL_SECONDS = 1.0  # how often the holder renews its lease and reads the desired state
KICK_GRACE_SECONDS = 120.0  # a message not acted on this long after its time is sent again
ATTEMPT = "m000"


@dataclass(frozen=True)
class ContinuousStatus:
    status: str  # Starting | Running | PendingRestart | Stopped
    detail: str
    run_id: str


def output_of_run(name: str, run_id: str) -> str:
    return output_name(WEBJOBS_REF.key, job_name_of(CONTINUOUS, name), run_id, ATTEMPT)


class ContinuousWebJobs:
    def __init__(
        self,
        rows: ContinuousRows,
        queue: DeviceWorkQueue,
        outputs: OutputStore,
        options: WebJobSettings,
        clock: Clock,
        output_max_bytes: int,
    ) -> None:
        self._rows = rows
        self._queue = queue
        self._outputs = outputs
        self._options = options
        self._clock = clock
        self._max_bytes = output_max_bytes
        # A holder silent this long is taken for dead (SCHEDULER_CONTINUOUS_LEASE_SECONDS).
        self._lease = timedelta(seconds=options.continuous_lease_seconds)

    async def aclose(self) -> None:
        await self._rows.close()

    # --- the API's side ---------------------------------------------------------------------

    async def start(self, name: str) -> None:
        """Desired state Running, and a message to run it now (a held job keeps its holder)."""
        while True:
            now = self._clock.now()
            row = await self._rows.get(name) or ContinuousRow(name)
            wanted = row.changed(desired=RUNNING, kicked_at=now, restart_at=None)
            if not row.held(now):
                wanted = wanted.changed(status=STARTING, detail="")
            if await self._rows.write(wanted) is not None:
                break
        if not row.held(now):
            await self._send(name, now)

    async def stop(self, name: str) -> None:
        """Desired state Stopped; the holder, if any, ends the script within a second."""
        while True:
            now = self._clock.now()
            row = await self._rows.get(name) or ContinuousRow(name)
            wanted = row.changed(desired=STOPPED, restart_at=None)
            if not row.held(now):
                wanted = wanted.changed(status=STOPPED, holder="", lease_until=None, detail="")
            if await self._rows.write(wanted) is not None:
                return

    async def status(self, name: str) -> ContinuousStatus:
        row = await self._rows.get(name)
        if row is None:
            return ContinuousStatus(STOPPED, "", "")
        now = self._clock.now()
        if row.holder and not row.held(now):  # the holder died; the watch will restart it
            shown = PENDING_RESTART if row.desired == RUNNING else STOPPED
            return ContinuousStatus(shown, "its holder stopped renewing", row.run_id)
        return ContinuousStatus(row.status, row.detail, row.run_id)

    # --- the timer's side -------------------------------------------------------------------

    async def watch(self) -> int:
        """Restart jobs whose holder died (lease expired) after the restart delay, and resend
        a message that seems lost; returns the messages sent."""
        sent = 0
        grace = timedelta(seconds=KICK_GRACE_SECONDS)
        for row in await self._rows.all():
            now = self._clock.now()
            if row.holder and not row.held(now):
                if row.desired == RUNNING:
                    due = now + self._restart_delay()
                    written = await self._rows.write(
                        row.changed(
                            holder="",
                            lease_until=None,
                            status=PENDING_RESTART,
                            restart_at=due,
                            kicked_at=due,
                            detail="its holder stopped renewing the lease; restarting",
                        )
                    )
                    if written is not None:
                        await self._send(row.name, due)
                        sent += 1
                else:
                    await self._rows.write(
                        row.changed(holder="", lease_until=None, status=STOPPED, detail="")
                    )
            elif not row.holder and row.desired == RUNNING:
                last = max(t for t in (row.kicked_at, row.restart_at, now - 2 * grace) if t)
                if last + grace < now and await self._rows.write(row.changed(kicked_at=now)):
                    await self._send(row.name, now)
                    sent += 1
        return sent

    # --- the holder -------------------------------------------------------------------------

    async def handle(self, name: str) -> None:
        """One invocation: take the lease if the job should run and nobody holds it, run the
        script for one slice, then hand over (or restart later, or stop)."""
        folder = read_folder(self._options.root / CONTINUOUS / name, CONTINUOUS)
        row = await self._rows.get(name)
        now = self._clock.now()
        if row is None or row.desired != RUNNING or row.held(now):
            return  # stopped, or held: a repeated or stale message
        if row.restart_at is not None and row.restart_at > now:
            return  # early: the message due at restart_at follows
        if not folder.path.is_dir() or not folder.runnable:
            error = folder.error or "its folder is not deployed"
            await self._rows.write(row.changed(desired=STOPPED, status=STOPPED, detail=error))
            return
        token = uuid.uuid4().hex
        run_id = compact(now) + token[:8]
        held = await self._rows.write(
            row.changed(
                holder=token,
                lease_until=now + self._lease,
                status=RUNNING,
                restart_at=None,
                run_id=run_id,
                detail="",
            )
        )
        if held is None:
            return  # another invocation took it first
        result, ours = await self._hold(folder, held)
        if ours:
            await self._finish(name, token, result)

    async def _hold(
        self, folder: WebJobFolder, held: ContinuousRow
    ) -> tuple[ProcessResult | None, bool]:
        """Run the script until it ends; stop it at the slice's end, on a stop, or when the
        lease is lost. Returns its result (None: it could not start) and whether we still
        hold the lease."""
        loop = asyncio.get_running_loop()
        slice_seconds = float(self._options.continuous_slice_seconds)
        deadline = loop.time() + slice_seconds
        writer = await self._outputs.open_writer(
            output_of_run(folder.name, held.run_id), self._max_bytes
        )
        writer.line("INFO", f"Run {held.run_id} of continuous WebJob '{folder.name}' started")
        stop = asyncio.Event()
        process = asyncio.create_task(
            run_script(
                folder,
                run_id=held.run_id,
                arguments="",
                sink=writer.line,
                stop=stop,
                timeout=slice_seconds + self._lease.total_seconds(),
            )
        )
        ours = True
        while not process.done():
            await asyncio.wait({process}, timeout=POLL_SECONDS)
            if process.done():
                break
            current = await self._rows.get(folder.name)
            if current is None or current.holder != held.holder:
                ours = False
                writer.line("WARN", "Lease lost: stopping")
                stop.set()
                continue
            if current.desired != RUNNING and not stop.is_set():
                writer.line("INFO", "Stop requested")
                stop.set()
            elif loop.time() >= deadline and not stop.is_set():
                writer.line("INFO", "Handing over to the next invocation (time slice ended)")
                stop.set()
            if ours:
                renewed = await self._rows.write(
                    current.changed(lease_until=self._clock.now() + self._lease)
                )
                ours = renewed is not None
                if not ours:
                    stop.set()
        try:
            result: ProcessResult | None = process.result()
        except (OSError, ValueError) as error:
            writer.line("ERROR", f"Could not start the script: {error}")
            result = None
        if result is not None and not result.stopped:
            writer.line("WARN", f"Process went down with exit code {result.exit_code}")
        await writer.close()
        return result, ours

    async def _finish(self, name: str, token: str, result: ProcessResult | None) -> None:
        """Release the lease, saying what comes next."""
        while True:
            row = await self._rows.get(name)
            if row is None or row.holder != token:
                return
            now = self._clock.now()
            released = row.changed(holder="", lease_until=None, kicked_at=now)
            due: datetime | None = None
            if row.desired != RUNNING:
                released = released.changed(status=STOPPED, restart_at=None, detail="")
            elif result is not None and result.stopped:
                released = released.changed(status=RUNNING, detail="handing over")
                due = now
            else:
                due = now + self._restart_delay()
                code = "could not start" if result is None else f"exit code {result.exit_code}"
                released = released.changed(
                    status=PENDING_RESTART,
                    restart_at=due,
                    kicked_at=due,
                    detail=f"process went down ({code}); restarting at {due:%H:%M:%S}Z",
                )
            if await self._rows.write(released) is not None:
                break
        if due is not None:
            await self._send(name, due)

    def _restart_delay(self) -> timedelta:
        return timedelta(seconds=self._options.continuous_restart_delay_seconds)

    async def _send(self, name: str, due: datetime) -> None:
        await self._queue.send(
            WorkMessage(CONTINUOUS_MESSAGE, name), due=due, now=self._clock.now()
        )
