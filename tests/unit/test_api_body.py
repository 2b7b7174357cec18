"""The hardened JSON body reader's rules, without a server: each refusal names the field and the
reason (the API turns InvalidRequest into a 400 and HTTPException(415) into a 415)."""

from __future__ import annotations

import pytest
from starlette.exceptions import HTTPException

from shared.api.body import MAX_DEPTH, check_media_type, parse_json_object
from shared.errors import InvalidRequest


def refusal(raw: bytes) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        parse_json_object(raw)
    return caught.value


def test_an_object_is_read_as_it_is() -> None:
    assert parse_json_object(b'{"a": [1, 2.5, "x", null, true], "b": {}}') == {
        "a": [1, 2.5, "x", None, True],
        "b": {},
    }


def test_a_byte_order_mark_is_allowed() -> None:
    assert parse_json_object(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"a": NaN}', "NaN is not a JSON number"),
        (b'{"a": -Infinity}', "-Infinity is not a JSON number"),
        (b'{"a": 1e400}', "1e400 is too large for a number"),
        (b'{"a": 1, "a": 2}', 'duplicate key "a"'),
        (b'{"a": ', "not valid JSON"),
    ],
)
def test_text_that_is_not_strict_json_is_refused(raw: bytes, reason: str) -> None:
    error = refusal(raw)
    assert error.field == "body"
    assert reason in error.reason


def test_bytes_that_are_not_utf8_are_refused_with_their_offset() -> None:
    error = refusal(b'{"a": "\xff"}')
    assert (error.field, error.reason) == ("body", "not UTF-8 (invalid start byte at byte 7)")


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b"[]", "an array"),
        (b'"x"', "a string"),
        (b"true", "a boolean"),
        (b"null", "null"),
        (b"3", "a number"),
    ],
)
def test_only_an_object_is_a_body(raw: bytes, kind: str) -> None:
    assert refusal(raw).reason == f"must be a JSON object, not {kind}"


def test_nesting_past_the_limit_is_refused_and_at_the_limit_is_read() -> None:
    def nested(depth: int) -> bytes:  # `depth` levels of objects, the top one included
        return b'{"a": ' * (depth - 1) + b"{}" + b"}" * (depth - 1)

    assert parse_json_object(nested(MAX_DEPTH))
    error = refusal(nested(MAX_DEPTH + 1))
    assert (error.field, error.reason) == ("body", f"nested deeper than {MAX_DEPTH} levels")


def test_nesting_too_deep_for_the_parser_is_refused_not_crashed() -> None:
    assert refusal(b"[" * 100_000 + b"]" * 100_000).reason == (
        f"nested deeper than {MAX_DEPTH} levels"
    )


def test_a_lone_surrogate_is_refused_naming_the_field_it_is_in() -> None:
    error = refusal(b'{"properties": {"action": {"list": ["ok", "\\ud800"]}}}')
    assert (error.field, error.reason) == (
        "properties.action.list[1]",
        "a lone surrogate is not text",
    )


def test_a_lone_surrogate_in_a_key_names_the_object_holding_it() -> None:
    assert refusal(b'{"properties": {"\\udc00": 1}}').field == "properties"
    assert refusal(b'{"\\udc00": 1}').field == "body"


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "Application/JSON; charset=utf-8", "application/merge-patch+json"],
)
def test_json_media_types_are_accepted(content_type: str) -> None:
    check_media_type(content_type)


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "json", ""])
def test_other_media_types_are_refused_with_415(content_type: str) -> None:
    with pytest.raises(HTTPException) as caught:
        check_media_type(content_type)
    assert caught.value.status_code == 415
    assert caught.value.detail == f"the body must be application/json, not '{content_type}'"
