"""A broadcast's request and response shapes (IoT Hub's JobRequest and JobResponse, plus our
extensions `rollout` (`maximumPerMinute` or `exponentialRate`), `abortConfig`, `retryConfig`):
pure, no I/O.

`parse_job_request` checks a body and returns a `BroadcastSpec`, raising `InvalidRequest` that
names the field. The spec's `canonical()` form is what is stored and what a repeated create is
compared with (the SDK retries PUT on 5xx: the same body again is the same job)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.devices.model import (
    MethodCall,
    bounded_int,
    check_properties,
    parse_method,
    without_metadata,
)
from shared.devices.query import parse_condition
from shared.errors import InvalidRequest
from shared.timefmt import from_iso, to_iso

METHOD_JOB = "scheduleDeviceMethod"
TWIN_JOB = "scheduleUpdateTwin"
JOB_TYPES = (METHOD_JOB, TWIN_JOB)
MAX_JOB_ID = 64  # IoT Hub's limit
JOB_ID_PATTERN = r"^[A-Za-z0-9\-_.:@]{1,64}$"
_JOB_ID = re.compile(JOB_ID_PATTERN[1:-1])
DEFAULT_MAX_EXECUTION_SECONDS = 3600
MAX_EXECUTION_SECONDS = 7 * 24 * 3600 - 120  # a queue message's longest delay, less a margin
FAILURE_TYPES = ("FAILED", "TIMED_OUT", "ALL")
MAX_RATE_PER_MINUTE = 1000  # AWS's bound of maximumPerMinute and baseRatePerMinute
INCREMENT_FACTOR_BOUNDS = (1.1, 5.0)  # AWS's, one decimal digit
MAX_RATE_INCREASE_COUNT = 10_000
NOTIFIED, SUCCEEDED_THINGS = "numberOfNotifiedThings", "numberOfSucceededThings"
RATE_INCREASE_CRITERIA = (NOTIFIED, SUCCEEDED_THINGS)
MAX_RETRIES = 10
NOT_ENDED = "9999-12-31T23:59:59.9999999Z"  # IoT Hub's endTime while a job has not ended

# Job statuses as answered (the swagger spellings); filters also take IoT Hub's `canceled`.
QUEUED, SCHEDULED, RUNNING, COMPLETED, FAILED, CANCELLED = (
    "queued",
    "scheduled",
    "running",
    "completed",
    "failed",
    "cancelled",
)
JOB_STATUSES = (QUEUED, SCHEDULED, RUNNING, COMPLETED, FAILED, CANCELLED)
ENDED = (COMPLETED, FAILED, CANCELLED)
STATUS_ALIASES = {"canceled": CANCELLED, "enqueued": QUEUED, "pending": QUEUED}


@dataclass(frozen=True)
class AbortCriterion:
    failure_type: str
    threshold_percentage: float
    min_executed: int

    def describe(self) -> str:
        return (
            f"abortConfig: {self.failure_type} reached {self.threshold_percentage:g}% "
            f"after at least {self.min_executed} executed devices"
        )


@dataclass(frozen=True)
class ExponentialRate:
    """`rollout.exponentialRate` (AWS IoT Jobs' ExponentialRolloutRate): start at `base_per_minute`
    devices a minute and multiply the rate by `increment_factor` each time `every` more devices
    reached the `criterion` (numberOfNotifiedThings or numberOfSucceededThings)."""

    base_per_minute: int
    increment_factor: int | float  # as given (2 stays 2, 1.5 stays 1.5)
    criterion: str
    every: int

    def json(self) -> dict[str, Any]:
        return {
            "baseRatePerMinute": self.base_per_minute,
            "incrementFactor": self.increment_factor,
            "rateIncreaseCriteria": {self.criterion: self.every},
        }


@dataclass(frozen=True)
class BroadcastSpec:
    """A checked JobRequest."""

    job_id: str
    job_type: str
    query_condition: str
    start_time: datetime | None  # None: now
    max_execution_seconds: int
    method: dict[str, Any] | None  # cloudToDeviceMethod as given (checked)
    update_twin: dict[str, Any] | None
    maximum_per_minute: int | None
    abort: tuple[AbortCriterion, ...]
    retries: tuple[tuple[str, int], ...]  # (failure type, number of retries)
    exponential_rate: ExponentialRate | None = None  # exclusive with maximum_per_minute

    def method_call(self) -> MethodCall:
        assert self.method is not None
        return parse_method(self.method)

    def device_timeout_seconds(self) -> int:
        """How long one device's call may take (the lease of a device record)."""
        if self.method is None:
            return 15  # a twin write and its best-effort push (bounded by 10 s)
        call = self.method_call()
        return max(call.connect_timeout, 5) + call.response_timeout

    def canonical(self) -> dict[str, Any]:
        """The request as stored and compared; the JobRequest fields plus our extensions."""
        body: dict[str, Any] = {
            "jobId": self.job_id,
            "type": self.job_type,
            "queryCondition": self.query_condition,
            "startTime": None if self.start_time is None else to_iso(self.start_time),
            "maxExecutionTimeInSeconds": self.max_execution_seconds,
        }
        if self.method is not None:
            body["cloudToDeviceMethod"] = self.method
        if self.update_twin is not None:
            body["updateTwin"] = self.update_twin
        if self.maximum_per_minute is not None:
            body["rollout"] = {"maximumPerMinute": self.maximum_per_minute}
        if self.exponential_rate is not None:
            body["rollout"] = {"exponentialRate": self.exponential_rate.json()}
        if self.abort:
            body["abortConfig"] = {
                "criteriaList": [
                    {
                        "failureType": c.failure_type,
                        "action": "CANCEL",
                        "thresholdPercentage": c.threshold_percentage,
                        "minNumberOfExecutedThings": c.min_executed,
                    }
                    for c in self.abort
                ]
            }
        if self.retries:
            body["retryConfig"] = {
                "criteriaList": [{"failureType": t, "numberOfRetries": n} for t, n in self.retries]
            }
        return body

    @classmethod
    def from_canonical(cls, body: Mapping[str, Any]) -> BroadcastSpec:
        return parse_job_request(str(body["jobId"]), body)

    def same_request(self, other: BroadcastSpec) -> bool:
        """Whether a repeated create asks for the same job (a missing startTime is "now" each
        time, so two creates without one are the same)."""
        return json.dumps(self.canonical(), sort_keys=True) == json.dumps(
            other.canonical(), sort_keys=True
        )


def check_job_id(job_id: str) -> str:
    if not _JOB_ID.fullmatch(job_id):
        raise InvalidRequest(
            "jobId", f"must be 1-{MAX_JOB_ID} ASCII letters, digits and the characters - _ . : @"
        )
    return job_id


def parse_job_request(job_id: str, body: Mapping[str, Any]) -> BroadcastSpec:
    """The JobRequest of `PUT /jobs/v2/{job_id}`; InvalidRequest naming the field."""
    check_job_id(job_id)
    given_id = body.get("jobId")
    if given_id is not None and given_id != job_id:
        raise InvalidRequest("jobId", "must be the id in the path")
    job_type = body.get("type")
    if job_type not in JOB_TYPES:
        raise InvalidRequest("type", f"must be one of {', '.join(JOB_TYPES)}")
    condition = body.get("queryCondition")
    if not isinstance(condition, str) or not condition.strip():
        raise InvalidRequest("queryCondition", "is required: the WHERE part of a query, or '*'")
    parse_condition(condition)  # a bad condition is a 400 pointing at the position
    method = update_twin = None
    if job_type == METHOD_JOB:
        method = _method(body.get("cloudToDeviceMethod"))
        if body.get("updateTwin") is not None:
            raise InvalidRequest("updateTwin", f"is not allowed with type {METHOD_JOB}")
    else:
        update_twin = _update_twin(body.get("updateTwin"))
        if body.get("cloudToDeviceMethod") is not None:
            raise InvalidRequest("cloudToDeviceMethod", f"is not allowed with type {TWIN_JOB}")
    maximum_per_minute, exponential_rate = _rollout(body.get("rollout"))
    return BroadcastSpec(
        job_id=job_id,
        job_type=job_type,
        query_condition=condition,
        start_time=_start_time(body.get("startTime")),
        max_execution_seconds=bounded_int(
            body,
            "maxExecutionTimeInSeconds",
            (1, MAX_EXECUTION_SECONDS),
            DEFAULT_MAX_EXECUTION_SECONDS,
        ),
        method=method,
        update_twin=update_twin,
        maximum_per_minute=maximum_per_minute,
        abort=_abort(body.get("abortConfig")),
        retries=_retries(body.get("retryConfig")),
        exponential_rate=exponential_rate,
    )


def _method(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRequest("cloudToDeviceMethod", "is required: a CloudToDeviceMethod object")
    try:
        call = parse_method(value)
    except InvalidRequest as error:
        raise InvalidRequest(f"cloudToDeviceMethod.{error.field}", error.reason) from None
    if len(json.dumps(call.payload)) > 128 * 1024:
        raise InvalidRequest("cloudToDeviceMethod.payload", "must be at most 128 KB as JSON")
    return {
        "methodName": call.method_name,
        "payload": call.payload,
        "responseTimeoutInSeconds": call.response_timeout,
        "connectTimeoutInSeconds": call.connect_timeout,
    }


def _update_twin(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRequest("updateTwin", "is required: a Twin with tags or desired properties")
    etag = value.get("etag")
    if etag is not None and str(etag).strip('"') != "*":
        raise InvalidRequest("updateTwin.etag", "must be '*' (each device has its own etag)")
    twin: dict[str, Any] = {}
    tags = value.get("tags")
    if tags is not None:
        twin["tags"] = check_properties("updateTwin.tags", tags)
    properties = value.get("properties")
    if properties is not None:
        if not isinstance(properties, dict):
            raise InvalidRequest("updateTwin.properties", "must be a JSON object")
        desired = properties.get("desired")
        if desired is not None:
            twin["properties"] = {
                "desired": check_properties(
                    "updateTwin.properties.desired", without_metadata(desired)
                )
            }
    if not twin:
        raise InvalidRequest("updateTwin", "must set tags or properties.desired")
    twin["etag"] = "*"
    return twin


def _start_time(value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequest("startTime", "must be an ISO 8601 date-time")
    try:
        parsed = from_iso(value)
    except ValueError:
        raise InvalidRequest("startTime", "must be an ISO 8601 date-time") from None
    # A naive time is UTC, as IoT Hub reads it.
    return parsed


def _object(value: object, field: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRequest(field, "must be a JSON object")
    return value


def _rollout(value: object) -> tuple[int | None, ExponentialRate | None]:
    """(maximumPerMinute, exponentialRate): at most one of them. AWS's API shape has both
    fields but documents no rule for them together, so both at once is refused, not guessed."""
    if value is None:
        return None, None
    rollout = _object(value, "rollout")
    unknown = set(rollout) - {"maximumPerMinute", "exponentialRate"}
    if unknown:
        raise InvalidRequest(f"rollout.{sorted(unknown)[0]}", "is not supported")
    if rollout.get("maximumPerMinute") is not None and rollout.get("exponentialRate") is not None:
        raise InvalidRequest(
            "rollout.exponentialRate", "is not allowed with rollout.maximumPerMinute: give one"
        )
    if rollout.get("exponentialRate") is not None:
        return None, _exponential_rate(rollout["exponentialRate"])
    limit = _bounded(rollout, "rollout", "maximumPerMinute", (1, MAX_RATE_PER_MINUTE))
    return limit, None


def _bounded(
    body: Mapping[str, Any], prefix: str, name: str, bounds: tuple[int, int]
) -> int | None:
    """An optional integer field within `bounds`, the error naming its full path."""
    try:
        value = bounded_int(body, name, bounds, -1)
    except InvalidRequest as error:
        raise InvalidRequest(f"{prefix}.{name}", error.reason) from None
    return None if value == -1 else value


def _exponential_rate(value: object) -> ExponentialRate:
    field = "rollout.exponentialRate"
    rate = _object(value, field)
    unknown = set(rate) - {"baseRatePerMinute", "incrementFactor", "rateIncreaseCriteria"}
    if unknown:
        raise InvalidRequest(f"{field}.{sorted(unknown)[0]}", "is not supported")
    base = _bounded(rate, field, "baseRatePerMinute", (1, MAX_RATE_PER_MINUTE))
    if base is None:
        raise InvalidRequest(
            f"{field}.baseRatePerMinute", f"is required: an integer from 1 to {MAX_RATE_PER_MINUTE}"
        )
    factor = rate.get("incrementFactor")
    low, high = INCREMENT_FACTOR_BOUNDS
    if (
        not isinstance(factor, int | float)
        or isinstance(factor, bool)
        or not low <= factor <= high
        or round(factor, 1) != factor
    ):
        raise InvalidRequest(
            f"{field}.incrementFactor",
            f"is required: a number from {low} to {high:g} with at most one decimal digit",
        )
    criteria = _object(rate.get("rateIncreaseCriteria"), f"{field}.rateIncreaseCriteria")
    given = [name for name in criteria if criteria[name] is not None]
    if len(given) != 1 or given[0] not in RATE_INCREASE_CRITERIA:
        raise InvalidRequest(
            f"{field}.rateIncreaseCriteria",
            f"must give exactly one of {' or '.join(RATE_INCREASE_CRITERIA)}",
        )
    criterion = given[0]
    every = _bounded(
        criteria, f"{field}.rateIncreaseCriteria", criterion, (1, MAX_RATE_INCREASE_COUNT)
    )
    assert every is not None
    return ExponentialRate(base, factor, criterion, every)


def _criteria(value: object, field: str, most: int) -> list[Mapping[str, Any]]:
    config = _object(value, field)
    items = config.get("criteriaList")
    if not isinstance(items, list) or not 1 <= len(items) <= most:
        raise InvalidRequest(f"{field}.criteriaList", f"must be a list of 1 to {most} criteria")
    return [_object(item, f"{field}.criteriaList[{i}]") for i, item in enumerate(items)]


def _failure_type(item: Mapping[str, Any], field: str) -> str:
    failure_type = item.get("failureType")
    if failure_type not in FAILURE_TYPES:
        raise InvalidRequest(f"{field}.failureType", f"must be one of {', '.join(FAILURE_TYPES)}")
    return str(failure_type)


def _abort(value: object) -> tuple[AbortCriterion, ...]:
    if value is None:
        return ()
    found: list[AbortCriterion] = []
    for i, item in enumerate(_criteria(value, "abortConfig", 10)):
        field = f"abortConfig.criteriaList[{i}]"
        failure_type = _failure_type(item, field)
        if item.get("action", "CANCEL") != "CANCEL":
            raise InvalidRequest(f"{field}.action", "must be CANCEL")
        threshold = item.get("thresholdPercentage")
        if (
            not isinstance(threshold, int | float)
            or isinstance(threshold, bool)
            or not 0 < float(threshold) <= 100
        ):
            raise InvalidRequest(
                f"{field}.thresholdPercentage", "must be a number above 0, at most 100"
            )
        minimum = item.get("minNumberOfExecutedThings")
        if type(minimum) is not int or minimum < 1:
            raise InvalidRequest(
                f"{field}.minNumberOfExecutedThings", "must be an integer of at least 1"
            )
        found.append(AbortCriterion(failure_type, round(float(threshold), 2), minimum))
    return tuple(found)


def _retries(value: object) -> tuple[tuple[str, int], ...]:
    if value is None:
        return ()
    found: list[tuple[str, int]] = []
    for i, item in enumerate(_criteria(value, "retryConfig", 2)):
        field = f"retryConfig.criteriaList[{i}]"
        failure_type = _failure_type(item, field)
        if any(t == failure_type for t, _ in found):
            raise InvalidRequest(f"{field}.failureType", "is given twice")
        count = bounded_int(item, "numberOfRetries", (0, MAX_RETRIES), -1)
        if count < 0:
            raise InvalidRequest(f"{field}.numberOfRetries", f"is required: 0 to {MAX_RETRIES}")
        found.append((failure_type, count))
    return tuple(found)


def parse_status_filter(value: str | None) -> str | None:
    """`jobStatus` of the jobs query: either spelling of cancelled, any letter case."""
    if value is None or value == "":
        return None
    lowered = value.strip().lower()
    status = STATUS_ALIASES.get(lowered, lowered)
    if status not in JOB_STATUSES:
        raise InvalidRequest("jobStatus", f"must be one of {', '.join(JOB_STATUSES)} (or canceled)")
    return status


def parse_type_filter(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    for job_type in JOB_TYPES:
        if job_type.lower() == value.strip().lower():
            return job_type
    raise InvalidRequest("jobType", f"must be one of {', '.join(JOB_TYPES)}")
