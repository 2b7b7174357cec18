"""Validation of job actions and retry policies: each refusal must name the offending field."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from shared.kinds.storage_queue import StorageQueueMessage
from shared.model.actions import (
    JobAction,
    JobErrorAction,
    RetryPolicy,
    RetryType,
)
from tests.support.actions import request_of

QUEUE = {"storageAccount": "acct1", "queueName": "jobs", "sasToken": "sv=1&sig=x", "message": "hi"}


def http_action(**request: Any) -> dict[str, Any]:
    return {"type": "Http", "request": {"uri": "http://example.com/run", **request}}


def refusal(model: type[Any], data: dict[str, Any]) -> str:
    """Validate `data`, expect a refusal, and return every location and message as one string."""
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return " | ".join(
        ".".join(str(part) for part in error["loc"]) + ": " + error["msg"]
        if error["loc"]
        else error["msg"]
        for error in info.value.errors()
    )


# --- types and enums ---------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["http", "Http", "HTTP"])
def test_action_type_is_case_insensitive_and_answered_in_pascal_case(spelling: str) -> None:
    action = JobAction.model_validate({**http_action(), "type": spelling})
    assert action.type == "Http"
    assert action.to_json_dict()["type"] == "Http"


def test_storage_queue_type_answers_pascal_case() -> None:
    action = JobAction.model_validate({"type": "storageQueue", "queueMessage": QUEUE})
    assert action.to_json_dict()["type"] == "StorageQueue"


@pytest.mark.parametrize(
    ("kind", "field"),
    [("ServiceBusQueue", "serviceBusQueueMessage"), ("serviceBusTopic", "serviceBusTopicMessage")],
)
def test_service_bus_types_are_kinds_now(kind: str, field: str) -> None:
    """No longer "not supported": the Service Bus kinds claim them and want their payload."""
    text = refusal(JobAction, {"type": kind})
    canonical = kind[0].upper() + kind[1:]
    assert text == f"Value error, {field} is required when type is {canonical}"


def test_unknown_type_is_refused() -> None:
    assert refusal(JobAction, {**http_action(), "type": "Ftp"}).startswith("type: ")


# --- HTTP request --------------------------------------------------------------------------------


def test_canonical_azure_scheduler_example_round_trips() -> None:
    data = {
        "type": "http",
        "retryPolicy": {"retryType": "none"},
        "request": {
            "uri": "http://contoso.com/foo",
            "method": "PUT",
            "body": "Posting from a timer",
            "headers": {"Content-Type": "application/json"},
        },
        "errorAction": {
            "type": "http",
            "request": {"uri": "http://contoso.com/notifyError", "method": "POST"},
        },
    }
    action = JobAction.model_validate(data)
    assert action.to_json_dict() == {
        "type": "Http",
        "retryPolicy": {"retryType": "None"},
        "request": {
            "uri": "http://contoso.com/foo",
            "method": "PUT",
            "body": "Posting from a timer",
            "headers": {"Content-Type": "application/json"},
        },
        "errorAction": {
            "type": "Http",
            "request": {"uri": "http://contoso.com/notifyError", "method": "POST"},
        },
    }
    assert JobAction.model_validate(action.to_json_dict()) == action


def test_method_defaults_to_get_and_is_answered_upper_case() -> None:
    assert request_of(JobAction.model_validate(http_action())).method == "GET"
    action = JobAction.model_validate(http_action(method="patch"))
    assert action.to_json_dict()["request"]["method"] == "PATCH"


def test_bad_method_is_refused() -> None:
    text = refusal(JobAction, http_action(method="FETCH"))
    assert text.startswith("request.method: ")
    assert "GET" in text


def test_missing_request_is_refused() -> None:
    assert "request is required when type is Http" in refusal(JobAction, {"type": "http"})


def test_missing_uri_is_refused() -> None:
    text = refusal(JobAction, {"type": "Http", "request": {"method": "GET"}})
    assert text.startswith("request.uri: ")


@pytest.mark.parametrize(
    "uri", ["example.com/run", "/relative", "ftp://example.com/x", "http://", "http://a b/"]
)
def test_bad_uri_is_refused(uri: str) -> None:
    assert refusal(JobAction, http_action(uri=uri)).startswith("request.uri: ")


def test_too_long_uri_is_refused() -> None:
    uri = "http://example.com/" + "a" * 2048
    assert "2048" in refusal(JobAction, http_action(uri=uri))


def test_https_type_needs_an_https_uri() -> None:
    data = {"type": "https", "request": {"uri": "http://example.com/run"}}
    assert "request.uri must be an https:// URL" in refusal(JobAction, data)
    data["request"] = {"uri": "https://example.com/run"}
    assert JobAction.model_validate(data).type == "Https"


def test_timeout_seconds_bounds() -> None:
    assert (
        request_of(JobAction.model_validate(http_action(timeoutSeconds=600))).timeout_seconds == 600
    )
    for bad in (0, 601):
        assert refusal(JobAction, http_action(timeoutSeconds=bad)).startswith(
            "request.timeoutSeconds: "
        )


def test_headers_must_be_sendable() -> None:
    assert "headers" in refusal(JobAction, http_action(headers={"Bad Name": "x"}))
    assert "headers" in refusal(JobAction, http_action(headers={"X-A": "line\r\nbreak"}))
    assert "Content-Length" in refusal(JobAction, http_action(headers={"Content-Length": "3"}))


def test_authentication_is_accepted_and_its_secret_is_write_only() -> None:
    data = http_action(authentication={"type": "basic", "username": "u", "password": "pw-1234"})
    request = request_of(JobAction.model_validate(data))
    assert request is not None
    assert request.to_json_dict()["authentication"]["password"] == "pw-1234"  # for the store
    assert request.public_json()["authentication"] == {"type": "Basic", "username": "u"}
    none = JobAction.model_validate(http_action(authentication={"type": "NotSpecified"}))
    assert none.public_json()["request"]["authentication"] == {"type": "NotSpecified"}


def test_bad_authentication_is_refused_at_request_authentication() -> None:
    text = refusal(JobAction, http_action(authentication={"type": "Basic", "username": "u"}))
    assert text.startswith("request.authentication: ")
    assert "password is required for Basic authentication" in text


# --- storage queue -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["abc", "a-b-c", "q12", "1" * 63, "my-queue-2"])
def test_valid_queue_names(name: str) -> None:
    assert StorageQueueMessage.model_validate({**QUEUE, "queueName": name}).queue_name == name


@pytest.mark.parametrize("name", ["ab", "a" * 64, "Jobs", "-jobs", "jobs-", "jo--bs", "jo_bs"])
def test_bad_queue_names_are_refused(name: str) -> None:
    data = {"type": "StorageQueue", "queueMessage": {**QUEUE, "queueName": name}}
    assert refusal(JobAction, data).startswith("queueMessage.queueName: ")


def test_missing_queue_message_is_refused() -> None:
    text = refusal(JobAction, {"type": "StorageQueue"})
    assert "queueMessage is required when type is StorageQueue" in text


def test_target_of_the_other_type_is_refused() -> None:
    data = {**http_action(), "queueMessage": QUEUE}
    assert "queueMessage is not allowed when type is Http" in refusal(JobAction, data)
    data = {"type": "StorageQueue", "queueMessage": QUEUE, "request": {"uri": "http://a.b"}}
    assert "request is not allowed when type is StorageQueue" in refusal(JobAction, data)


def test_message_is_required() -> None:
    data = {k: v for k, v in QUEUE.items() if k != "message"}
    assert refusal(StorageQueueMessage, data).startswith("message: ")


def test_connection_setting_alone_is_enough() -> None:
    target = StorageQueueMessage.model_validate(
        {"queueName": "jobs", "message": "m", "connectionSetting": "QueueStorage"}
    )
    assert target.queue_url is None
    assert target.to_json_dict()["connectionSetting"] == "QueueStorage"


def test_account_and_sas_give_the_queue_url() -> None:
    target = StorageQueueMessage.model_validate({**QUEUE, "sasToken": "?sv=1&sig=x"})
    assert target.queue_url == "https://acct1.queue.core.windows.net/jobs?sv=1&sig=x"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"queueName": "jobs", "message": "m"}, "storageAccount"),
        ({"queueName": "jobs", "message": "m", "storageAccount": "acct1"}, "sasToken"),
        ({"queueName": "jobs", "message": "m", "sasToken": "sv=1"}, "storageAccount"),
        ({**QUEUE, "connectionSetting": "QueueStorage"}, "connectionSetting"),
    ],
)
def test_connection_setting_or_account_and_sas(data: dict[str, Any], field: str) -> None:
    text = refusal(StorageQueueMessage, data)
    assert f"Value error, {field}" in text
    assert "connectionSetting" in text


def test_bad_storage_account_is_refused() -> None:
    assert refusal(StorageQueueMessage, {**QUEUE, "storageAccount": "Bad_Account"}).startswith(
        "storageAccount: "
    )


def test_public_json_hides_the_sas_token() -> None:
    action = JobAction.model_validate(
        {**http_action(), "errorAction": {"type": "StorageQueue", "queueMessage": QUEUE}}
    )
    assert action.to_json_dict()["errorAction"]["queueMessage"]["sasToken"] == "sv=1&sig=x"
    public = action.public_json()
    assert "sasToken" not in public["errorAction"]["queueMessage"]
    assert public["errorAction"]["queueMessage"]["queueName"] == "jobs"
    assert "sasToken" not in str(public)


# --- error action --------------------------------------------------------------------------------


def test_error_action_may_differ_in_type_and_has_its_own_retry_policy() -> None:
    action = JobAction.model_validate(
        {
            **http_action(),
            "errorAction": {
                "type": "StorageQueue",
                "queueMessage": QUEUE,
                "retryPolicy": {"retryType": "None"},
            },
        }
    )
    assert isinstance(action.error_action, JobErrorAction)
    assert action.error_action.effective_retry_policy().retry_type is RetryType.NONE


def test_nested_error_action_is_refused() -> None:
    inner = {**http_action(), "errorAction": http_action()}
    text = refusal(JobAction, {**http_action(), "errorAction": inner})
    assert text.startswith("errorAction: ")
    assert "no nesting" in text


def test_unknown_field_is_refused() -> None:
    assert refusal(JobAction, {**http_action(), "ftpMessage": {}}).startswith("ftpMessage: ")


# --- retry policy --------------------------------------------------------------------------------


def test_missing_retry_policy_means_four_retries_30_seconds_apart() -> None:
    policy = JobAction.model_validate(http_action()).effective_retry_policy()
    assert policy.retry_type is RetryType.FIXED
    assert [policy.delay_before_retry(n) for n in range(5)] == [timedelta(seconds=30)] * 4 + [None]


def test_fixed_defaults_are_filled_and_serialized_as_iso_8601() -> None:
    policy = RetryPolicy.model_validate({"retryType": "fixed"})
    assert policy.to_json_dict() == {
        "retryType": "Fixed",
        "retryInterval": "PT30S",
        "retryCount": 4,
    }


def test_retry_interval_parses_iso_8601_and_round_trips() -> None:
    policy = RetryPolicy.model_validate(
        {"retryType": "Fixed", "retryInterval": "PT1M30S", "retryCount": 2}
    )
    assert policy.retry_interval == timedelta(seconds=90)
    assert RetryPolicy.model_validate(policy.to_json_dict()) == policy
    longest = RetryPolicy.model_validate({"retryType": "Fixed", "retryInterval": "P548D"})
    assert RetryPolicy.model_validate(longest.to_json_dict()).retry_interval == timedelta(days=548)


def test_retry_count_bounds() -> None:
    assert RetryPolicy.model_validate({"retryCount": 20}).retry_count == 20
    assert RetryPolicy.model_validate({"retryCount": 0}).delay_before_retry(0) is None
    assert refusal(RetryPolicy, {"retryType": "Fixed", "retryCount": 21}).startswith("retryCount: ")
    assert refusal(RetryPolicy, {"retryType": "Fixed", "retryCount": -1}).startswith("retryCount: ")


@pytest.mark.parametrize("interval", ["PT0.5S", "PT0S", "-PT30S", "P549D"])
def test_retry_interval_bounds(interval: str) -> None:
    data = {"retryType": "Fixed", "retryInterval": interval}
    assert refusal(RetryPolicy, data).startswith("retryInterval: ")


def test_retry_interval_of_one_second_is_allowed() -> None:
    policy = RetryPolicy.model_validate({"retryType": "Fixed", "retryInterval": "PT1S"})
    assert policy.delay_before_retry(0) == timedelta(seconds=1)


def test_retry_type_none_never_retries() -> None:
    policy = RetryPolicy.model_validate({"retryType": "NONE"})
    assert policy.delay_before_retry(0) is None
    assert policy.to_json_dict() == {"retryType": "None"}


def test_exponential_follows_cloud_scheduler_example() -> None:
    # cloud.google.com/scheduler: min 10 s, max 300 s, maxDoublings 3 ->
    # "10 s, 20 s, 40 s, 80 s, 160 s, 240 s, 300 s, 300 s, ..."
    policy = RetryPolicy.model_validate(
        {
            "retryType": "exponential",
            "minBackoff": "PT10S",
            "maxBackoff": "PT300S",
            "maxDoublings": 3,
            "retryCount": 8,
        }
    )
    delays = [policy.delay_before_retry(n) for n in range(9)]
    assert [d.total_seconds() for d in delays if d is not None] == [
        10, 20, 40, 80, 160, 240, 300, 300
    ]  # fmt: skip
    assert delays[8] is None


def test_exponential_defaults() -> None:
    policy = RetryPolicy.model_validate({"retryType": "Exponential"})
    assert policy.to_json_dict() == {
        "retryType": "Exponential",
        "retryCount": 4,
        "minBackoff": "PT5S",
        "maxBackoff": "PT1H",
        "maxDoublings": 5,
    }
    assert [policy.delay_before_retry(n) for n in range(5)] == [
        timedelta(seconds=s) for s in (5, 10, 20, 40)
    ] + [None]


def test_exponential_with_zero_doublings_grows_linearly() -> None:
    policy = RetryPolicy.model_validate(
        {"retryType": "Exponential", "minBackoff": "PT10S", "maxDoublings": 0, "retryCount": 3}
    )
    assert [policy.delay_before_retry(n) for n in range(3)] == [
        timedelta(seconds=s) for s in (10, 20, 30)
    ]


def test_exponential_field_rules() -> None:
    text = refusal(RetryPolicy, {"retryType": "Exponential", "retryInterval": "PT30S"})
    assert "retryInterval does not apply to retryType Exponential" in text
    text = refusal(
        RetryPolicy, {"retryType": "Exponential", "minBackoff": "PT1M", "maxBackoff": "PT30S"}
    )
    assert "maxBackoff must not be shorter than minBackoff" in text
    assert refusal(RetryPolicy, {"retryType": "Exponential", "minBackoff": "PT0S"}).startswith(
        "minBackoff: "
    )
    assert refusal(RetryPolicy, {"retryType": "Exponential", "maxDoublings": 21}).startswith(
        "maxDoublings: "
    )
    assert "minBackoff only applies to retryType Exponential" in refusal(
        RetryPolicy, {"retryType": "Fixed", "minBackoff": "PT5S"}
    )


def test_exponential_max_backoff_defaults_to_at_least_min_backoff() -> None:
    policy = RetryPolicy.model_validate({"retryType": "Exponential", "minBackoff": "PT2H"})
    assert policy.max_backoff == timedelta(hours=2)


def test_negative_retries_done_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        RetryPolicy().delay_before_retry(-1)


# --- validation means what is sent (issue 7) ----------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "field"),
    [
        ({"X-Name\n": "v"}, "header name"),
        ({"X-Name": "value\n"}, "printable ASCII"),
    ],
)
def test_a_trailing_newline_does_not_pass_header_checks(
    headers: dict[str, str], field: str
) -> None:
    assert field in refusal(JobAction, http_action(headers=headers))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"queueName": "jobs\n"}, "queueName"),
        ({"storageAccount": "acct1\n"}, "storageAccount"),
    ],
)
def test_a_trailing_newline_does_not_pass_queue_checks(change: dict[str, str], field: str) -> None:
    assert refusal(StorageQueueMessage, {**QUEUE, **change}).startswith(f"{field}: ")


def test_a_trailing_newline_does_not_pass_the_setting_name_check() -> None:
    data = {"queueName": "jobs", "message": "m", "connectionSetting": "QueueStorage\n"}
    assert refusal(StorageQueueMessage, data).startswith("connectionSetting: ")


@pytest.mark.parametrize(
    "uri",
    [
        "http://0177.0.0.1/",  # octal IPv4: the guard and the sender read it differently
        "http://0x7f.0.0.1/",
        "http://127.1/",  # shorthand IPv4
        "http://①②.com/",  # not IDNA: httpx cannot send it
        "http://ex%41mple.com/",
        "http://a..b/",
        "http://-a.example.com/",
        "http://example.com:99999/",
        "http://example.com:0/",
        "http://[::1/",
        "http://user:secret@example.com/",  # credentials belong in `authentication`
    ],
)
def test_uris_that_cannot_be_called_are_refused(uri: str) -> None:
    assert refusal(JobAction, http_action(uri=uri)).startswith("request.uri: ")


@pytest.mark.parametrize(
    "uri",
    [
        "http://example.com/run",
        "https://bücher.de/x",  # IDNA: sent as xn--bcher-kva.de
        "http://127.0.0.1:8080/x",
        "http://[::1]:8080/x",
        "http://my_host.example.com/",
        "http://example.com./",
    ],
)
def test_callable_uris_are_accepted(uri: str) -> None:
    assert request_of(JobAction.model_validate(http_action(uri=uri))) is not None


@pytest.mark.parametrize("bad", [True, "3", 3.0])
def test_integer_fields_refuse_booleans_strings_and_floats(bad: object) -> None:
    assert refusal(RetryPolicy, {"retryType": "Fixed", "retryCount": bad}).startswith(
        "retryCount: "
    )
    assert refusal(RetryPolicy, {"retryType": "Exponential", "maxDoublings": bad}).startswith(
        "maxDoublings: "
    )
    assert refusal(JobAction, http_action(timeoutSeconds=bad)).startswith(
        "request.timeoutSeconds: "
    )


def test_a_stored_uri_from_before_the_stricter_checks_still_loads() -> None:
    from shared.model.job import load_stored_definition

    stored = {"action": http_action(uri="http://user:pw@127.1/")}
    assert request_of(load_stored_definition(stored).action).uri == "http://user:pw@127.1/"


def test_a_stored_https_action_with_an_old_style_host_still_loads() -> None:
    from shared.model.job import load_stored_definition

    stored = {"action": {"type": "Https", "request": {"uri": "https://0177.0.0.1/"}}}
    assert load_stored_definition(stored).action.type == "Https"
