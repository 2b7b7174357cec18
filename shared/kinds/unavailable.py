"""Stored actions whose kind this app no longer registers (an app removed a kind it had added).

They stay readable, so one such job does not break the listing of its collection, and they
keep their stored JSON as it was, so registering the kind again brings them back unchanged.
Each attempt fails with a message that says what is missing, instead of the engine failing
on a kind it cannot find. What the payload holds is not shown: its secrets are unknown.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pydantic import PrivateAttr, model_serializer

from shared.kinds.base import ActionContext, ActionOutcome, ActionRunner, Kind
from shared.model.common import ApiModel

if TYPE_CHECKING:
    from shared.config import Settings
    from shared.model.actions import JobErrorAction


class UnavailablePayload(ApiModel):
    """The stored payload, kept as raw JSON under its own field name."""

    _field: str = PrivateAttr(default="payload")
    _raw: Any = PrivateAttr(default=None)

    @classmethod
    def of(cls, field: str, raw: Any) -> UnavailablePayload:
        payload = cls()
        payload._field, payload._raw = field, raw
        return payload

    @property
    def field(self) -> str:
        return self._field

    @model_serializer
    def _as_stored(self) -> Any:
        return self._raw


class UnavailableKind(Kind[UnavailablePayload]):
    """Stands in for the missing kind of one stored action."""

    payload_model = UnavailablePayload

    def __init__(self, type_name: str, payload_field: str) -> None:
        self.type_names = (type_name,)
        self.payload_field = payload_field

    def runner(self, settings: Settings) -> ActionRunner:
        return _Refuse()

    def timeout(self, payload: UnavailablePayload, settings: Settings) -> timedelta:
        return settings.http_timeout

    def public_json(self, payload: UnavailablePayload) -> dict[str, Any]:
        return {}


class _Refuse:
    async def run(self, action: JobErrorAction, context: ActionContext) -> ActionOutcome:
        return ActionOutcome(
            succeeded=False,
            message=(
                f"No action kind '{action.type}' is registered in this app: register it again "
                "(function_app.py) or change the job's action."
            ),
        )

    async def aclose(self) -> None:
        pass
