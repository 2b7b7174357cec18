"""The network guard's decisions: address classes, allow-lists, resolution, pinning."""

from __future__ import annotations

import ipaddress
import ssl

import httpx
import pytest

from shared.config import Settings
from shared.errors import ConfigError
from shared.kinds.http import network_guard
from shared.kinds.http.network_guard import (
    AddressClass,
    AddressOnlyTransport,
    NetworkPolicy,
    OutboundRefused,
    ResolutionFailed,
    VettedTarget,
    classify,
    pinned_request,
    vet_url,
)

A = AddressClass

CLASSES = [
    # loopback
    ("127.0.0.1", A.LOOPBACK),
    ("127.255.255.254", A.LOOPBACK),
    ("::1", A.LOOPBACK),
    # private
    ("10.0.0.5", A.PRIVATE),
    ("172.16.0.1", A.PRIVATE),
    ("172.31.255.255", A.PRIVATE),
    ("192.168.1.1", A.PRIVATE),
    ("fc00::1", A.PRIVATE),
    ("fd12:3456::1", A.PRIVATE),
    ("fec0::1", A.PRIVATE),
    # link-local
    ("169.254.1.1", A.LINK_LOCAL),
    ("fe80::1", A.LINK_LOCAL),
    # cloud metadata
    ("169.254.169.254", A.METADATA),
    ("fd00:ec2::254", A.METADATA),
    ("168.63.129.16", A.METADATA),
    ("100.100.100.200", A.METADATA),
    # unspecified
    ("0.0.0.0", A.UNSPECIFIED),
    ("0.1.2.3", A.UNSPECIFIED),
    ("::", A.UNSPECIFIED),
    # multicast
    ("224.0.0.1", A.MULTICAST),
    ("239.255.255.250", A.MULTICAST),
    ("ff02::1", A.MULTICAST),
    # reserved
    ("240.0.0.1", A.RESERVED),
    ("255.255.255.255", A.RESERVED),
    ("192.0.2.10", A.RESERVED),
    ("198.18.0.1", A.RESERVED),
    ("2001:db8::1", A.RESERVED),
    ("100::1", A.RESERVED),
    ("::7f00:1", A.RESERVED),  # IPv4-compatible (deprecated)
    # carrier-grade NAT
    ("100.64.0.1", A.SHARED),
    ("100.127.255.254", A.SHARED),
    # IPv4-mapped, NAT64 and 6to4 forms
    ("::ffff:127.0.0.1", A.LOOPBACK),
    ("::ffff:10.0.0.5", A.PRIVATE),
    ("::ffff:169.254.169.254", A.METADATA),
    ("::ffff:0.0.0.0", A.UNSPECIFIED),
    ("64:ff9b::a00:5", A.PRIVATE),  # NAT64 of 10.0.0.5
    ("64:ff9b::7f00:1", A.LOOPBACK),
    ("2002:a9fe:a9fe::1", A.METADATA),  # 6to4 of 169.254.169.254
    ("2002:c0a8:101::1", A.PRIVATE),  # 6to4 of 192.168.1.1
    # public
    ("8.8.8.8", None),
    ("20.50.2.1", None),
    ("172.32.0.1", None),
    ("100.128.0.1", None),
    ("2606:4700:4700::1111", None),
    ("::ffff:8.8.8.8", None),
    ("64:ff9b::808:808", None),
]


@pytest.mark.parametrize(("text", "expected"), CLASSES)
def test_every_address_class(text: str, expected: AddressClass | None) -> None:
    assert classify(ipaddress.ip_address(text)) is expected


@pytest.mark.parametrize(("text", "expected"), [c for c in CLASSES if c[1] is not None])
def test_non_public_addresses_are_refused_by_default(text: str, expected: AddressClass) -> None:
    reason = NetworkPolicy().refusal(ipaddress.ip_address(text))
    assert reason is not None
    assert f" {expected.value} address; " in reason
    assert "SCHEDULER_ALLOWED_NETWORKS" in reason


@pytest.mark.parametrize("text", [c[0] for c in CLASSES if c[1] is None])
def test_public_addresses_pass(text: str) -> None:
    assert NetworkPolicy().refusal(ipaddress.ip_address(text)) is None


def policy(value: str) -> NetworkPolicy:
    return NetworkPolicy.from_settings({"SCHEDULER_ALLOWED_NETWORKS": value})


def allowed(value: str, address: str) -> bool:
    return policy(value).refusal(ipaddress.ip_address(address)) is None


