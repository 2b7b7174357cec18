"""Call one user function the way the Python worker does, and log one line per invocation.

Arguments are passed by binding name, plus `context` when the function declares it; sync
functions run in a thread so they cannot stall the event loop. Errors become a failed `Outcome`
(never an exception) so a bad invocation can't stop a timer, a queue poller or the HTTP server.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from devhost.functions import FunctionSpec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    succeeded: bool
    value: Any = None
    error: BaseException | None = None


@dataclass(frozen=True)
class TraceContext:
    trace_parent: str = ""
    trace_state: str = ""
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RetryContext:
    retry_count: int = 0
    max_retry_count: int = 0
    exception: Any = None


@dataclass(frozen=True)
class InvocationContext:
    """What `func.Context` offers (AsgiMiddleware copies these into the ASGI scope)."""

    invocation_id: str
    function_name: str
    function_directory: str
    trace_context: TraceContext
    retry_context: RetryContext
    thread_local_storage: threading.local


def _new_context(spec: FunctionSpec, invocation_id: str) -> InvocationContext:
    local = threading.local()
    local.invocation_id = invocation_id
    trace_parent = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-00"
    return InvocationContext(
        invocation_id=invocation_id,
        function_name=spec.name,
        function_directory=str(spec.directory),
        trace_context=TraceContext(trace_parent=trace_parent),
        retry_context=RetryContext(),
        thread_local_storage=local,
    )


async def invoke(spec: FunctionSpec, trigger_value: Any, *, reason: str) -> Outcome:
    """Run the function once; `reason` says why (e.g. "Timer fired", "New queue message")."""
    invocation_id = str(uuid.uuid4())
    arguments: dict[str, Any] = {spec.arg_name: trigger_value}
    if spec.wants_context:
        arguments["context"] = _new_context(spec, invocation_id)
    started = time.perf_counter()
    try:
        if inspect.iscoroutinefunction(spec.user_function):
            value = await spec.user_function(**arguments)
        else:
            value = await asyncio.to_thread(spec.user_function, **arguments)
    except Exception as error:
        logger.error(
            "Executed '%s' (Failed, Id=%s, Duration=%.0fms, Reason=%s): %r",
            spec.name,
            invocation_id,
            (time.perf_counter() - started) * 1000,
            reason,
            error,
            exc_info=error,
        )
        return Outcome(succeeded=False, error=error)
    logger.info(
        "Executed '%s' (Succeeded, Id=%s, Duration=%.0fms, Reason=%s)",
        spec.name,
        invocation_id,
        (time.perf_counter() - started) * 1000,
        reason,
    )
    return Outcome(succeeded=True, value=value)
