"""Entity-group transactions on Table Storage, encoded and decoded directly.

Why not `TableClient.submit_transaction`: azure-data-tables builds the OData `$batch` body and
parses the answer through the stdlib `email` package, about 0.6 ms of CPU per operation. The
dispatcher commits three operations per occurrence, so that alone made a timer pass CPU-bound.
Writing the same body with string formatting and reading back only each operation's status and
ETag costs about a tenth of that. The request still goes through the TableClient's own
pipeline (its shared-key or SAS authentication, retries and logging); only the body is ours.

The SDK has no public way to send a request through that pipeline: the fast path calls the
generated client inside the TableClient, which is not part of its public API. So it is used only
with the azure-data-tables versions it was verified with (`VERIFIED_SDK_VERSIONS`); with any
other version, `submit` falls back to the public `TableClient.submit_transaction` (slower, same
results and the same `TransactionFailed`), and logs once that it does.

Format: https://learn.microsoft.com/rest/api/storageservices/performing-entity-group-transactions
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import quote, urlsplit

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest
from azure.data.tables import TableTransactionError, UpdateMode
from azure.data.tables.aio import TableClient

from shared.errors import StorageError

MAX_OPERATIONS = 100
VERIFIED_SDK_VERSIONS = frozenset({"12.7.0"})
"""azure-data-tables versions whose TableClient internals the fast path was tested against."""
_SERVICE_VERSION = "2019-02-02"  # what azure-data-tables 12.7 sends
_INT32 = range(-(2**31), 2**31)


class Kind(StrEnum):
    INSERT = "insert"  # fails with 409 if the row exists
    REPLACE = "replace"  # fails with 404 if the row is gone, 412 if its ETag moved on
    UPSERT = "upsert"  # insert or replace, unconditionally
    DELETE = "delete"  # fails with 404 if the row is gone, 412 if its ETag moved on


@dataclass(frozen=True)
class Operation:
    kind: Kind
    entity: Mapping[str, Any]
    """PartitionKey, RowKey and (except for DELETE) the properties: str, bool, int, float."""
    etag: str | None = None
    """For REPLACE and DELETE: only if the row still has this ETag (None: whatever it has)."""


class TransactionFailed(StorageError):
    """The service refused the transaction; none of its operations took effect."""

    def __init__(self, status: int, index: int | None, message: str) -> None:
        super().__init__(f"operation {index} failed with {status}: {message}")
        self.status = status
        self.index = index
        self.message = message


_log = logging.getLogger(__name__)


def fast_path_supported(sdk_version: str) -> bool:
    """Whether the fast encoder may be used with this azure-data-tables version."""
    return sdk_version in VERIFIED_SDK_VERSIONS


_SDK_VERSION = importlib.metadata.version("azure-data-tables")
_FAST = fast_path_supported(_SDK_VERSION)
if not _FAST:
    _log.warning(
        "azure-data-tables %s is not among the versions the fast transaction encoder was "
        "verified with (%s): transactions use TableClient.submit_transaction",
        _SDK_VERSION,
        ", ".join(sorted(VERIFIED_SDK_VERSIONS)),
    )


async def submit(table: TableClient, operations: Sequence[Operation]) -> list[str | None]:
    """Run up to 100 operations on one partition atomically; the ETag each one left (None for a
    delete). Raises TransactionFailed when an operation was refused (nothing was applied)."""
    if _FAST:
        return await submit_encoded(table, operations)
    return await submit_through_sdk(table, operations)


def _check_size(operations: Sequence[Operation]) -> None:
    if not 0 < len(operations) <= MAX_OPERATIONS:
        raise ValueError(f"a transaction holds 1 to {MAX_OPERATIONS} operations")


def check(operations: Sequence[Operation]) -> None:
    """The ValueError or TypeError `submit` would raise for these operations before sending
    anything, raised now (a caller grouping transactions checks each one on its own)."""
    _check_size(operations)
    for operation in operations:
        _edm_properties(operation.entity)


async def submit_through_sdk(
    table: TableClient, operations: Sequence[Operation]
) -> list[str | None]:
    """`submit` through the public `TableClient.submit_transaction`: the fallback."""
    _check_size(operations)
    for operation in operations:
        _edm_properties(operation.entity)  # the same TypeError as the fast path, before sending
    try:
        results = await table.submit_transaction([_sdk_operation(op) for op in operations])
    except TableTransactionError as error:
        status = error.status_code if error.status_code is not None else 0
        raise TransactionFailed(status, error.index, error.message) from None
    return [
        None if operation.kind is Kind.DELETE else result.get("etag")
        for operation, result in zip(operations, results, strict=True)
    ]


def _sdk_operation(operation: Operation) -> tuple[str, Mapping[str, Any], dict[str, Any]]:
    """The `submit_transaction` tuple doing what `_part` encodes for the fast path."""
    entity = {name: value for name, value in operation.entity.items() if value is not None}
    condition: dict[str, Any] = {}
    if operation.etag is not None:
        condition = {"etag": operation.etag, "match_condition": MatchConditions.IfNotModified}
    if operation.kind is Kind.INSERT:
        return ("create", entity, {})
    if operation.kind is Kind.DELETE:
        return ("delete", entity, condition)
    if operation.kind is Kind.UPSERT:
        return ("upsert", entity, {"mode": UpdateMode.REPLACE})
    return ("update", entity, {"mode": UpdateMode.REPLACE, **condition})


async def submit_encoded(table: TableClient, operations: Sequence[Operation]) -> list[str | None]:
    """`submit` with our own `$batch` encoder: the fast path, for verified SDK versions only."""
    _check_size(operations)
    base = _account_url(table)
    batch, changeset = f"batch_{uuid.uuid4()}", f"changeset_{uuid.uuid4()}"
    parts = [
        _part(changeset, index, base, table.table_name, operation)
        for index, operation in enumerate(operations)
    ]
    body = (
        f"--{batch}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n"
        + "".join(parts)
        + f"--{changeset}--\r\n--{batch}--\r\n"
    )
    request = HttpRequest(
        "POST",
        f"{base}/$batch",
        headers={
            "x-ms-version": _SERVICE_VERSION,
            "DataServiceVersion": "3.0",
            "MaxDataServiceVersion": "3.0;NetFx",
            "Content-Type": f"multipart/mixed; boundary={batch}",
            "Accept": "application/json",
        },
        content=body.encode("utf-8"),
    )
    # The generated client's send_request runs the TableClient's pipeline; stream=True keeps
    # its content-decoding policy away from the multipart answer. It is not public API, which
    # is why `submit` comes here only with the VERIFIED_SDK_VERSIONS.
    response = await table._client.send_request(request, stream=True)
    await response.read()
    if response.status_code != 202:
        raise HttpResponseError(response=response)
    results = _read_parts(response.text())
    for status, _, message in results:
        if not 200 <= status < 300:
            raise TransactionFailed(status, _failed_index(message), message)
    if len(results) != len(operations):
        raise HttpResponseError(
            message=f"transaction answered {len(results)} parts for {len(operations)} operations",
            response=response,
        )
    return [etag for _, etag, _ in results]


def _account_url(table: TableClient) -> str:
    """`https://host[/account]` without the SAS query (the pipeline adds authentication)."""
    parts = urlsplit(table.url)
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def _part(changeset: str, index: int, base: str, table: str, operation: Operation) -> str:
    entity = operation.entity
    keys = f"(PartitionKey='{_key(entity['PartitionKey'])}',RowKey='{_key(entity['RowKey'])}')"
    headers = ["Accept: application/json;odata=minimalmetadata", "DataServiceVersion: 3.0"]
    body = ""
    if operation.kind is Kind.INSERT:
        line = f"POST {base}/{table} HTTP/1.1"
        headers.append("Prefer: return-no-content")
    elif operation.kind is Kind.DELETE:
        line = f"DELETE {base}/{table}{keys} HTTP/1.1"
        headers.append(f"If-Match: {operation.etag or '*'}")
    else:
        line = f"PUT {base}/{table}{keys} HTTP/1.1"
        if operation.kind is Kind.REPLACE:
            headers.append(f"If-Match: {operation.etag or '*'}")
    if operation.kind is not Kind.DELETE:
        # ASCII-only JSON (non-ASCII as \u escapes), so its length in characters is in bytes.
        body = json.dumps(_edm_properties(entity))
        headers += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return (
        f"--{changeset}\r\nContent-Type: application/http\r\n"
        f"Content-Transfer-Encoding: binary\r\nContent-ID: {index}\r\n\r\n"
        f"{line}\r\n" + "\r\n".join(headers) + f"\r\n\r\n{body}\r\n"
    )


def _key(value: str) -> str:
    """A key inside the OData URL: quotes doubled, then percent-encoded."""
    return quote(value.replace("'", "''"), safe="")


def _edm_properties(entity: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON of an entity, typed the way azure-data-tables types it (int is Edm.Int32,
    float is Edm.Double); None means "no such property"."""
    properties: dict[str, Any] = {}
    for name, value in entity.items():
        if value is None:
            continue
        if isinstance(value, bool | str):
            properties[name] = value
        elif isinstance(value, int):
            if value not in _INT32:
                raise TypeError(f"{name}: {value} does not fit Edm.Int32")
            properties[name] = value
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise TypeError(f"{name}: {value} is not a storable number")
            properties[name] = value
            properties[f"{name}@odata.type"] = "Edm.Double"
        else:
            raise TypeError(f"{name}: {type(value).__name__} is not a supported property type")
    return properties