def test_named_networks_allow_their_class_only() -> None:
    assert allowed("loopback", "127.0.0.1")
    assert allowed("loopback", "::1")
    assert allowed("loopback", "::ffff:127.0.0.1")
    assert not allowed("loopback", "10.0.0.5")
    assert allowed("private", "10.0.0.5")
    assert allowed("private", "fd12::1")
    assert not allowed("private", "127.0.0.1")
    assert not allowed("private", "100.64.0.1")  # carrier-grade NAT is not "private"
    assert allowed("link-local", "169.254.1.1")
    assert allowed("link-local", "fe80::1")
    assert allowed(" Loopback , PRIVATE ,", "10.0.0.5")  # case, spaces, empty entries


def test_names_never_allow_metadata_addresses() -> None:
    assert not allowed("loopback,private,link-local", "169.254.169.254")
    assert not allowed("link-local", "fd00:ec2::254")
    assert not allowed("private", "::ffff:169.254.169.254")
    assert not allowed("169.254.0.0/16", "169.254.169.254")  # a range is not explicit
    assert not allowed("0.0.0.0/0", "168.63.129.16")
    assert allowed("169.254.169.254/32", "169.254.169.254")
    assert allowed("169.254.169.254", "169.254.169.254")
    assert allowed("168.63.129.16/32", "168.63.129.16")
    assert allowed("fd00:ec2::254/128", "fd00:ec2::254")


def test_cidrs_allow_what_they_contain() -> None:
    assert allowed("10.1.0.0/16", "10.1.2.3")
    assert not allowed("10.1.0.0/16", "10.2.0.1")
    assert allowed("loopback,10.1.0.0/16", "10.1.2.3")
    assert allowed("10.1.0.0/16", "::ffff:10.1.2.3")  # the IPv4 form matches the IPv4 CIDR
    assert allowed("10.1.2.3/16", "10.1.9.9")  # host bits are ignored
    assert allowed("100.64.0.0/10", "100.64.0.1")
    assert allowed("fd00:1::/32", "fd00:1::5")
    assert not allowed("fd00:1::/32", "fd00:2::5")
    assert allowed("0.0.0.0/32", "0.0.0.0")  # unspecified/reserved/multicast: by CIDR only
    assert allowed("224.0.0.0/4", "239.1.1.1")
    assert not allowed("loopback", "0.0.0.0")


def test_empty_setting_allows_nothing() -> None:
    assert policy("") == NetworkPolicy()
    assert NetworkPolicy.from_settings({}) == NetworkPolicy()


@pytest.mark.parametrize("bad", ["lopback", "10.0.0.0/33", "public", "10.0.0.0/8;private"])
def test_a_bad_setting_entry_is_named(bad: str) -> None:
    with pytest.raises(ValueError, match="SCHEDULER_ALLOWED_NETWORKS: .* is neither") as info:
        policy(bad)
    assert "loopback, private, link-local" in str(info.value)


def test_refusal_hints() -> None:
    refuse = NetworkPolicy().refusal
    assert refuse(ipaddress.ip_address("10.0.0.5")) == (
        "a private address; allow it with SCHEDULER_ALLOWED_NETWORKS (add 'private')"
    )
    assert refuse(ipaddress.ip_address("169.254.169.254")) == (
        "a cloud metadata address; allow it only by listing its exact address in "
        "SCHEDULER_ALLOWED_NETWORKS"
    )
    assert refuse(ipaddress.ip_address("224.0.0.1")) == (
        "a multicast address; allow it with a CIDR in SCHEDULER_ALLOWED_NETWORKS"
    )
    assert refuse(ipaddress.ip_address("0.0.0.0")) == (
        "an unspecified address; allow it with a CIDR in SCHEDULER_ALLOWED_NETWORKS"
    )


