"""The Service Bus REST wire format: the SAS token by known answer, the BrokerProperties mapping,
custom property headers and the reasons bad input is refused with (docs/service-bus.md)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import quote_plus

import pytest

from shared.errors import InvalidRequest
from shared.kinds.service_bus.wire import (
    broker_properties,
    custom_headers,
    entity_path_problem,
    host_pattern_problem,
    namespace_problem,
    property_name_problem,
    sas_token,
    send_request,
)

KEY = "bXktc2VjcmV0LWtleS0xMjM0NTY3ODkwYWJjZGVmZ2hpamtsbW4="  # the key's base64 text, as issued
EXPIRY = datetime(2030, 1, 1, tzinfo=UTC)  # 1893456000
RESOURCE = "https://contoso-orders.servicebus.windows.net/orders"


def _send(**overrides: object):
    arguments: dict[str, object] = {
        "namespace": "contoso-orders",
        "entity_path": "orders",
        "message": "hello",
        "brokered": {},
        "custom": {},
        "key_name": "SendRule",
        "key": KEY,
        "expiry": EXPIRY,
    }
    arguments.update(overrides)
    return send_request(**arguments)  # type: ignore[arg-type]


# --- the SAS token -------------------------------------------------------------------------------


def test_sas_token_matches_the_documented_formula_by_hand() -> None:
    # Microsoft's Python sample: sr = quote_plus(uri); sign quote_plus(uri) + "\n" + expiry with
    # the key's UTF-8 text; the base64 signature is URL-encoded.
    encoded = "https%3A%2F%2Fcontoso-orders.servicebus.windows.net%2Forders"
    assert quote_plus(RESOURCE) == encoded
    digest = hmac.new(KEY.encode(), f"{encoded}\n1893456000".encode(), hashlib.sha256).digest()
    signature = base64.b64encode(digest).decode()
    # The same value from `printf '%s\n%s' "$SR" 1893456000 | openssl dgst -sha256 -hmac "$KEY"`.
    assert signature == "WL2avL8jlWAmadgIVz0j91uoVM9Qpq4jRYire5gR4/g="

    token = sas_token(RESOURCE, "SendRule", KEY, EXPIRY)

    assert token == (
        f"SharedAccessSignature sr={encoded}"
        "&sig=WL2avL8jlWAmadgIVz0j91uoVM9Qpq4jRYire5gR4%2Fg%3D&se=1893456000&skn=SendRule"
    )


def test_sas_token_expiry_is_whole_epoch_seconds_in_any_offset() -> None:
    in_paris = EXPIRY.astimezone(timezone(timedelta(hours=1))) + timedelta(milliseconds=900)
    assert "&se=1893456000&" in sas_token(RESOURCE, "SendRule", KEY, in_paris)
    with pytest.raises(ValueError, match="aware"):
        sas_token(RESOURCE, "SendRule", KEY, datetime(2030, 1, 1))


def test_send_request_signs_the_entity_it_posts_to() -> None:
    url, headers, body = _send(namespace="Contoso-Orders", entity_path="orders/eu")

    assert url == "https://contoso-orders.servicebus.windows.net/orders/eu/messages"
    assert headers["Authorization"] == sas_token(
        "https://contoso-orders.servicebus.windows.net/orders/eu", "SendRule", KEY, EXPIRY
    )
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert headers["x-ms-retrypolicy"] == "NoRetry"
    assert "BrokerProperties" not in headers  # nothing to say
    assert body == b"hello"


def test_the_host_pattern_points_the_request_elsewhere() -> None:
    request = _send(host_pattern="{namespace}.servicebus.test:8443")
    assert request.url == "https://contoso-orders.servicebus.test:8443/orders/messages"
    assert (
        "sr=https%3A%2F%2Fcontoso-orders.servicebus.test%3A8443%2Forders&"
        in (request.headers["Authorization"])
    )


def test_the_message_is_sent_as_utf8_and_no_message_is_an_empty_body() -> None:
    assert _send(message="grüß dich").body == "grüß dich".encode()
    assert _send(message=None).body == b""


# --- BrokerProperties ----------------------------------------------------------------------------


def test_every_brokered_property_maps_to_its_documented_key() -> None:
    brokered = {
        "contentType": "application/json",
        "correlationId": "c-1",
        "forcePersistence": True,
        "label": "OrderCreated",
        "messageId": "m-1",
        "partitionKey": "s-1",
        "replyTo": "replies",
        "replyToSessionId": "r-1",
        "scheduledEnqueueTimeUtc": "1994-11-06T08:49:37Z",
        "sessionId": "s-1",
        "timeToLive": "PT1M30S",
        "to": "someone",
        "viaPartitionKey": "v-1",
    }

    request = _send(brokered=brokered)

    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.headers["BrokerProperties"]) == {
        "CorrelationId": "c-1",
        "ForcePersistence": True,
        "Label": "OrderCreated",
        "MessageId": "m-1",
        "PartitionKey": "s-1",
        "ReplyTo": "replies",
        "ReplyToSessionId": "r-1",
        "ScheduledEnqueueTimeUtc": "Sun, 06 Nov 1994 08:49:37 GMT",
        "SessionId": "s-1",
        "TimeToLive": 90,
        "To": "someone",
        "ViaPartitionKey": "v-1",
    }


def test_time_values_accept_parsed_forms_and_keep_fractions_of_ttl() -> None:
    properties = broker_properties(
        {
            "timeToLive": timedelta(seconds=1.5),
            # no offset: UTC, as the field's name says; sub-seconds dropped (RFC 1123)
            "scheduledEnqueueTimeUtc": datetime(2030, 1, 1, 8, 0, 0, 500000),
        }
    )
    assert properties == {
        "TimeToLive": 1.5,
        "ScheduledEnqueueTimeUtc": "Tue, 01 Jan 2030 08:00:00 GMT",
    }
    offset = broker_properties({"scheduledEnqueueTimeUtc": "2030-01-01T09:00:00+01:00"})
    assert offset == {"ScheduledEnqueueTimeUtc": "Tue, 01 Jan 2030 08:00:00 GMT"}


@pytest.mark.parametrize(
    ("brokered", "field", "reason"),
    [
        ({"timeToLive": "an hour"}, "brokeredMessageProperties.timeToLive", "ISO-8601 duration"),
        ({"timeToLive": "PT0S"}, "brokeredMessageProperties.timeToLive", "longer than zero"),
        (
            {"scheduledEnqueueTimeUtc": "tomorrow"},
            "brokeredMessageProperties.scheduledEnqueueTimeUtc",
            "ISO-8601 date-time",
        ),
        ({"forcePersistence": "yes"}, "brokeredMessageProperties.forcePersistence", "true or"),
        ({"label": 7}, "brokeredMessageProperties.label", "must be a string"),
        ({"priority": "high"}, "brokeredMessageProperties.priority", "unknown; known: content"),
        (
            {"sessionId": "a", "partitionKey": "b"},
            "brokeredMessageProperties.partitionKey",
            "must equal sessionId",
        ),
        ({"partitionKey": "p" * 129}, "brokeredMessageProperties.partitionKey", "at most 128"),
        ({"contentType": "text/plain\r\nX: 1"}, "brokeredMessageProperties.contentType", "ASCII"),
        ({"contentType": " "}, "brokeredMessageProperties.contentType", "non-empty"),
    ],
)
def test_bad_brokered_properties_name_the_field_and_the_reason(
    brokered: dict[str, object], field: str, reason: str
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        _send(brokered=brokered)
    assert refused.value.field == field
    assert reason in refused.value.reason


# --- custom properties ---------------------------------------------------------------------------


def test_custom_properties_are_headers_with_quoted_values() -> None:
    headers = custom_headers({"appname": "FromScheduler", "price": "299.98", "empty": ""})
    # Unquoted, Service Bus would read 299.98 as a double; quoted it stays the string given.
    assert headers == {"appname": '"FromScheduler"', "price": '"299.98"', "empty": '""'}
    assert _send(custom={"appname": "FromScheduler"}).headers["appname"] == '"FromScheduler"'


@pytest.mark.parametrize(
    ("custom", "reason"),
    [
        ({"bad name": "x"}, "HTTP header name"),
        ({"": "x"}, "HTTP header name"),
        ({"authorization": "x"}, "header the request sets itself"),
        ({"BrokerProperties": "x"}, "header the request sets itself"),
        ({"Connection": "close"}, "header the request sets itself"),
        ({"a": "line\r\nInjected: 1"}, "printable ASCII"),
        ({"a": "café"}, "printable ASCII"),
        ({"a": 5}, "must be a string"),
    ],
)
def test_bad_custom_properties_name_the_property_and_the_reason(
    custom: dict[str, str], reason: str
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        _send(custom=custom)
    assert refused.value.field == f"customMessageProperties.{next(iter(custom))}"
    assert reason in refused.value.reason


def test_custom_property_names_that_differ_only_in_case_are_refused() -> None:
    with pytest.raises(InvalidRequest, match="customMessageProperties.Region: repeats"):
        _send(custom={"region": "eu", "Region": "us"})


# --- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("namespace", "reason"),
    [
        ("contoso-orders", None),
        ("Contoso1", None),
        ("short", "6 to 50"),
        ("n" * 51, "6 to 50"),
        ("1contoso", "start with a letter"),
        ("contoso.orders", "letters, digits and hyphens"),
        ("contoso-", "must not end"),
        ("contoso-SB", "must not end"),
        ("contoso-mgmt", "must not end"),
    ],
)
def test_namespace_rules(namespace: str, reason: str | None) -> None:
    problem = namespace_problem(namespace)
    assert problem == reason if reason is None else reason in (problem or "")


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("orders", None),
        ("Orders/EU/v1.2_x-y", None),
        ("", "empty"),
        ("q" * 261, "at most 260"),
        ("/orders", "start or end"),
        ("orders/", "start or end"),
        ("orders//eu", "empty segment"),
        ("orders/../admin", "'..' segment"),
        ("orders?x=1", "letters, digits"),
        ("ord ers", "letters, digits"),
        ("orders#1", "letters, digits"),
    ],
)
def test_entity_path_rules(path: str, reason: str | None) -> None:
    problem = entity_path_problem(path)
    assert problem == reason if reason is None else reason in (problem or "")


def test_send_request_names_the_field_of_a_bad_name() -> None:
    with pytest.raises(InvalidRequest) as refused:
        _send(namespace="ab")
    assert refused.value.field == "namespace"
    with pytest.raises(InvalidRequest) as refused:
        _send(entity_path="a//b", entity_field="topicPath")
    assert refused.value.field == "topicPath"
    with pytest.raises(InvalidRequest) as refused:
        _send(key="")
    assert refused.value.field == "authentication.sasKey"
    with pytest.raises(InvalidRequest) as refused:
        _send(key_name="")
    assert refused.value.field == "authentication.sasKeyName"


def test_property_names_and_host_patterns() -> None:
    assert property_name_problem("x-custom_1.a") is None
    assert host_pattern_problem("{namespace}.servicebus.windows.net") is None
    assert host_pattern_problem("{namespace}.servicebus.test:8443") is None
    assert "exactly once" in (host_pattern_problem("servicebus.test") or "")
    assert "host name" in (host_pattern_problem("https://{namespace}.x/") or "")
    with pytest.raises(InvalidRequest) as refused:
        _send(host_pattern="{namespace}.x/path")
    assert refused.value.field == "hostPattern"
