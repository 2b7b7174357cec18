"""The Mobile Services tutorial's scheduled job as a code-job handler: poll an RSS/Atom feed and
store each new item once in a table.

Arguments: `url` (the feed), `table` (where items go; created if missing). The feed's ETag and
Last-Modified are kept in a row of that table (PartitionKey `feed-state`), sent back as
If-None-Match / If-Modified-Since, so an unchanged feed costs a 304. Each item's RowKey is a
digest of its id (else its link, else its title), inserted only if absent: a repeated run or a
retried attempt never stores an item twice. The fetch goes through the network guard.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime
from typing import Any

import feedparser

from shared.kinds.code.handlers import CodeContext
from shared.kinds.http.guarded import GuardedResponse, send_guarded
from shared.kinds.http.runner import USER_AGENT

STATE_PARTITION = "feed-state"
MAX_FEED_BYTES = 5 * 1024 * 1024


def _header(response: GuardedResponse, name: str) -> str:
    return next((v for k, v in response.headers if k.lower() == name.lower()), "")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]


async def feed_poll(ctx: CodeContext) -> dict[str, Any]:
    url = str(ctx.arguments["url"])
    table = str(ctx.arguments["table"])
    storage = ctx.storage
    await storage.ensure_table(table)
    feed_key = _digest(url)
    state = await storage.read_entity(table, STATE_PARTITION, feed_key) or {}
    headers = {"User-Agent": USER_AGENT}
    if state.get("etag"):
        headers["If-None-Match"] = str(state["etag"])
    if state.get("last_modified"):
        headers["If-Modified-Since"] = str(state["last_modified"])
    seconds = max(1.0, (ctx.deadline - datetime.now(UTC)).total_seconds() - 1)
    async with asyncio.timeout(seconds):
        fetched = await send_guarded(
            "GET",
            url,
            headers=headers,
            content=None,
            settings=ctx.settings,
            timeout=seconds,
            max_body=MAX_FEED_BYTES + 1,
        )
    if len(fetched.body) > MAX_FEED_BYTES:
        raise RuntimeError(f"the feed is larger than {MAX_FEED_BYTES} bytes")
    if fetched.status_code == 304:
        ctx.log.info("Feed not modified since the last poll: 0 new items")
        return {"status": 304, "new": 0}
    if fetched.status_code != 200:
        raise RuntimeError(f"the feed answered {fetched.status_code}")
    parsed = feedparser.parse(fetched.body)
    new = 0
    for entry in parsed.entries:
        identity = entry.get("id") or entry.get("link") or entry.get("title")
        if not identity:
            continue
        stored = await storage.insert_once(
            table,
            {
                "PartitionKey": feed_key,
                "RowKey": _digest(str(identity)),
                "title": str(entry.get("title", "")),
                "link": str(entry.get("link", "")),
                "published": str(entry.get("published", "")),
                "feed": url,
            },
        )
        new += 1 if stored else 0
    await storage.upsert(
        table,
        {
            "PartitionKey": STATE_PARTITION,
            "RowKey": feed_key,
            "url": url,
            "etag": _header(fetched, "ETag"),
            "last_modified": _header(fetched, "Last-Modified"),
        },
    )
    ctx.log.info("%d new item(s) of %d in the feed", new, len(parsed.entries))
    return {"status": 200, "new": new, "items": len(parsed.entries)}
