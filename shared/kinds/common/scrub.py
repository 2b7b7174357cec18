"""Keeping secrets out of job history: scrub every form of each secret first, then cut.

A target, a token endpoint or the storage service may echo what it was sent, in another form:
URL-encoded, JSON-escaped, base64 (`Basic base64(user:password)`), upper- or lower-cased. Each
form of each secret is replaced by `***`, case-insensitively. Cutting to a length limit comes
after, never before: a cut first can leave the head of a secret that no longer matches in full
(`Basic YWxpY2U6QmFz` is `alice:Bas`). A reader that keeps a prefix of a body must therefore read
`margin()` bytes more than it keeps, so every secret that starts inside the kept part is whole.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "***"
MIN_LENGTH = 4  # shorter values would garble messages more than they could leak


@functools.lru_cache(maxsize=256)
def forms(secret: str) -> tuple[str, ...]:
    """The spellings of `secret` a peer may echo, longest first."""
    raw = secret.encode()
    found = {
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        quote(secret),  # `/` kept, as in paths
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        base64.b64encode(raw).decode("ascii"),
        base64.b64encode(raw).decode("ascii").rstrip("="),
        base64.urlsafe_b64encode(raw).decode("ascii").rstrip("="),
    }
    return tuple(sorted((form for form in found if len(form) >= MIN_LENGTH), key=len, reverse=True))


def margin(secrets: Iterable[str]) -> int:
    """How many bytes the longest form of any of `secrets` takes."""
    return max((len(form.encode()) for secret in secrets for form in forms(secret)), default=0)


def scrub(text: str, secrets: Iterable[str], limit: int | None = None) -> str:
    """`text` with every form of every secret masked, then cut to `limit` UTF-8 bytes."""
    patterns = [form for secret in secrets if len(secret) >= MIN_LENGTH for form in forms(secret)]
    if patterns:
        patterns.sort(key=len, reverse=True)  # a longer form first: it may contain a shorter one
        alternatives = "|".join(re.escape(form) for form in patterns)
        text = re.sub(alternatives, MASK, text, flags=re.IGNORECASE)
    if limit is not None:
        text = text.encode()[:limit].decode("utf-8", errors="ignore")
    return text


__all__ = ["MASK", "forms", "margin", "scrub"]
