"""The Code kind: `{"type": "Code", "code": {"handler", "arguments", "timeoutSeconds"}}` runs a
Python handler the app registered (shared/kinds/code/handlers.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from shared.kinds.base import ActionRunner, Kind
from shared.kinds.code.model import CodeAction
from shared.kinds.code.runner import CodeActionRunner, timeout_of

if TYPE_CHECKING:
    from shared.config import Settings


class CodeKind(Kind[CodeAction]):
    type_names = ("Code",)
    payload_field = "code"
    payload_model = CodeAction
    settings = (
        "SCHEDULER_HTTP_TIMEOUT_SECONDS",
        "SCHEDULER_OUTPUT_MAX_BYTES",
        "AzureWebJobsStorage",
    )

    def runner(self, settings: Settings) -> ActionRunner:
        return CodeActionRunner(settings)

    def timeout(self, payload: CodeAction, settings: Settings) -> timedelta:
        # Plus the output's last flush: the lease must outlive the handler's deadline.
        return timeout_of(payload, settings) + timedelta(seconds=5)


CODE = CodeKind()
