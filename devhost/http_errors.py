"""The local host's own error answers, in the API's ARM shape `{"error": {"code", "message"}}`.

A client of the scheduler API sees one error format whether the app or the host refused the
request (unknown path, missing key, body too large), so it needs one parser, not two.
"""

from __future__ import annotations

import json
from typing import Any

Response = tuple[int, list[tuple[str, str]], bytes]

SHOWN_TEXT_LIMIT = 200


def error_response(status: int, code: str, message: str, target: str | None = None) -> Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if target:
        error["target"] = target
    body = json.dumps({"error": error}).encode()
    return status, [("content-type", "application/json")], body


def not_found(method: str, path: str) -> Response:
    return error_response(
        404, "ResourceNotFound", f"no function serves {method} {shown(path)}", "path"
    )


def unauthorised() -> Response:
    """Never says which key was given or expected."""
    return error_response(
        401,
        "Unauthorized",
        "a function key is required: send it as the x-functions-key header or the code "
        "query parameter",
    )


def too_large(limit: int, setting: str) -> Response:
    return error_response(
        413,
        "RequestEntityTooLarge",
        f"the request body exceeds {limit} bytes (the host's limit, {setting})",
        "body",
    )


def shown(text: str) -> str:
    """Request text fit to echo in a message: printable characters only, bounded length."""
    printable = "".join(c if c.isprintable() else "?" for c in text[:SHOWN_TEXT_LIMIT])
    return printable + ("..." if len(text) > SHOWN_TEXT_LIMIT else "")
