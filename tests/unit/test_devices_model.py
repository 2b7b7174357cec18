"""The device registry's pure rules: ids, If-Match, etags, endpoints, properties, method calls,
and the row keys devices are stored under."""

from __future__ import annotations

import pytest

from shared.devices.model import (
    ANY_ETAG,
    Endpoint,
    carry_endpoint_headers,
    check_device_id,
    check_properties,
    etag_of,
    parse_authentication,
    parse_endpoint,
    parse_if_match,
    parse_method,
)
from shared.errors import InvalidRequest
from shared.storage.devices import bucket_of, row_key_of


def test_device_ids_follow_iot_hub_rules() -> None:
    assert check_device_id("a-.+%_#*?!(),:=@$'z") == "a-.+%_#*?!(),:=@$'z"
    assert check_device_id("x" * 128)
    for bad in ("", "x" * 129, "a b", "a/b", "café", "a;b"):
        with pytest.raises(InvalidRequest) as refused:
            check_device_id(bad)
        assert refused.value.field == "deviceId"


def test_if_match_takes_quoted_and_bare_forms_and_both_wildcards() -> None:
    assert parse_if_match(None) is None and parse_if_match(" ") is None
    assert parse_if_match("*") is ANY_ETAG and parse_if_match('"*"') is ANY_ETAG
    assert parse_if_match('"AAAAAAAAAAE="') == "AAAAAAAAAAE=" == parse_if_match("AAAAAAAAAAE=")


def test_etags_differ_per_version() -> None:
    assert etag_of(1) == "AAAAAAAAAAE=" and etag_of(2) != etag_of(1)


def test_row_keys_are_one_to_one_and_legal_for_tables() -> None:
    ids = ["a#b", "a%23b", "a?b", "a%3Fb", "a%b"]
    keys = [row_key_of(i) for i in ids]
    assert len(set(keys)) == len(ids)
    assert not any(c in key for key in keys for c in "#?/\\")
    buckets = {bucket_of(f"device-{n}") for n in range(5000)}
    assert len(buckets) == 256


def test_endpoints_need_an_http_url_and_plain_headers() -> None:
    assert parse_endpoint({"uri": "https://d.example/m"}) == Endpoint("https://d.example/m", {})
    for body, field in [
        ({"uri": "ftp://x/"}, "endpoint.uri"),
        ({"uri": "/relative"}, "endpoint.uri"),
        ({"uri": "http://x:99999/"}, "endpoint.uri"),
        ({"uri": "http://x/", "headers": {"bad name": "v"}}, "endpoint.headers"),
        ({"uri": "http://x/", "headers": {"a": "b\nc"}}, "endpoint.headers.a"),
        ({"uri": "http://x/", "extra": 1}, "endpoint.extra"),
    ]:
        with pytest.raises(InvalidRequest) as refused:
            parse_endpoint(body)
        assert refused.value.field == field


def test_an_echoed_endpoint_keeps_its_write_only_headers() -> None:
    stored = Endpoint("http://x/", {"key": "secret"})
    assert carry_endpoint_headers(Endpoint("http://x/"), stored).headers == {"key": "secret"}
    assert carry_endpoint_headers(Endpoint("http://y/"), stored).headers == {}


def test_sas_keys_are_generated_kept_or_checked() -> None:
    generated = parse_authentication(None)["symmetricKey"]
    assert generated["primaryKey"] != generated["secondaryKey"]
    kept = parse_authentication({"type": "sas"}, {"symmetricKey": generated})["symmetricKey"]
    assert kept == generated
    with pytest.raises(InvalidRequest):
        parse_authentication({"symmetricKey": {"primaryKey": "c2hvcnQ="}})  # 5 bytes


def test_property_names_and_depth_follow_iot_hub() -> None:
    assert check_properties("tags", {"a": {"b": 1}}) == {"a": {"b": 1}}
    deep: dict[str, object] = {"v": 1}
    for _ in range(10):
        deep = {"n": deep}
    for bad in ({"a.b": 1}, {"a b": 1}, {"$a": 1}, deep, {"x": "y" * 40000}):
        with pytest.raises(InvalidRequest):
            check_properties("tags", bad)


def test_method_calls_take_iot_hub_defaults_and_ranges() -> None:
    call = parse_method({"methodName": "reboot"})
    assert (call.response_timeout, call.connect_timeout, call.payload) == (30, 0, None)
    cases: list[tuple[dict[str, object], str]] = [
        ({"methodName": ""}, "methodName"),
        ({"methodName": "x", "responseTimeoutInSeconds": 4}, "responseTimeoutInSeconds"),
        ({"methodName": "x", "responseTimeoutInSeconds": True}, "responseTimeoutInSeconds"),
        ({"methodName": "x", "connectTimeoutInSeconds": 301}, "connectTimeoutInSeconds"),
    ]
    for body, field in cases:
        with pytest.raises(InvalidRequest) as refused:
            parse_method(body)
        assert refused.value.field == field
