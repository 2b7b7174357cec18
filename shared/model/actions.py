"""What a job does when it fires: its action, optional error action and retry policy.

Shapes follow Azure Scheduler 2016-03-01 (`JobAction`, `JobErrorAction`, `RetryPolicy`) plus
Cloud Scheduler's exponential backoff (`retryType: Exponential`). An action is
`{"type", <payload field>: {...}, "retryPolicy"}`; what `type` may be, which field holds the
payload and how the payload is validated come from the action kinds the process knows
(`shared/kinds/`, see docs/ARCHITECTURE.md "How to add an action kind"). A type no kind claims is
refused naming `type`; a stored one keeps its JSON (`shared/kinds/unavailable.py`).
"""

from __future__ import annotations

import builtins
from datetime import timedelta
from typing import Any, TypeVar

from pydantic import (
    Field,
    GetJsonSchemaHandler,
    PrivateAttr,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic.alias_generators import to_snake
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, ErrorDetails, InitErrorDetails, PydanticCustomError

from shared.kinds.base import Kind
from shared.kinds.registry import KindRegistry, known_kinds
from shared.kinds.unavailable import UnavailableKind, UnavailablePayload
from shared.model.common import ApiModel, CaseInsensitiveEnum, Integer, field_error

MIN_RETRY_INTERVAL = timedelta(seconds=1)
MAX_RETRY_INTERVAL = timedelta(days=548)  # "18 months"
MAX_RETRY_COUNT = 20
MAX_DOUBLINGS = 20

DEFAULT_RETRY_INTERVAL = timedelta(seconds=30)
DEFAULT_RETRY_COUNT = 4
DEFAULT_MIN_BACKOFF = timedelta(seconds=5)
DEFAULT_MAX_BACKOFF = timedelta(hours=1)
DEFAULT_MAX_DOUBLINGS = 5


# Azure Scheduler's types that, unless a registered kind claims them, get a clear refusal.

P = TypeVar("P", bound=ApiModel)


class RetryType(CaseInsensitiveEnum):
    NONE = "None"
    FIXED = "Fixed"
    EXPONENTIAL = "Exponential"


class RetryPolicy(ApiModel):
    """How often an occurrence is retried after a failure; omitted values get the defaults."""

    retry_type: RetryType = RetryType.FIXED
    retry_interval: timedelta | None = None
    retry_count: Integer | None = Field(default=None, ge=0, le=MAX_RETRY_COUNT)
    min_backoff: timedelta | None = None
    max_backoff: timedelta | None = None
    max_doublings: Integer | None = Field(default=None, ge=0, le=MAX_DOUBLINGS)

    @field_validator("retry_interval", "min_backoff", "max_backoff")
    @classmethod
    def _duration_bounds(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and not MIN_RETRY_INTERVAL <= value <= MAX_RETRY_INTERVAL:
            raise ValueError("must be between PT1S and 548 days (18 months)")
        return value

    @model_validator(mode="after")
    def _fill_defaults(self) -> RetryPolicy:
        exponential_fields = {
            "minBackoff": self.min_backoff,
            "maxBackoff": self.max_backoff,
            "maxDoublings": self.max_doublings,
        }
        if self.retry_type is RetryType.EXPONENTIAL:
            if self.retry_interval is not None:
                raise ValueError(
                    "retryInterval does not apply to retryType Exponential "
                    "(use minBackoff, maxBackoff, maxDoublings)"
                )
            if self.min_backoff is None:
                self.min_backoff = DEFAULT_MIN_BACKOFF
            if self.max_backoff is None:
                self.max_backoff = max(DEFAULT_MAX_BACKOFF, self.min_backoff)
            if self.max_doublings is None:
                self.max_doublings = DEFAULT_MAX_DOUBLINGS
            if self.min_backoff > self.max_backoff:
                raise ValueError("maxBackoff must not be shorter than minBackoff")
        else:
            for name, value in exponential_fields.items():
                if value is not None:
                    raise ValueError(f"{name} only applies to retryType Exponential")
        if self.retry_type is RetryType.FIXED and self.retry_interval is None:
            self.retry_interval = DEFAULT_RETRY_INTERVAL
        if self.retry_type is not RetryType.NONE and self.retry_count is None:
            self.retry_count = DEFAULT_RETRY_COUNT
        return self

    def delay_before_retry(self, retries_done: int) -> timedelta | None:
        """The wait before the next retry, or None when no retry is left.

        `retries_done` counts the retries already made (0 after the first failure). Exponential
        follows Cloud Scheduler: the delay doubles `maxDoublings` times, then grows linearly by the
        last doubled step, capped at `maxBackoff` (min 10 s, max 300 s, 3 doublings:
        10, 20, 40, 80, 160, 240, 300, 300 s).
        """
        if retries_done < 0:
            raise ValueError("retries_done must not be negative")
        if self.retry_type is RetryType.NONE or retries_done >= (self.retry_count or 0):
            return None
        if self.retry_type is RetryType.FIXED:
            return self.retry_interval
        assert self.min_backoff and self.max_backoff and self.max_doublings is not None
        step = self.min_backoff.total_seconds()
        if retries_done <= self.max_doublings:
            seconds = step * 2**retries_done
        else:
            seconds = step * 2**self.max_doublings * (retries_done - self.max_doublings + 1)
        return min(timedelta(seconds=seconds), self.max_backoff)


class JobErrorAction(ApiModel):
    """An action without `errorAction`: what runs once the main action's retries are exhausted.

    `type` is the kind's spelling of the type (`http` on input, `Http` stored and answered);
    `payload` is the kind's payload model, read from and written to the kind's payload field.
    """

    type: str
    retry_policy: RetryPolicy | None = None
    _payload: ApiModel = PrivateAttr()

    @model_validator(mode="wrap")
    @classmethod
    def _dispatch_to_kind(
        cls, data: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Any:
        if not isinstance(data, dict):
            return handler(data)  # a model instance passes; anything else: "a valid dictionary"
        kinds = known_kinds()
        fields = kinds.payload_fields
        # Like pydantic with fields: every part is validated (type, each payload present, the
        # rest) and all their errors reported together; the rules between them come after.
        errors: list[ErrorDetails] = []
        payloads: dict[str, ApiModel] = {}
        kind: Kind[Any] | None = None
        try:
            kind = _kind_of(data.get("type"), kinds)
        except ValidationError as error:
            if _stored(info) and isinstance(data.get("type"), str):
                return _unavailable(data, handler)
            errors += error.errors()
        type_name = kinds.canonical(data["type"]) if kind is not None else ""
        for key in (k for k in data if k in fields):
            try:
                payloads[key] = _payload_of(fields[key], key, data[key], info)
            except ValidationError as error:
                errors += error.errors()
        try:
            action = handler(
                {**{k: v for k, v in data.items() if k not in fields}, "type": type_name}
            )
        except ValidationError as error:
            errors += error.errors()
        if errors or kind is None:
            raise _errors(errors)
        for key in payloads:
            if fields[key] is not kind:
                raise field_error(key, data[key], f"{key} is not allowed when type is {type_name}")
        if not payloads:
            raise ValueError(f"{kind.payload_field} is required when type is {type_name}")
        payload = next(iter(payloads.values()))
        kind.check(type_name, payload)
        action._payload = payload
        return action

    @model_serializer(mode="wrap")
    def _with_payload(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        payload = self._payload.model_dump(
            mode=info.mode, by_alias=info.by_alias, exclude_none=info.exclude_none
        )
        field = self.kind.payload_field if info.by_alias else to_snake(self.kind.payload_field)
        return {"type": data.pop("type"), field: payload, **data}

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """The schema lists every known kind: its type names and its payload field."""
        reference = handler(core_schema)
        schema = handler.resolve_ref_schema(reference)
        kinds = known_kinds()
        properties = schema.setdefault("properties", {})
        properties["type"] = {
            "type": "string",
            "enum": kinds.type_names,
            "description": "The action kind (case-insensitive); it decides the payload field",
        }
        for kind in kinds.kinds:
            payload = handler(kind.payload_model.__pydantic_core_schema__)
            properties[kind.payload_field] = {
                **payload,
                "description": f"The payload when type is {' or '.join(kind.type_names)}",
            }
        schema["required"] = ["type"]
        return reference

    @property
    def payload(self) -> ApiModel:
        """What the kind validated from the payload field (`HttpRequest`, ...)."""
        return self._payload

    def payload_as(self, model: builtins.type[P]) -> P | None:
        """The payload if it is a `model`, else None (code that knows one kind's payload)."""
        return self._payload if isinstance(self._payload, model) else None

    @property
    def kind(self) -> Kind[Any]:
        if isinstance(self._payload, UnavailablePayload):  # its kind was unregistered
            return UnavailableKind(self.type, self._payload.field)
        kind = known_kinds().kind_of(self.type)
        if kind is None:  # only if a kind is unregistered while its actions live
            raise LookupError(f"no known kind runs {self.type} actions")
        return kind

    def public_json(self) -> dict[str, Any]:
        """`to_json_dict()` minus write-only secrets (SAS tokens, passwords): safe to return."""
        data = self.to_json_dict()
        data[self.kind.payload_field] = self.kind.public_json(self._payload)
        return data

    def effective_retry_policy(self) -> RetryPolicy:
        """The policy to apply: a missing one is Azure Scheduler's default, 4 retries 30 s apart."""
        return self.retry_policy if self.retry_policy is not None else RetryPolicy()


class JobAction(JobErrorAction):
    error_action: JobErrorAction | None = None

    @field_validator("error_action", mode="before")
    @classmethod
    def _no_nesting(cls, value: object) -> object:
        if isinstance(value, dict) and ({"errorAction", "error_action"} & value.keys()):
            raise ValueError("errorAction cannot have an errorAction of its own (no nesting)")
        return value

    def public_json(self) -> dict[str, Any]:
        data = super().public_json()
        if self.error_action is not None:
            data["errorAction"] = self.error_action.public_json()
        return data


def _stored(info: ValidationInfo) -> bool:
    return isinstance(info.context, dict) and bool(info.context.get("stored"))


_NOT_PAYLOAD = {"type", "retryPolicy", "retry_policy", "errorAction", "error_action"}


def _unavailable(data: dict[str, Any], handler: ValidatorFunctionWrapHandler) -> Any:
    """A stored action whose kind is not registered: kept as stored (kinds/unavailable.py)."""
    field = next((key for key in data if key not in _NOT_PAYLOAD), "payload")
    rest = {k: v for k, v in data.items() if k in _NOT_PAYLOAD}
    action = handler(rest)
    action._payload = UnavailablePayload.of(field, data.get(field))
    return action


def _kind_of(value: object, kinds: KindRegistry) -> Kind[Any]:
    """The kind of a `type` value; a 400 naming `type` when none claims it."""
    known = ", ".join(kinds.type_names)
    if not isinstance(value, str):
        reason = "type is required" if value is None else "type must be a string"
        raise field_error("type", value, f"{reason}: one of {known}")
    kind = kinds.kind_of(value)
    if kind is not None:
        return kind
    raise field_error("type", value, f"type must be one of {known}")


def _payload_of(kind: Kind[P], key: str, value: object, info: ValidationInfo) -> P:
    """The kind's payload model from `value`; its errors are located under the payload field."""
    try:
        return kind.payload_model.model_validate(value, context=info.context)
    except ValidationError as error:
        raise _errors(error.errors(), prefix=(key,)) from None


def _errors(details: list[ErrorDetails], prefix: tuple[str, ...] = ()) -> ValidationError:
    """One ValidationError of `details`, their locations under `prefix`, messages unchanged."""
    return ValidationError.from_exception_data(
        "JobErrorAction",
        [
            InitErrorDetails(
                type=PydanticCustomError(detail["type"], detail["msg"].replace("{", "{{")),
                loc=(*prefix, *detail["loc"]),
                input=detail.get("input"),
            )
            for detail in details
        ],
    )
