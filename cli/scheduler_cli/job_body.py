"""A job's JSON from `--file` and the action, retry and state flags of `sched job create`."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from scheduler_cli.errors import usage_error
from scheduler_cli.schedule import iso_duration

RETRY_TYPES = ("none", "fixed", "exponential")
OVERLAPS = ("allow", "forbid", "replace")


@dataclass(frozen=True)
class ActionFlags:
    http_post: str | None = None
    http_get: str | None = None
    body: str | None = None
    headers: tuple[str, ...] = ()
    timeout: int | None = None
    queue: str | None = None
    message: str | None = None
    connection_setting: str = "AzureWebJobsStorage"
    handler: str | None = None
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class RetryFlags:
    retry: str | None = None
    retry_count: int | None = None
    retry_interval: str | None = None
    min_backoff: str | None = None
    max_backoff: str | None = None


def read_file(path: str) -> dict[str, Any]:
    """JSON or YAML, `-` for stdin; a bare properties object is wrapped as the API would."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as error:
        raise usage_error(f"--file {path}: {error.strerror or error}") from None
    try:
        document = yaml.safe_load(text)  # JSON is YAML
    except yaml.YAMLError as error:
        raise usage_error(f"--file {path} is neither JSON nor YAML: {error}") from None
    if not isinstance(document, dict):
        raise usage_error(f"--file {path} must hold an object")
    return document if "properties" in document else {"properties": document}


def build_action(flags: ActionFlags, retry: RetryFlags) -> dict[str, Any] | None:
    """None when no action flag is given (the file's action, or a PATCH, stays)."""
    kinds = [
        name
        for name, given in (
            ("--http-post", flags.http_post),
            ("--http-get", flags.http_get),
            ("--queue", flags.queue),
            ("--handler", flags.handler),
        )
        if given
    ]
    if len(kinds) > 1:
        raise usage_error(f"give one action: {' or '.join(kinds)}")
    if not kinds:
        if flags.body or flags.headers or flags.args or flags.message:
            raise usage_error("--body, --header, --arg and --message go with an action flag")
        return None
    action: dict[str, Any]
    if flags.http_post or flags.http_get:
        request: dict[str, Any] = {
            "uri": flags.http_post or flags.http_get,
            "method": "POST" if flags.http_post else "GET",
        }
        if flags.headers:
            request["headers"] = dict(_pair("--header", h, ":") for h in flags.headers)
        if flags.body is not None:
            request["body"] = flags.body
        if flags.timeout is not None:
            request["timeoutSeconds"] = flags.timeout
        action = {"type": "Http", "request": request}
    elif flags.queue:
        action = {
            "type": "StorageQueue",
            "queueMessage": {
                "connectionSetting": flags.connection_setting,
                "queueName": flags.queue,
                "message": flags.message or "",
            },
        }
    else:
        code: dict[str, Any] = {"handler": flags.handler}
        if flags.args:
            code["arguments"] = {
                k: _value(v) for k, v in (_pair("--arg", a, "=") for a in flags.args)
            }
        if flags.timeout is not None:
            code["timeoutSeconds"] = flags.timeout
        action = {"type": "Code", "code": code}
    policy = build_retry(retry)
    if policy is not None:
        action["retryPolicy"] = policy
    return action


def build_retry(flags: RetryFlags) -> dict[str, Any] | None:
    if flags.retry is None:
        if any(v is not None for v in vars(flags).values()):
            raise usage_error("--retry-count, --retry-interval and the backoffs go with --retry")
        return None
    kind = flags.retry.lower()
    policy: dict[str, Any] = {"retryType": kind.capitalize()}
    if kind == "none":
        return policy
    if flags.retry_count is not None:
        policy["retryCount"] = flags.retry_count
    if kind == "fixed" and flags.retry_interval:
        policy["retryInterval"] = iso_duration("--retry-interval", flags.retry_interval)
    if kind == "exponential":
        if flags.min_backoff:
            policy["minBackoff"] = iso_duration("--min-backoff", flags.min_backoff)
        if flags.max_backoff:
            policy["maxBackoff"] = iso_duration("--max-backoff", flags.max_backoff)
    return policy


def build_error_action(
    http_post: str | None, queue: str | None, message: str | None
) -> dict[str, Any] | None:
    if http_post and queue:
        raise usage_error("give one error action: --error-http-post or --error-queue")
    if http_post:
        request: dict[str, Any] = {"uri": http_post, "method": "POST"}
        if message is not None:
            request["body"] = message
        return {"type": "Http", "request": request}
    if queue:
        return {
            "type": "StorageQueue",
            "queueMessage": {
                "connectionSetting": "AzureWebJobsStorage",
                "queueName": queue,
                "message": message or "",
            },
        }
    return None


def _pair(flag: str, text: str, separator: str) -> tuple[str, str]:
    key, sep, value = text.partition(separator)
    if not sep or not key.strip():
        raise usage_error(f"{flag} {text!r}: use KEY{separator}VALUE")
    return key.strip(), value.strip() if separator == ":" else value


def _value(text: str) -> Any:
    """`--arg n=3` is the number 3, `--arg tags=["a"]` a list; anything else a string."""
    try:
        return json.loads(text)
    except ValueError:
        return text
