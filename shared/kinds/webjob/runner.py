"""Runs a WebJob action: the folder's script as a child process (shared/kinds/webjob/process.py),
its stdout and stderr lines kept as the attempt's output (shared/storage/output.py).

The history message starts with the run's Kudu status (`Success`, `Failed`, `Stopped`), which
the Kudu routes read back (shared/kinds/webjob/views.py): `status_of_message`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from shared.kinds.base import ActionContext, ActionOutcome
from shared.kinds.webjob.folders import read_folder
from shared.kinds.webjob.model import WebJobAction
from shared.kinds.webjob.process import run_script
from shared.storage.output import AttemptOutputs

if TYPE_CHECKING:
    from shared.config import Settings
    from shared.kinds.webjob.kind import WebJobSettings
    from shared.model.actions import JobErrorAction

PREFIX = "WebJob Action - "
STATUSES = ("Success", "Failed", "Stopped")


def status_of_message(message: str) -> str:
    """The Kudu status a WebJob history message records (Failed for any other message)."""
    text = message.split(PREFIX, 1)[-1]
    return next((s for s in STATUSES if text.startswith(f"{s}:")), "Failed")


def run_id_of(output_name: str) -> str:
    """The run's id: the occurrence part of its output's name (`.../{occurrence}/m000.log`)."""
    return output_name.rsplit("/", 2)[-2] if output_name.count("/") >= 2 else output_name


class WebJobRunner:
    def __init__(self, settings: Settings, options: WebJobSettings) -> None:
        self._settings = settings
        self._options = options
        self._outputs = AttemptOutputs(
            settings.storage_connection, settings.table_prefix, settings.output_max_bytes
        )

    async def run(self, action: JobErrorAction, context: ActionContext) -> ActionOutcome:
        payload = action.payload_as(WebJobAction)
        if payload is None:
            raise ValueError("WebJob action without webJob")
        path = self._options.root / payload.job_type / payload.name
        if not path.is_dir():
            return _outcome(
                "Failed", f"the folder {payload.job_type}/{payload.name} is not deployed"
            )
        folder = read_folder(path, payload.job_type)
        if not folder.runnable:
            return _outcome("Failed", folder.error or "not runnable")
        writer = await self._outputs.writer(context.output_name)
        run_id = run_id_of(context.output_name)
        timeout = float(self._options.timeout_seconds)
        writer.line("INFO", f"Run {run_id} of {folder.type} WebJob '{folder.name}' started")
        if context.arguments:
            writer.line("INFO", f"Arguments: {context.arguments}")
        try:
            result = await run_script(
                folder,
                run_id=run_id,
                arguments=context.arguments,
                sink=writer.line,
                stop=asyncio.Event(),
                timeout=timeout,
            )
        except (OSError, ValueError) as error:
            writer.line("ERROR", f"Could not start the script: {error}")
            await writer.close()
            return _outcome("Failed", f"could not start the script: {error}", True)
        if result.stopped:
            status, text = "Stopped", f"timed out after {timeout:g} s and was stopped"
        elif result.exit_code == 0:
            status, text = "Success", "exit code 0"
        else:
            status, text = "Failed", f"Job failed due to exit code {result.exit_code}"
        writer.line("INFO" if status == "Success" else "ERROR", f"{status}: {text}")
        await writer.close()
        return _outcome(status, text, True)

    async def aclose(self) -> None:
        await self._outputs.close()


def _outcome(status: str, text: str, output: bool = False) -> ActionOutcome:
    return ActionOutcome(status == "Success", f"{PREFIX}{status}: {text}", output=output)