def _read_parts(text: str) -> list[tuple[int, str | None, str]]:
    """(status, ETag, body) of each operation's answer, in order."""
    results: list[tuple[int, str | None, str]] = []
    lines = iter(text.split("\r\n"))
    for line in lines:
        if not line.startswith("HTTP/1.1 "):
            continue
        status = int(line[9:12])
        etag = None
        for header in lines:
            if not header:
                break
            name, _, value = header.partition(":")
            if name.strip().lower() == "etag":
                etag = value.strip()
        body_lines = []
        for body_line in lines:
            if body_line.startswith("--"):
                break
            body_lines.append(body_line)
        results.append((status, etag, "\n".join(body_lines).strip()))
    return results


def _failed_index(body: str) -> int | None:
    """Table Storage starts a refused operation's error message with its index: "1:The ..."."""
    try:
        message = json.loads(body)["odata.error"]["message"]["value"]
    except (ValueError, KeyError, TypeError):
        return None
    head = str(message).split(":", 1)[0]
    return int(head) if head.isdigit() else None


__all__ = [
    "MAX_OPERATIONS",
    "VERIFIED_SDK_VERSIONS",
    "Kind",
    "Operation",
    "TransactionFailed",
    "check",
    "fast_path_supported",
    "submit",
    "submit_encoded",
    "submit_through_sdk",
]
