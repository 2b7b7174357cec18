"""The `code` payload of a Code action: which handler, its arguments, its timeout."""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationInfo, field_validator

from shared.kinds.code.handlers import known_handlers
from shared.model.common import ApiModel, Integer

MAX_TIMEOUT_SECONDS = 3600  # one attempt; longer work belongs in several jobs or a queue


class CodeAction(ApiModel):
    handler: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    timeout_seconds: Integer | None = Field(default=None, ge=1, le=MAX_TIMEOUT_SECONDS)

    @field_validator("handler")
    @classmethod
    def _registered(cls, name: str, info: ValidationInfo) -> str:
        stored = isinstance(info.context, dict) and info.context.get("stored") is True
        if stored or name in known_handlers():
            return name  # a stored job whose handler went away fails when it runs, not on read
        names = ", ".join(sorted(known_handlers())) or "none registered"
        raise ValueError(f"handler {name!r} is not registered; handlers available: {names}")