# --- vet_url -------------------------------------------------------------------------------------


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Replaces DNS: host -> addresses; resolution of anything else fails."""
    table: dict[str, list[str]] = {}

    async def fake(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError(-2, "Name or service not known")
        return table[host]

    monkeypatch.setattr(network_guard, "resolve", fake)
    return table


async def test_a_literal_address_is_checked_without_dns(answers: dict[str, list[str]]) -> None:
    with pytest.raises(OutboundRefused) as info:
        await vet_url("http://10.0.0.5:8080/hook?x=1", NetworkPolicy())
    assert str(info.value) == (
        "Refused to call 'http://10.0.0.5:8080': 10.0.0.5 is a private address; "
        "allow it with SCHEDULER_ALLOWED_NETWORKS (add 'private')"
    )
    target = await vet_url("https://8.8.8.8/x", NetworkPolicy())
    assert target == VettedTarget("8.8.8.8", 443, ("8.8.8.8",))


async def test_ipv6_literals(answers: dict[str, list[str]]) -> None:
    with pytest.raises(OutboundRefused) as info:
        await vet_url("http://[::ffff:127.0.0.1]:81/", NetworkPolicy())
    assert str(info.value).startswith(
        "Refused to call 'http://[::ffff:127.0.0.1]:81': ::ffff:7f00:1 (IPv4 127.0.0.1) is a "
        "loopback address; "
    )
    loopback = NetworkPolicy.parse("loopback")
    assert (await vet_url("http://[::1]/", loopback)).addresses == ("::1",)


async def test_a_name_is_refused_if_any_address_is_refused(answers: dict[str, list[str]]) -> None:
    answers["mixed.example"] = ["8.8.8.8", "10.0.0.5"]
    with pytest.raises(OutboundRefused) as info:
        await vet_url("https://mixed.example/hook", NetworkPolicy())
    assert str(info.value) == (
        "Refused to call 'https://mixed.example': mixed.example resolves to 10.0.0.5, "
        "a private address; allow it with SCHEDULER_ALLOWED_NETWORKS (add 'private')"
    )
    answers["public.example"] = ["8.8.8.8", "2606:4700:4700::1111"]
    target = await vet_url("https://PUBLIC.example:8443/a", NetworkPolicy())
    assert target == VettedTarget("public.example", 8443, ("8.8.8.8", "2606:4700:4700::1111"))


async def test_unresolvable_names_fail_clearly(answers: dict[str, list[str]]) -> None:
    with pytest.raises(ResolutionFailed, match="Could not resolve host 'nowhere.example'"):
        await vet_url("http://nowhere.example/", NetworkPolicy())
    answers["empty.example"] = []
    with pytest.raises(ResolutionFailed, match="no addresses"):
        await vet_url("http://empty.example/", NetworkPolicy())


def test_a_bad_setting_stops_the_start_instead_of_refusing_every_call() -> None:
    env = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}
    with pytest.raises(ConfigError, match="^SCHEDULER_ALLOWED_NETWORKS: 'lopback' is neither"):
        Settings.from_env({**env, "SCHEDULER_ALLOWED_NETWORKS": "lopback"})


async def test_international_names_are_checked_in_idna_form(
    answers: dict[str, list[str]],
) -> None:
    answers["xn--bcher-kva.example"] = ["10.0.0.1"]
    with pytest.raises(OutboundRefused, match="xn--bcher-kva.example resolves to 10.0.0.1"):
        await vet_url("http://bücher.example/", NetworkPolicy())


async def test_real_resolution_of_localhost() -> None:
    with pytest.raises(OutboundRefused, match="localhost resolves to .*a loopback address"):
        await vet_url("http://localhost:1/", NetworkPolicy())


# --- pinning -------------------------------------------------------------------------------------


def test_a_pinned_request_goes_to_the_address_for_the_jobs_host() -> None:
    target = VettedTarget("api.example", 8443, ("8.8.8.8", "2606:4700::1111"))
    original = httpx.Request(
        "POST",
        "https://API.example:8443/hook?x=1",
        headers={"X-Job": "1"},
        content=b"body",
        extensions={"timeout": {"connect": 5.0}},
    )
    first = pinned_request(original, target, "8.8.8.8")
    assert str(first.url) == "https://8.8.8.8:8443/hook?x=1"
    assert first.headers["host"] == "api.example:8443"
    assert first.headers["x-job"] == "1"
    assert first.headers["content-length"] == "4"
    assert first.read() == b"body"
    assert first.extensions == {"timeout": {"connect": 5.0}, "sni_hostname": "api.example"}
    second = pinned_request(original, target, "2606:4700::1111")
    assert str(second.url) == "https://[2606:4700::1111]:8443/hook?x=1"  # IPv6 in brackets
    assert second.read() == b"body"  # the body can be sent again to the next address


def test_a_plain_http_request_has_no_server_name_and_keeps_the_jobs_host_header() -> None:
    target = VettedTarget("api.example", 80, ("8.8.8.8",))
    original = httpx.Request("GET", "http://api.example/", headers={"Host": "virtual.example"})
    pinned = pinned_request(original, target, "8.8.8.8")
    assert str(pinned.url) == "http://8.8.8.8/"
    assert pinned.headers["host"] == "virtual.example"  # a Host the job set stays, as before
    assert "sni_hostname" not in pinned.extensions
    assert "content-length" not in pinned.headers


async def test_the_transport_refuses_hosts_that_were_not_vetted() -> None:
    transport = AddressOnlyTransport(ssl.create_default_context())
    async with httpx.AsyncClient(transport=transport) as client:
        for url in ("http://example.com/", "https://localhost:1/"):
            with pytest.raises(httpx.ConnectError, match="not checked by the network guard"):
                await client.get(url)
