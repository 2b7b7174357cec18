"""The Mobile Services tutorial's scheduled job as a code-job handler: poll an RSS/Atom feed and
store each new item once in a table.

Arguments: `url` (the feed), `table` (where items go; created if missing). The feed's ETag and
Last-Modified are kept in a row of that table (PartitionKey `feed-state`), sent back as
If-None-Match / If-Modified-Since, so an unchanged feed costs a 304. Each item's RowKey is a
digest of its id (else its link, else its title), inserted only if absent: a repeated run or a
retried attempt never stores an item twice. The fetch goes through the network guard.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import feedparser

from shared.kinds.code.handlers import CodeContext
from shared.kinds.http.guarded_get import guarded_get

STATE_PARTITION = "feed-state"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]


async def feed_poll(ctx: CodeContext) -> dict[str, Any]:
    url = str(ctx.arguments["url"])
    table = str(ctx.arguments["table"])
    storage = ctx.storage
    await storage.ensure_table(table)
    feed_key = _digest(url)
    state = await storage.read_entity(table, STATE_PARTITION, feed_key) or {}
    headers: dict[str, str] = {}
    if state.get("etag"):
        headers["If-None-Match"] = str(state["etag"])
    if state.get("last_modified"):
        headers["If-Modified-Since"] = str(state["last_modified"])
    seconds = max(1.0, (ctx.deadline - datetime.now(UTC)).total_seconds() - 1)
    fetched = await guarded_get(url, ctx.settings, headers=headers, timeout=seconds)
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
            "etag": fetched.headers.get("ETag", ""),
            "last_modified": fetched.headers.get("Last-Modified", ""),
        },
    )
    ctx.log.info("%d new item(s) of %d in the feed", new, len(parsed.entries))
    return {"status": 200, "new": new, "items": len(parsed.entries)}
