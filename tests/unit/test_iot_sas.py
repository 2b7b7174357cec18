"""IoT Hub shared access signatures: the token format, the checks, the policies setting."""

from __future__ import annotations

import base64
import re

import pytest

from shared.devices.sas import (
    AccessPolicy,
    IotRight,
    SasRefused,
    build_token,
    by_name,
    covers,
    parse_policies,
    parse_token,
    sign,
    verify,
)

KEY = b"k3y-for-known-answer-tests-32byt"
KEY_B64 = "azN5LWZvci1rbm93bi1hbnN3ZXItdGVzdHMtMzJieXQ="
EXPIRY = 1796010558
# openssl: printf 'localhost%3A7071%2Fapi\n1796010558' | openssl dgst -sha256 -mac HMAC
#   -macopt hexkey:<hex of KEY> -binary | base64   (the formula of azure-iot-hub sastoken.py)
KNOWN_SIG = "L1C09GFE/JjpE5IknjHUVshYwww+6euneiJzVOuENHg="
# The SDK URL-encodes it with urllib's quote(): "/" stays, "+" and "=" are escaped.
KNOWN_HEADER = (
    "SharedAccessSignature sr=localhost%3A7071%2Fapi"
    "&sig=L1C09GFE/JjpE5IknjHUVshYwww%2B6euneiJzVOuENHg%3D&se=1796010558&skn=owner"
)

OWNER = AccessPolicy("owner", KEY, frozenset(IotRight))
READER = AccessPolicy("reader", b"r" * 32, frozenset({IotRight.REGISTRY_READ}))
WRITER = AccessPolicy("writer", b"w" * 32, frozenset({IotRight.REGISTRY_WRITE}))
POLICIES = by_name([OWNER, READER, WRITER])
NOW = EXPIRY - 3600


def check(header: str | None, *, right: IotRight | None = IotRight.REGISTRY_READ, **request):
    values = {"scheme": "https", "host": "localhost:7071", "path": "/api/devices/d1", "now": NOW}
    values.update(request)
    return verify(header, policies=POLICIES, right=right, **values)  # type: ignore[arg-type]


def test_the_known_answer_token_is_what_the_sdk_sends_and_is_accepted():
    assert build_token("localhost:7071/api", "owner", KEY, EXPIRY) == KNOWN_HEADER
    assert sign("localhost%3A7071%2Fapi", KEY, EXPIRY) == (
        "L1C09GFE/JjpE5IknjHUVshYwww%2B6euneiJzVOuENHg%3D"
    )
    assert base64.b64decode(KEY_B64) == KEY
    assert check(KNOWN_HEADER) is OWNER


def test_fields_may_come_in_any_order_and_the_signature_may_be_fully_encoded():
    header = (
        "SharedAccessSignature skn=owner&se=1796010558"
        "&sig=L1C09GFE%2FJjpE5IknjHUVshYwww%2B6euneiJzVOuENHg%3D&sr=localhost%3A7071%2Fapi"
    )
    assert check(header) is OWNER
    token = parse_token(header)
    assert (token.resource, token.expiry, token.key_name) == (
        "localhost%3A7071%2Fapi",
        EXPIRY,
        "owner",
    )


def test_the_signature_is_over_the_raw_sr_text():
    """A token whose sr was signed decoded does not pass: the client signs what it sends."""
    raw = sign("localhost:7071/api", KEY, EXPIRY)
    header = f"SharedAccessSignature sr=localhost%3A7071%2Fapi&sig={raw}&se={EXPIRY}&skn=owner"
    with pytest.raises(SasRefused, match="signature"):
        check(header)


def test_an_expired_token_is_refused_after_a_small_skew():
    assert check(KNOWN_HEADER, now=EXPIRY + 59) is OWNER
    with pytest.raises(SasRefused, match="expired"):
        check(KNOWN_HEADER, now=EXPIRY + 61)


def test_a_wrong_key_and_an_unknown_policy_are_refused_alike():
    wrong_key = build_token("localhost:7071/api", "owner", b"x" * 32, EXPIRY)
    unknown = build_token("localhost:7071/api", "nobody", KEY, EXPIRY)
    messages = set()
    for header in (wrong_key, unknown):
        with pytest.raises(SasRefused) as refused:
            check(header)
        messages.add(str(refused.value))
    assert messages == {"the signature does not match any shared access policy"}


def test_a_tampered_expiry_breaks_the_signature():
    header = KNOWN_HEADER.replace("se=1796010558", "se=1896010558")
    with pytest.raises(SasRefused, match="signature"):
        check(header, now=NOW)


