"""The dashboard's page and its assets (shared/dashboard/static/), at `/api/dashboard`.

They hold no secret and no data, so under Functions they are served by an anonymous function
(shared/api/functions.py): a browser cannot send a function key with the request for a page.
The page asks for the key and sends it with every call to the API."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from shared.errors import NotFound

STATIC = Path(__file__).resolve().parents[1] / "dashboard" / "static"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Everything comes from the app itself: no CDN, no inline script, no framing by other sites.
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter()


@router.get("/dashboard", name="Dashboard_Page", summary="The dashboard", include_in_schema=False)
async def page() -> Response:
    return _file(STATIC / "index.html")


@router.get("/dashboard/{asset:path}", name="Dashboard_Asset", include_in_schema=False)
async def asset(asset: str) -> Response:
    path = (STATIC / asset).resolve()
    if STATIC not in path.parents or not path.is_file() or path.suffix not in _TYPES:
        raise NotFound(f"no dashboard asset '{asset}'")
    return _file(path)


def _file(path: Path) -> Response:
    return FileResponse(path, media_type=_TYPES[path.suffix], headers=_HEADERS)
