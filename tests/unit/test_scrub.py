"""Scrubbing history text: every form of a secret, and scrubbing before cutting."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_plus

from shared.kinds.common.scrub import margin, scrub

SIG = "Zm9v+YmFy/cXV4="  # a SAS signature: '+', '/' and '=' change when URL-encoded


def test_every_form_is_masked() -> None:
    forms = [
        SIG,
        quote(SIG, safe=""),
        quote_plus(SIG),
        json.dumps(SIG),
        SIG.upper(),
        SIG.lower(),
        base64.b64encode(SIG.encode()).decode(),
    ]
    text = scrub(" ".join(forms), [SIG])
    assert text == '*** *** *** "***" *** *** ***'


def test_scrubbing_comes_before_the_cut() -> None:
    secret = "alice:Basic-password"
    header = "Basic " + base64.b64encode(secret.encode()).decode()
    text = "x" * 90 + header
    cut = scrub(text, [secret], limit=100)
    assert cut == "x" * 90 + "Basic ***"
    assert margin([secret]) >= len(header) - len("Basic ")


def test_the_cut_counts_utf8_bytes_and_keeps_whole_characters() -> None:
    assert scrub("éé", [], limit=3) == "é"


def test_short_values_are_left_alone() -> None:
    assert scrub("a b c", ["b"]) == "a b c"