@pytest.mark.parametrize(
    ("host", "path"),
    [
        ("localhost:7071", "/api/devices/d1"),
        ("LOCALHOST:7071", "/API/Devices/d1"),
        ("localhost:7071", "/api"),
    ],
)
def test_sr_covers_the_host_and_path_it_prefixes(host, path):
    assert check(KNOWN_HEADER, host=host, path=path) is OWNER


@pytest.mark.parametrize(
    ("host", "path"),
    [
        ("localhost:7072", "/api/devices/d1"),  # another port
        ("example.com:7071", "/api/devices/d1"),  # another host
        ("localhost:7071", "/apix/devices/d1"),  # a prefix, but not at a segment boundary
        ("localhost:7071", "/other/devices/d1"),
        ("", "/api/devices/d1"),
    ],
)
def test_sr_for_another_host_or_path_is_refused(host, path):
    with pytest.raises(SasRefused, match="does not cover"):
        check(KNOWN_HEADER, host=host, path=path)


def test_a_default_port_written_on_one_side_only_does_not_matter():
    assert covers("example.com:443/api", "https", "example.com", "/api/twins/t")
    assert covers("example.com/api", "https", "example.com:443", "/api/twins/t")
    assert not covers("example.com:443/api", "http", "example.com", "/api/twins/t")


def test_rights_a_read_only_policy_may_read_but_not_write_or_invoke():
    header = build_token("localhost:7071/api", "reader", READER.key, EXPIRY)
    assert check(header, right=IotRight.REGISTRY_READ) is READER
    for right in (IotRight.REGISTRY_WRITE, IotRight.SERVICE_CONNECT):
        with pytest.raises(SasRefused, match=f"does not grant {right.value}"):
            check(header, right=right)


def test_registry_write_includes_read_as_in_iot_hub():
    header = build_token("localhost:7071/api", "writer", WRITER.key, EXPIRY)
    assert check(header, right=IotRight.REGISTRY_READ) is WRITER
    assert check(header, right=IotRight.REGISTRY_WRITE) is WRITER
    with pytest.raises(SasRefused):
        check(header, right=IotRight.SERVICE_CONNECT)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "no Authorization header"),
        ("", "no Authorization header"),
        ("Bearer abc", "not a SharedAccessSignature token"),
        ("SharedAccessSignature ", "not a SharedAccessSignature token"),
        ("SharedAccessSignature sr=a&sig=b&se=1", "lacks skn"),
        ("SharedAccessSignature sr=a&sig=b&se=x&skn=owner", "not a whole number"),
        ("SharedAccessSignature sr=a&sig=b&se=1&skn=o&extra=1", "unexpected field 'extra'"),
        ("SharedAccessSignature sr=a&sr=b&sig=b&se=1&skn=o", "field 'sr' twice"),
    ],
)
def test_malformed_headers_are_refused_with_a_reason(header, reason):
    with pytest.raises(SasRefused, match=reason):
        check(header)


def test_policies_setting_parses_names_keys_and_rights():
    text = (
        f"owner={KEY_B64}:RegistryRead,RegistryWrite,ServiceConnect; reader={KEY_B64}:registryread"
    )
    owner, reader = parse_policies(text)
    assert (owner.name, owner.key, owner.rights) == ("owner", KEY, frozenset(IotRight))
    assert reader.rights == frozenset({IotRight.REGISTRY_READ})
    assert KEY_B64 not in repr(owner) and repr(KEY) not in repr(owner)
    assert parse_policies("") == ()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("owner=not*base64:RegistryRead", "policy 'owner': the key is not base64"),
        ("owner=AAAA:RegistryRead", "must decode to 16-64 bytes (it decodes to 3)"),
        (f"owner={KEY_B64}", "the rights are missing"),
        (f"owner={KEY_B64}:DeviceConnect", "unknown right 'DeviceConnect'"),
        (f"owner={KEY_B64}:", "unknown right ''"),
        (f"={KEY_B64}:RegistryRead", "entry 1: expected name="),
        (f"a b={KEY_B64}:RegistryRead", "expected name="),
        (f"a={KEY_B64}:RegistryRead;a={KEY_B64}:ServiceConnect", "'a' is listed twice"),
    ],
)
def test_a_bad_policies_setting_says_why_without_quoting_the_key(text, reason):
    with pytest.raises(ValueError, match=re.escape(reason)) as refused:
        parse_policies(text)
    assert KEY_B64 not in str(refused.value) and "not*base64" not in str(refused.value)
