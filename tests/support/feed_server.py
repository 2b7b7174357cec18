"""A real RSS feed on 127.0.0.1 whose items the test changes; answers 304 to a matching ETag
(unless told to ignore it, as some feeds do)."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class FeedServer:
    items: list[str] = field(default_factory=list)  # item ids, newest last
    answers: list[int] = field(default_factory=list)  # the status of each request
    conditional: bool = True  # False: every request gets the whole feed (ETag ignored)
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/feed.xml"

    def body(self) -> str:
        entries = "".join(
            f"<item><guid>urn:item:{i}</guid><title>Item {i}</title>"
            f"<link>http://example.com/{i}</link></item>"
            for i in self.items
        )
        return (
            '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
            f"<link>http://example.com/</link><description>d</description>{entries}"
            "</channel></rss>"
        )

    async def start(self) -> FeedServer:
        app = web.Application()
        app.router.add_get("/feed.xml", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        self.port = server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = self.body()
        etag = '"' + hashlib.sha256(body.encode()).hexdigest()[:16] + '"'
        if self.conditional and request.headers.get("If-None-Match") == etag:
            self.answers.append(304)
            return web.Response(status=304, headers={"ETag": etag})
        self.answers.append(200)
        return web.Response(
            body=body.encode(), content_type="application/rss+xml", headers={"ETag": etag}
        )
