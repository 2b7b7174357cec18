"""The output of a code-job attempt, as text: whole, a byte `Range`, or followed by long polling
(`?follow=true&offset=N`). The path is relative to a `.../jobCollections` prefix; the router is
mounted on both (shared/api/app.py)."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import Response

from shared.api.refs import CollectionRefDep, JobName, RuntimeDep
from shared.engine.outputs import OutputReader
from shared.errors import InvalidRequest

router = APIRouter()

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_TEXT = "text/plain; charset=utf-8"


@router.get(
    "/{jobCollectionName}/jobs/{jobName}/history/{historyId}/output",
    name="Jobs_GetHistoryOutput",
    summary="Output of a code-job attempt",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "The output (or what follows offset)"},
        206: {"content": {"text/plain": {}}, "description": "The byte range asked for"},
        416: {"description": "The range lies beyond the output"},
    },
)
async def get_output(
    jobName: JobName,
    historyId: str,
    rt: RuntimeDep,
    ref: CollectionRefDep,
    range_header: Annotated[str | None, Header(alias="Range")] = None,
    follow: Annotated[bool, Query(description="Wait up to 25 s for bytes after offset")] = False,
    offset: Annotated[int, Query(ge=0, description="With follow: bytes already read")] = 0,
) -> Response:
    """`X-Output-Ended` says whether the attempt is over; with `follow=true` the answer is the
    bytes after `offset` as soon as there are some (or the attempt ended, or 25 s passed), and
    `X-Output-Next-Offset` is where to continue."""
    await rt.jobs.get_job(ref, jobName)
    reader = OutputReader(rt.store.outputs)
    name = reader.name_of(ref, jobName, historyId)
    if follow:
        found = await reader.follow(name, offset)
        headers = _headers(found.size, found.ended)
        headers["X-Output-Next-Offset"] = str(offset + len(found.data))
        return Response(found.data, 200, headers=headers, media_type=_TEXT)
    if range_header is None:
        found = await reader.read(name)
        return Response(
            found.data, 200, headers=_headers(found.size, found.ended), media_type=_TEXT
        )
    start, end = _parse_range(range_header)
    whole = await reader.read(name, 0, -1)  # the size and state only
    size = whole.size
    if start is None:  # bytes=-N: the last N bytes
        start, end = max(0, size - (end or 0)), size - 1
    if start >= size or (end is not None and end < start):
        headers = _headers(size, whole.ended)
        headers["Content-Range"] = f"bytes */{size}"
        return Response(b"", 416, headers=headers, media_type=_TEXT)
    found = await reader.read(name, start, end)
    last = start + len(found.data) - 1
    headers = _headers(found.size, found.ended)
    headers["Content-Range"] = f"bytes {start}-{last}/{found.size}"
    return Response(found.data, 206, headers=headers, media_type=_TEXT)


def _parse_range(text: str) -> tuple[int | None, int | None]:
    """`bytes=a-b`, `bytes=a-` or `bytes=-n` (one range)."""
    match = _RANGE.fullmatch(text.strip())
    if match is None or not (match.group(1) or match.group(2)):
        raise InvalidRequest("Range", "must be one byte range: bytes=first-last, first- or -count")
    first = int(match.group(1)) if match.group(1) else None
    last = int(match.group(2)) if match.group(2) else None
    if first is None and last == 0:
        raise InvalidRequest("Range", "bytes=-0 asks for nothing")
    return first, last


def _headers(size: int, ended: bool) -> dict[str, str]:
    return {
        "Accept-Ranges": "bytes",
        "X-Output-Ended": "true" if ended else "false",
        "X-Output-Size": str(size),
    }
