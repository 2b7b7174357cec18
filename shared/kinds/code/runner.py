"""Runs a Code action: the named handler, with its output kept in a blob.

A handler is async (awaited, cancelled at its deadline) or sync (run in a thread of its own,
with a copy of the context so its print() and logging reach its output). A sync handler's
thread cannot be killed: at the deadline the attempt fails and the thread is abandoned (a daemon
thread; whatever it writes after that is dropped). Raising or timing out is a failed attempt;
retries, error action and counters follow as for any action. The return value (JSON, or its
repr) ends the output, and a short form of it is the history message.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import threading
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared.kinds.base import ActionContext, ActionOutcome
from shared.kinds.code.capture import attempt_logger, capture, current_output, install_stream_router
from shared.kinds.code.handlers import CodeContext, known_handlers
from shared.kinds.code.model import CodeAction
from shared.storage.app_clients import AppStorageClients
from shared.storage.output import AttemptOutputs, OutputWriter

if TYPE_CHECKING:
    from shared.config import Settings
    from shared.model.actions import JobErrorAction

SHORT_RESULT = 200  # characters of the return value the history message keeps
APP_STORAGE_SETTING = "AzureWebJobsStorage"


class CodeActionRunner:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._outputs = AttemptOutputs(
            settings.storage_connection, settings.table_prefix, settings.output_max_bytes
        )

    async def run(self, action: JobErrorAction, context: ActionContext) -> ActionOutcome:
        code = action.payload_as(CodeAction)
        if code is None:
            raise ValueError("Code action without code")
        function = known_handlers().get(code.handler)
        if function is None:
            return _failed(f"handler '{code.handler}' is not registered in this app")
        seconds = timeout_of(code, self._settings).total_seconds()
        writer = await self._outputs.writer(context.output_name)
        connection = context.app_settings.get(APP_STORAGE_SETTING) or (
            self._settings.storage_connection
        )
        storage = AppStorageClients.from_connection_string(connection)
        logger = attempt_logger(f"code.{code.handler}", writer)
        ctx = CodeContext(
            collection=context.collection,
            job=context.job,
            nominal=context.nominal,
            attempt=context.retry_count,
            idempotency_key=context.idempotency_key,
            arguments=code.arguments,
            deadline=datetime.now(UTC) + timedelta(seconds=seconds),
            log=logger,
            storage=storage,
            settings=self._settings,
        )
        writer.line("INFO", f"Handler '{code.handler}' attempt {context.retry_count} started")
        try:
            result = await _call(function, ctx, writer, seconds)
        except TimeoutError:
            writer.line("ERROR", f"Timed out after {seconds:g} s")
            return _failed(f"handler '{code.handler}' timed out after {seconds:g} s", True)
        except Exception as error:  # the handler's failure is the attempt's
            writer.line("ERROR", "".join(traceback.format_exception(error)).rstrip())
            return _failed(
                f"handler '{code.handler}' raised {type(error).__name__}: {error}"[:1000], True
            )
        finally:
            await storage.close()
            await writer.close()
        return ActionOutcome(
            succeeded=True,
            message=f"Code Action - handler '{code.handler}' returned {_short(_shown(result))}",
            output=True,
        )

    async def aclose(self) -> None:
        await self._outputs.close()


def timeout_of(code: CodeAction, settings: Settings) -> timedelta:
    if code.timeout_seconds is not None:
        return timedelta(seconds=code.timeout_seconds)
    return settings.http_timeout


async def _call(
    function: Callable[[CodeContext], Any], ctx: CodeContext, writer: OutputWriter, seconds: float
) -> Any:
    """Call the handler with stdout/stderr routed to its output; the result line is written."""
    install_stream_router()
    lines, token = capture(writer)
    try:
        async with asyncio.timeout(seconds):
            if inspect.iscoroutinefunction(function):
                result = await function(ctx)
            else:
                result = await _in_own_thread(function, ctx)
                if inspect.isawaitable(result):
                    result = await result
    finally:
        current_output.reset(token)
        lines.finish()
    writer.line("INFO", f"Returned {_shown(result)}")
    return result


async def _in_own_thread(function: Callable[[CodeContext], Any], ctx: CodeContext) -> Any:
    """Run a sync handler in a daemon thread (not the loop's executor: an abandoned handler
    must not hold a pool worker, nor the loop's shutdown)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Any] = loop.create_future()
    copied = contextvars.copy_context()

    def settle(value: Any, error: BaseException | None) -> None:
        if done.done():
            return  # abandoned at its deadline
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(value)

    def work() -> None:
        value: Any = None
        failure: BaseException | None = None
        try:
            value = copied.run(function, ctx)
        except BaseException as error:  # handed to the awaiting attempt
            failure = error
        try:
            loop.call_soon_threadsafe(settle, value, failure)
        except RuntimeError:
            pass  # abandoned, and its loop has closed since

    threading.Thread(target=work, name=f"code-job-{ctx.job}", daemon=True).start()
    return await done


def _shown(result: Any) -> str:
    try:
        return json.dumps(result, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(result)


def _short(text: str) -> str:
    return text if len(text) <= SHORT_RESULT else text[: SHORT_RESULT - 1] + "…"


def _failed(message: str, output: bool = False) -> ActionOutcome:
    return ActionOutcome(succeeded=False, message=f"Code Action - {message}", output=output)
