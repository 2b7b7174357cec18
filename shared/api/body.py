"""The hardened JSON body reader: a request body becomes a JSON object, or a precise refusal.

Refused: non-JSON content types (415), more than 64 KiB (413), bytes that are not UTF-8, text
that is not JSON (`NaN`, `Infinity` included, and numbers too large for a float, like `1e400`),
duplicate keys, anything but an object at the top, nesting deeper than MAX_DEPTH, and strings
with lone surrogates (they cannot be stored nor sent). Each 400 names the field (`body`, or the
path of a bad string) and the reason.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from fastapi import Request
from starlette.exceptions import HTTPException

from shared.api.middleware import MAX_BODY_BYTES, BodyTooLarge
from shared.errors import InvalidRequest

MAX_DEPTH = 64  # a job is about 8 levels deep; anything far deeper is not a definition
_JSON_MEDIA = re.compile(r"^application/(?:[\w.+-]+\+)?json$")


async def json_body(request: Request, *, required: bool) -> dict[str, Any]:
    """The request's body as a JSON object; an empty body is `{}` unless `required`."""
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise BodyTooLarge(MAX_BODY_BYTES)
    if not raw.strip():
        if required:
            raise InvalidRequest("body", "a JSON body is required")
        return {}
    check_media_type(request.headers.get("content-type", "application/json"))
    return parse_json_object(raw)


def check_media_type(content_type: str) -> None:
    """`application/json` or any `application/...+json`, parameters ignored; else a 415."""
    media_type = content_type.split(";")[0].strip()
    if not _JSON_MEDIA.match(media_type.lower()):
        raise HTTPException(415, f"the body must be application/json, not '{media_type[:60]}'")


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """Strict JSON (see the module's docstring) whose top is an object."""
    try:
        value = json.loads(
            raw.decode("utf-8-sig"),
            parse_constant=_not_json,
            parse_float=_finite,
            object_pairs_hook=_unique_keys,
        )
    except UnicodeDecodeError as error:
        raise InvalidRequest("body", f"not UTF-8 ({error.reason} at byte {error.start})") from None
    except RecursionError:
        raise InvalidRequest("body", f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as error:  # json.JSONDecodeError, or the hooks' refusals
        raise InvalidRequest("body", f"not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise InvalidRequest("body", f"must be a JSON object, not {_json_kind(value)}")
    _check_tree(value)
    return value


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text[:40]} is too large for a number")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, item in pairs:
        if key in result:
            raise ValueError(f"duplicate key {json.dumps(key)[:60]}")
        result[key] = item
    return result


def _json_kind(value: object) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _check_tree(value: object) -> None:
    """Depth and text checks, without recursion (the path names a bad string's field)."""
    stack: list[tuple[object, str, int]] = [(value, "", 1)]
    while stack:
        node, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidRequest("body", f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            for key, item in node.items():
                _check_text(key, path)  # a bad key is not repeated: the target is its object
                stack.append((item, f"{path}.{key}" if path else key, depth + 1))
        elif isinstance(node, list):
            stack.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(node))
        elif isinstance(node, str):
            _check_text(node, path)


def _check_text(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(path or "body", "a lone surrogate is not text") from None
