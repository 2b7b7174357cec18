"""The network guard with real servers on 127.0.0.1: refusals never reach the target, allowed calls
go to the address that was checked (DNS rebinding cannot redirect them), and TLS is verified for
the host name the job gave."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.errors import ConfigError
from shared.kinds.http.runner import HttpActionRunner
from shared.model.actions import JobAction
from tests.integration.test_outbound_auth import (
    PFX_PASSWORD,
    Pki,
    Server,
    _Handler,
    context,
    pki,  # noqa: F401  (a fixture, used by name)
    server_tls,
    serving,
)

pytestmark = pytest.mark.integration

NOTHING_ALLOWED = {"SCHEDULER_ALLOWED_NETWORKS": ""}

FakeDns = Callable[[str, Callable[[], str | list[str]]], list[str]]


@pytest.fixture
def target() -> Iterator[Server]:
    with serving(Server()) as server:
        yield server


def http(uri: str, **request: Any) -> JobAction:
    kind = "Https" if uri.startswith("https") else "Http"
    return JobAction.model_validate({"type": kind, "request": {"uri": uri, **request}})


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    """Answers (one address or several, in order) for made-up names at the socket level (what
    every resolver in the process uses); returns the log of names looked up. Other names resolve
    normally."""
    real = socket.getaddrinfo
    answers: dict[str, Callable[[], str | list[str]]] = {}
    lookups: list[str] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name in answers:
            lookups.append(name)
            answer = answers[name]()
            addresses = [answer] if isinstance(answer, str) else answer
            return [info for a in addresses for info in real(a, port, *args, **kwargs)]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    def add(name: str, answer: Callable[[], str | list[str]]) -> list[str]:
        answers[name] = answer
        return lookups

    return add


# --- refusals ------------------------------------------------------------------------------------


async def test_loopback_is_refused_by_default_and_the_target_never_called(
    target: Server, runner: HttpActionRunner
) -> None:
    outcome = await runner.run(http(target.url("/echo")), context(NOTHING_ALLOWED))
    assert not outcome.succeeded
    assert outcome.status_code is None
    assert outcome.message == (
        f"Http Action - Refused to call 'http://127.0.0.1:{target.port}': 127.0.0.1 is a "
        "loopback address; allow it with SCHEDULER_ALLOWED_NETWORKS (add 'loopback')"
    )
    assert target.seen == []


async def test_a_name_resolving_to_loopback_is_refused(
    target: Server, runner: HttpActionRunner
) -> None:
    outcome = await runner.run(
        http(target.url("/echo", host="localhost")), context(NOTHING_ALLOWED)
    )
    assert not outcome.succeeded
    assert outcome.message.startswith(
        f"Http Action - Refused to call 'http://localhost:{target.port}': localhost resolves to "
    )
    assert "a loopback address" in outcome.message
    assert target.seen == []


async def test_an_ipv4_mapped_ipv6_address_is_refused(runner: HttpActionRunner) -> None:
    outcome = await runner.run(http("http://[::ffff:127.0.0.1]:9/x"), context(NOTHING_ALLOWED))
    assert "::ffff:7f00:1 (IPv4 127.0.0.1) is a loopback address" in outcome.message


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("http://169.254.169.254/metadata/instance", "is a cloud metadata address"),
        ("http://168.63.129.16/machine", "is a cloud metadata address"),
        ("http://10.0.0.5/", "is a private address"),
        ("http://0.0.0.0:80/", "is an unspecified address"),
    ],
)
async def test_error_actions_are_guarded_too(
    runner: HttpActionRunner, uri: str, reason: str
) -> None:
    # Even with every name allowed, metadata addresses need their exact address listed.
    settings = {"SCHEDULER_ALLOWED_NETWORKS": "loopback,link-local"}
    action = JobAction.model_validate(
        {
            "type": "Http",
            "request": {"uri": "http://127.0.0.1:9/"},
            "errorAction": {"type": "Http", "request": {"uri": uri}},
        }
    )
    assert action.error_action is not None
    outcome = await runner.run(action.error_action, context(settings))
    assert not outcome.succeeded
    assert reason in outcome.message


def test_a_bad_setting_stops_the_start_instead_of_failing_every_attempt() -> None:
    with pytest.raises(ConfigError, match="^SCHEDULER_ALLOWED_NETWORKS: 'loopbak' is neither"):
        context({"SCHEDULER_ALLOWED_NETWORKS": "loopbak"})


async def test_an_unresolvable_name_fails_cleanly(runner: HttpActionRunner) -> None:
    outcome = await runner.run(http("http://no-such-host.invalid/"), context())
    assert not outcome.succeeded
    assert outcome.message.startswith(
        "Http Action - Could not resolve host 'no-such-host.invalid': "
    )


# --- allowed calls go to the checked address -----------------------------------------------------


async def test_allowed_names_are_called_with_their_own_host_header(
    target: Server, runner: HttpActionRunner
) -> None:
    outcome = await runner.run(http(target.url("/echo", host="localhost")), context())
    assert outcome.succeeded, outcome.message
    assert target.seen[0].headers["host"] == f"localhost:{target.port}"


async def test_a_cidr_allows_exactly_its_addresses(
    target: Server, runner: HttpActionRunner
) -> None:
    allowed = {"SCHEDULER_ALLOWED_NETWORKS": "127.0.0.1/32"}
    assert (await runner.run(http(target.url("/echo")), context(allowed))).succeeded
    other = {"SCHEDULER_ALLOWED_NETWORKS": "127.0.0.2/32"}
    outcome = await runner.run(http(target.url("/echo")), context(other))
    assert "127.0.0.1 is a loopback address" in outcome.message
    assert len(target.seen) == 1


async def test_the_connection_goes_to_the_vetted_address_not_a_second_lookup(
    target: Server,
    runner: HttpActionRunner,
    fake_dns: Callable[[str, Callable[[], str]], list[str]],
) -> None:
    """DNS rebinding: the first answer (checked) is allowed, later answers point elsewhere.

    Two servers share a port: the allowed one on 127.0.0.2 and the forbidden one on 127.0.0.1.
    A client that looked the name up again when connecting would reach the forbidden one.
    """
    allowed = Server(host="127.0.0.2")
    forbidden = Server(host="127.0.0.1", port=allowed.port)
    answers = iter(["127.0.0.2"])
    lookups = fake_dns("rebind.test", lambda: next(answers, "127.0.0.1"))
    settings = {"SCHEDULER_ALLOWED_NETWORKS": "127.0.0.2/32"}
    with serving(allowed), serving(forbidden):
        outcome = await runner.run(
            http(f"http://rebind.test:{allowed.port}/echo"), context(settings)
        )
        assert outcome.succeeded, outcome.message
        assert lookups == ["rebind.test"]  # looked up once, by the guard
        assert [s.headers["host"] for s in allowed.seen] == [f"rebind.test:{allowed.port}"]
        assert forbidden.seen == []
        # The next attempt checks again and now sees the forbidden address.
        outcome = await runner.run(
            http(f"http://rebind.test:{allowed.port}/echo"), context(settings)
        )
        assert "rebind.test resolves to 127.0.0.1, a loopback address" in outcome.message
        assert forbidden.seen == []


async def test_pooled_connections_are_not_shared_across_host_names(
    target: Server,
    runner: HttpActionRunner,
    fake_dns: Callable[[str, Callable[[], str]], list[str]],
) -> None:
    fake_dns("one.test", lambda: "127.0.0.1")
    fake_dns("two.test", lambda: "127.0.0.1")
    for name in ("one.test", "two.test", "one.test"):
        uri = f"http://{name}:{target.port}/echo"
        assert (await runner.run(http(uri), context())).succeeded
    assert [s.headers["host"].split(":")[0] for s in target.seen] == [
        "one.test",
        "two.test",
        "one.test",
    ]


async def test_tls_is_verified_for_the_jobs_host_name_not_the_address(
    pki: Pki,  # noqa: F811
    runner: HttpActionRunner,
    tmp_path: Path,
    fake_dns: Callable[[str, Callable[[], str]], list[str]],
) -> None:
    """The certificate is for "localhost"; a name pinned to the same address does not match it."""
    fake_dns("elsewhere.test", lambda: "127.0.0.1")
    settings = {"SCHEDULER_EXTRA_CA_CERTS": str(pki.ca_file)}
    authentication = {
        "type": "ClientCertificate",
        "pfx": pki.client.pfx(PFX_PASSWORD),
        "password": PFX_PASSWORD,
    }
    with serving(Server(server_tls(pki, tmp_path))) as tls_target:
        good = http(tls_target.url("/cert", host="localhost"), authentication=authentication)
        outcome = await runner.run(good, context(settings))
        assert outcome.succeeded, outcome.message
        assert tls_target.seen[0].headers["host"] == f"localhost:{tls_target.port}"
        other = http(tls_target.url("/cert", host="elsewhere.test"), authentication=authentication)
        outcome = await runner.run(other, context(settings))
        assert not outcome.succeeded
        assert "CERTIFICATE_VERIFY_FAILED" in outcome.message
        assert "elsewhere.test" in outcome.message
        assert len(tls_target.seen) == 1


class KeepAliveHandler(_Handler):
    """Answers in HTTP/1.1, keeping the connection open for the next request."""

    protocol_version = "HTTP/1.1"


async def test_a_tls_connection_is_reused_only_for_the_name_it_was_verified_for(
    pki: Pki,  # noqa: F811
    runner: HttpActionRunner,
    tmp_path: Path,
    fake_dns: FakeDns,
) -> None:
    """Connections are pooled by address: a keep-alive connection verified for "localhost" must
    not carry a request for another name that resolves to the same address."""
    fake_dns("elsewhere.test", lambda: "127.0.0.1")
    server_names: list[str | None] = []
    tls = server_tls(pki, tmp_path)
    tls.sni_callback = lambda _socket, name, _context: server_names.append(name)
    settings = {"SCHEDULER_EXTRA_CA_CERTS": str(pki.ca_file)}
    authentication = {
        "type": "ClientCertificate",
        "pfx": pki.client.pfx(PFX_PASSWORD),
        "password": PFX_PASSWORD,
    }
    server = Server(tls)
    server.RequestHandlerClass = KeepAliveHandler
    with serving(server) as tls_target:
        for _ in range(2):
            good = http(tls_target.url("/cert", host="localhost"), authentication=authentication)
            outcome = await runner.run(good, context(settings))
            assert outcome.succeeded, outcome.message
        assert server_names == ["localhost"]  # one handshake: the connection was kept and reused
        other = http(tls_target.url("/cert", host="elsewhere.test"), authentication=authentication)
        outcome = await runner.run(other, context(settings))
        assert not outcome.succeeded
        assert "CERTIFICATE_VERIFY_FAILED" in outcome.message
        assert server_names == ["localhost", "elsewhere.test"]  # SNI is the job's host name
        assert len(tls_target.seen) == 2


async def test_the_vetted_addresses_are_tried_in_order(
    runner: HttpActionRunner, fake_dns: FakeDns
) -> None:
    """Nothing listens on the first address; the call goes on to the second."""
    live = Server(host="127.0.0.2")
    lookups = fake_dns("two-addresses.test", lambda: ["127.0.0.3", "127.0.0.2"])
    with serving(live):
        uri = f"http://two-addresses.test:{live.port}/echo"
        outcome = await runner.run(http(uri), context())
        assert outcome.succeeded, outcome.message
        assert lookups == ["two-addresses.test"]
        assert [s.headers["host"] for s in live.seen] == [f"two-addresses.test:{live.port}"]
    # None connects: the last connect error, naming the job's host (not an address).
    outcome = await runner.run(http(uri), context())
    assert outcome.message.startswith(
        "Http Action - Could not connect to host 'two-addresses.test': ConnectError"
    )


class Server6(Server):
    address_family = socket.AF_INET6


async def test_ipv6_addresses_are_called_in_brackets(
    runner: HttpActionRunner, fake_dns: FakeDns
) -> None:
    fake_dns("six.test", lambda: "::1")
    with serving(Server6(host="::1")) as six:
        by_name = await runner.run(http(f"http://six.test:{six.port}/echo"), context())
        assert by_name.succeeded, by_name.message
        literal = await runner.run(http(six.url("/echo", host="[::1]")), context())
        assert literal.succeeded, literal.message
        assert [s.headers["host"] for s in six.seen] == [
            f"six.test:{six.port}",
            f"[::1]:{six.port}",
        ]
