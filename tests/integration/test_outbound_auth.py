"""Outbound authentication against real servers on 127.0.0.1: a target that checks credentials, a
TLS target that requires a client certificate from a test CA, a token authority that checks the
client secret, and a managed-identity endpoint that checks its header."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, quote_plus, urlsplit

import pytest
from cryptography.hazmat.primitives import serialization

from shared.config import Settings
from shared.errors import ConfigError
from shared.kinds.base import ActionContext
from shared.kinds.http import runner as http_module
from shared.kinds.http.runner import HttpActionRunner
from shared.model.actions import JobAction
from tests.support.test_ca import Issued, issue, make_ca

pytestmark = pytest.mark.integration

PFX_PASSWORD = "pfx-pw-4471"
BASIC_PASSWORD = "basic-pw-8812"
AAD_SECRET = "aad-secret-3390"
IDENTITY_HEADER = "identity-header-5521"
TENANT = "contoso.onmicrosoft.com"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"
AUDIENCE = "api://scheduler-target"
ALLOW_LOOPBACK = {"SCHEDULER_ALLOWED_NETWORKS": "loopback"}
STORAGE = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}  # never used by these actions


# --- a test PKI ----------------------------------------------------------------------------------


@dataclass
class Pki:
    ca: Issued
    ca_file: Path  # PEM bundle to trust (SCHEDULER_EXTRA_CA_CERTS)
    server: Issued  # for DNS "localhost" only: an IP or another name must not verify
    client: Issued
    stranger: Issued  # a client certificate from another CA


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = make_ca("Scheduler Test CA")
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))
    return Pki(
        ca=ca,
        ca_file=ca_file,
        server=issue(ca, "localhost", dns=("localhost",)),
        client=issue(ca, "scheduler-client"),
        stranger=issue(make_ca("Other CA"), "stranger"),
    )


# --- a scriptable server on 127.0.0.1 ------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    client_cn: str | None


@dataclass
class Script:
    """What the server answers; tests change it."""

    basic: str = "Basic " + base64.b64encode(f"alice:{BASIC_PASSWORD}".encode()).decode()
    issued_tokens: list[str] = field(default_factory=list)
    expires_in: Any = 3600
    token_delay: float = 0.0
    msi_answer: Callable[[], dict[str, Any]] | None = None
    error_description: str = "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 1234"


class Server(ThreadingHTTPServer):
    """Records every request; TLS (requiring a client certificate) when given a context."""

    daemon_threads = True

    def __init__(
        self, tls: ssl.SSLContext | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        super().__init__((host, port), _Handler)
        self.tls = tls
        self.seen: list[Seen] = []
        self.script = Script()
        self.lock = threading.Lock()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is not None:
            request.settimeout(5)
            request = self.tls.wrap_socket(request, server_side=True)  # handshake in this thread
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Refused handshakes are what some tests expect; keep the output quiet."""

    def paths(self) -> list[str]:
        return [s.path for s in self.seen]


class _Handler(BaseHTTPRequestHandler):
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        peer = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
        client_cn = None
        if peer:
            subject: Any = peer["subject"]
            client_cn = dict(rdn[0] for rdn in subject).get("commonName")
        seen = Seen(
            self.command,
            parts.path,
            parse_qs(parts.query),
            {k.lower(): v for k, v in self.headers.items()},
            body,
            client_cn,
        )
        with self.server.lock:
            self.server.seen.append(seen)
        script = self.server.script
        auth = seen.headers.get("authorization", "")
        if parts.path == "/basic":
            self._reply(200 if auth == script.basic else 401, b"basic")
        elif parts.path == "/bearer":
            tokens = [f"Bearer {t}" for t in script.issued_tokens]
            self._reply(200 if auth in tokens else 401, b"bearer")
        elif parts.path == "/echo":
            self._reply(200, f"you sent {auth}".encode())
        elif parts.path == "/echo-header":
            self._reply(200, b"see the header", headers={"X-Echo": auth})
        elif parts.path == "/echo-across-the-cut":
            # The header starts 10 bytes before the 2048 bytes history keeps.
            self._reply(200, b"x" * 2038 + auth.encode())
        elif parts.path == "/echo-forms":
            _, _, pair = base64.b64decode(auth.split()[-1]).decode().partition(":")
            forms = [quote(pair), quote_plus(pair), json.dumps(pair), pair.upper(), pair.lower()]
            forms.append(base64.b64encode(pair.encode()).decode())
            self._reply(200, " | ".join(forms).encode())
        elif parts.path == "/cert":
            self._reply(200, f"hello {client_cn}".encode())
        elif parts.path.endswith("/oauth2/v2.0/token"):
            self._token(seen)
        elif parts.path == "/msi":
            self._msi(seen)
        else:
            self._reply(404, b"")

    def _token(self, seen: Seen) -> None:
        script = self.server.script
        form = {k: v[0] for k, v in parse_qs(seen.body.decode()).items()}
        time.sleep(script.token_delay)
        if seen.method != "POST" or form.get("grant_type") != "client_credentials":
            self._json(400, {"error": "unsupported_grant_type"})
        elif form.get("client_id") != CLIENT_ID or form.get("client_secret") != AAD_SECRET:
            self._json(
                401,
                {"error": "invalid_client", "error_description": script.error_description},
            )
        elif form.get("scope") != f"{AUDIENCE}/.default":
            self._json(400, {"error": "invalid_scope"})
        else:
            token = f"aad-token-{len(script.issued_tokens) + 1}"
            script.issued_tokens.append(token)
            self._json(
                200,
                {"token_type": "Bearer", "expires_in": script.expires_in, "access_token": token},
            )

    def _msi(self, seen: Seen) -> None:
        script = self.server.script
        if seen.headers.get("x-identity-header") != IDENTITY_HEADER:
            self._json(401, {"error": {"code": "Unauthorized", "message": "bad header"}})
            return
        if seen.query.get("api-version") != ["2019-08-01"] or "resource" not in seen.query:
            self._json(400, {"statusCode": 400, "message": "bad request"})
            return
        token = f"msi-token-{len(script.issued_tokens) + 1}"
        script.issued_tokens.append(token)
        answer = {
            "access_token": token,
            "expires_on": str(int(time.time()) + 3600),
            "resource": seen.query["resource"][0],
            "token_type": "Bearer",
        }
        if script.msi_answer is not None:
            answer = {**answer, **script.msi_answer()}
        self._json(200, answer)

    def _json(self, status: int, data: dict[str, Any]) -> None:
        self._reply(status, json.dumps(data).encode(), "application/json")

    def _reply(
        self,
        status: int,
        body: bytes,
        content_type: str = "text/plain",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = _handle


@contextlib.contextmanager
def serving(server: Server) -> Iterator[Server]:
    """Serves on a thread for the duration of the block."""
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def server_tls(pki: Pki, directory: Path) -> ssl.SSLContext:
    """Serves the "localhost" certificate and requires a client certificate from the test CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert_file, key_file = pki.server.pem_files(directory, "server")
    context.load_cert_chain(cert_file, key_file)
    context.load_verify_locations(cafile=pki.ca_file)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


@pytest.fixture
def target() -> Iterator[Server]:
    with serving(Server()) as server:
        yield server


@pytest.fixture
def authority() -> Iterator[Server]:
    with serving(Server()) as server:
        yield server


@pytest.fixture
def tls_target(pki: Pki, tmp_path: Path) -> Iterator[Server]:
    with serving(Server(server_tls(pki, tmp_path))) as server:
        yield server


def context(settings: dict[str, str] | None = None) -> ActionContext:
    """A context whose settings are these app settings, parsed as at start-up."""
    app_settings = {**STORAGE, **ALLOW_LOOPBACK, **(settings or {})}
    return ActionContext(
        collection="coll-1",
        job="job-1",
        nominal=datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC),
        attempt_tag="tag-1",
        request_id="req-1",
        idempotency_key="key-1",
        retry_count=0,
        repeat_count=1,
        default_timeout=dt.timedelta(seconds=10),
        settings=Settings.from_env(app_settings),
        app_settings=app_settings,
    )


def action(uri: str, authentication: dict[str, Any] | None, **request: Any) -> JobAction:
    return JobAction.model_validate(
        {
            "type": "Https" if uri.startswith("https") else "Http",
            "request": {"uri": uri, "authentication": authentication, **request},
        }
    )


def assert_no_secret(text: str, *more: str) -> None:
    for secret in (BASIC_PASSWORD, AAD_SECRET, IDENTITY_HEADER, PFX_PASSWORD, *more):
        assert secret not in text


# --- Basic ---------------------------------------------------------------------------------------

BASIC = {"type": "Basic", "username": "alice", "password": BASIC_PASSWORD}


async def test_basic_sends_the_header_and_overrides_the_jobs_own(
    target: Server, runner: HttpActionRunner
) -> None:
    job = action(target.url("/basic"), BASIC, headers={"Authorization": "Bearer mine"})
    outcome = await runner.run(job, context())
    assert outcome.succeeded, outcome.message
    [seen] = target.seen
    assert seen.headers["authorization"] == target.script.basic


async def test_basic_with_a_wrong_password_fails_with_the_targets_answer(
    target: Server, runner: HttpActionRunner
) -> None:
    wrong = {**BASIC, "password": "not-the-password"}
    outcome = await runner.run(action(target.url("/basic"), wrong), context())
    assert not outcome.succeeded
    assert outcome.status_code == 401
    assert_no_secret(outcome.message, "not-the-password")


async def test_credentials_echoed_by_the_target_are_scrubbed_from_history(
    target: Server, runner: HttpActionRunner
) -> None:
    outcome = await runner.run(action(target.url("/echo"), BASIC), context())
    assert outcome.succeeded
    assert outcome.message.endswith("Body: you sent Basic ***")
    assert_no_secret(outcome.message, target.script.basic.split()[1])


async def test_an_echo_across_the_history_cut_leaves_no_part_of_the_secret(
    target: Server, runner: HttpActionRunner
) -> None:
    outcome = await runner.run(action(target.url("/echo-across-the-cut"), BASIC), context())
    encoded = target.script.basic.split()[1]
    assert encoded[:8] not in outcome.message  # before: "Basic YWxpY2U6" survived the cut
    assert outcome.message.endswith("x" * 2038 + "Basic ***")


async def test_every_form_of_the_password_is_scrubbed(
    target: Server, runner: HttpActionRunner
) -> None:
    password = 'Pa ss/"wörd"&+1'
    basic = {**BASIC, "password": password}
    outcome = await runner.run(action(target.url("/echo-forms"), basic), context())
    assert outcome.succeeded
    body = outcome.message.split("Body: ", 1)[1]
    assert body == '*** | *** | "***" | *** | *** | ***', body


async def test_no_log_record_carries_a_secret_with_debug_logging_on(
    target: Server, runner: HttpActionRunner, caplog: pytest.LogCaptureFixture
) -> None:
    """As with devhost --verbose: every logger at DEBUG, a target echoing the header back."""
    caplog.set_level(logging.DEBUG)
    outcome = await runner.run(action(target.url("/echo-header"), BASIC), context())
    assert outcome.succeeded
    assert "X-Echo: Basic ***" in outcome.message
    encoded = target.script.basic.split()[1]
    assert any(record.name == "httpx" for record in caplog.records)  # capture works
    for record in caplog.records:
        text = record.getMessage()
        assert encoded not in text and BASIC_PASSWORD not in text, (record.name, text)


async def test_without_authentication_the_jobs_own_header_is_sent(
    target: Server, runner: HttpActionRunner
) -> None:
    job = action(target.url("/echo"), None, headers={"Authorization": "Bearer mine"})
    outcome = await runner.run(job, context())
    assert outcome.message.endswith("Body: you sent Bearer mine")


# --- ClientCertificate ---------------------------------------------------------------------------


def certificate(issued: Issued) -> dict[str, Any]:
    return {"type": "ClientCertificate", "pfx": issued.pfx(PFX_PASSWORD), "password": PFX_PASSWORD}


async def test_client_certificate_opens_mutual_tls(
    pki: Pki, tls_target: Server, runner: HttpActionRunner
) -> None:
    job = action(tls_target.url("/cert", host="localhost"), certificate(pki.client))
    outcome = await runner.run(job, context({"SCHEDULER_EXTRA_CA_CERTS": str(pki.ca_file)}))
    assert outcome.succeeded, outcome.message
    assert outcome.message.endswith("Body: hello scheduler-client")
    assert [s.client_cn for s in tls_target.seen] == ["scheduler-client"]


async def test_mutual_tls_fails_without_a_certificate_or_with_a_strangers(
    pki: Pki, tls_target: Server, runner: HttpActionRunner
) -> None:
    settings = {"SCHEDULER_EXTRA_CA_CERTS": str(pki.ca_file)}
    uri = tls_target.url("/cert", host="localhost")
    for authentication in (None, certificate(pki.stranger)):
        outcome = await runner.run(action(uri, authentication), context(settings))
        assert not outcome.succeeded
        assert outcome.status_code is None
        assert outcome.message.startswith("Http Action - "), outcome.message
        assert_no_secret(outcome.message)
    assert tls_target.seen == []
    # The right certificate still works on the same runner (separate connection pools).
    outcome = await runner.run(action(uri, certificate(pki.client)), context(settings))
    assert outcome.succeeded, outcome.message


async def test_idle_clients_beyond_the_limit_are_closed(
    pki: Pki, tls_target: Server, runner: HttpActionRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_module, "MAX_CLIENTS", 1)
    settings = {"SCHEDULER_EXTRA_CA_CERTS": str(pki.ca_file)}
    uri = tls_target.url("/cert", host="localhost")
    for authentication in (certificate(pki.client), None, certificate(pki.client)):
        await runner.run(action(uri, authentication), context(settings))
        assert len(runner._clients) == 1
    assert [s.client_cn for s in tls_target.seen] == ["scheduler-client"] * 2


async def test_server_certificates_are_verified(
    pki: Pki, tls_target: Server, runner: HttpActionRunner
) -> None:
    # Without the test CA the server's certificate is not trusted.
    uri = tls_target.url("/cert", host="localhost")
    outcome = await runner.run(action(uri, certificate(pki.client)), context())
    assert not outcome.succeeded
    assert "CERTIFICATE_VERIFY_FAILED" in outcome.message
    # With it, the certificate (for "localhost") does not match the address 127.0.0.1.
    settings = {"SCHEDULER_EXTRA_CA_CERTS": str(pki.ca_file)}
    by_ip = action(tls_target.url("/cert"), certificate(pki.client))
    outcome = await runner.run(by_ip, context(settings))
    assert not outcome.succeeded
    assert "CERTIFICATE_VERIFY_FAILED" in outcome.message
    assert tls_target.seen == []


def test_a_missing_extra_ca_bundle_stops_the_start(tmp_path: Path) -> None:
    """It used to fail every attempt of every HTTPS job instead."""
    missing = str(tmp_path / "nope.pem")
    with pytest.raises(ConfigError) as caught:
        context({"SCHEDULER_EXTRA_CA_CERTS": missing})
    assert str(caught.value) == f"SCHEDULER_EXTRA_CA_CERTS: '{missing}' is not a file"


# --- ActiveDirectoryOAuth ------------------------------------------------------------------------

AAD = {
    "type": "ActiveDirectoryOAuth",
    "tenant": TENANT,
    "audience": AUDIENCE,
    "clientId": CLIENT_ID,
    "secret": AAD_SECRET,
}


def aad_settings(authority: Server) -> dict[str, str]:
    return {"SCHEDULER_AAD_AUTHORITY": f"http://127.0.0.1:{authority.port}/"}


async def test_aad_token_is_requested_once_and_reused(
    target: Server, authority: Server, runner: HttpActionRunner
) -> None:
    target.script = authority.script  # the target accepts the tokens the authority issued
    job = action(target.url("/bearer"), AAD)
    for _ in range(2):
        outcome = await runner.run(job, context(aad_settings(authority)))
        assert outcome.succeeded, outcome.message
    assert authority.paths() == [f"/{TENANT}/oauth2/v2.0/token"]
    [request] = authority.seen
    assert request.method == "POST"
    assert parse_qs(request.body.decode()) == {
        "grant_type": ["client_credentials"],
        "client_id": [CLIENT_ID],
        "client_secret": [AAD_SECRET],
        "scope": [f"{AUDIENCE}/.default"],
    }
    assert [s.headers["authorization"] for s in target.seen] == ["Bearer aad-token-1"] * 2


async def test_aad_token_is_fetched_again_when_it_expires(
    target: Server, authority: Server, runner: HttpActionRunner
) -> None:
    target.script = authority.script
    authority.script.expires_in = "2"  # a string, as some authorities send; used for 1 s
    job = action(target.url("/bearer"), AAD)
    for _ in range(2):
        assert (await runner.run(job, context(aad_settings(authority)))).succeeded
    assert len(authority.seen) == 1
    await asyncio.sleep(1.2)
    assert (await runner.run(job, context(aad_settings(authority)))).succeeded
    assert len(authority.seen) == 2
    assert target.seen[-1].headers["authorization"] == "Bearer aad-token-2"


async def test_concurrent_calls_share_one_token_request(
    target: Server, authority: Server, runner: HttpActionRunner
) -> None:
    target.script = authority.script
    authority.script.token_delay = 0.2
    job = action(target.url("/bearer"), AAD)
    outcomes = await asyncio.gather(
        *(runner.run(job, context(aad_settings(authority))) for _ in range(5))
    )
    assert all(o.succeeded for o in outcomes)
    assert len(authority.seen) == 1
    assert len(target.seen) == 5


async def test_a_token_is_cached_per_secret(
    target: Server, authority: Server, runner: HttpActionRunner
) -> None:
    target.script = authority.script
    good = action(target.url("/bearer"), AAD)
    assert (await runner.run(good, context(aad_settings(authority)))).succeeded
    wrong = action(target.url("/bearer"), {**AAD, "secret": "guessed-secret"})
    outcome = await runner.run(wrong, context(aad_settings(authority)))
    assert not outcome.succeeded  # the good secret's token is not handed out
    assert len(authority.seen) == 2


async def test_a_refused_secret_is_a_failed_attempt_without_the_secret(
    target: Server, authority: Server, runner: HttpActionRunner
) -> None:
    job = action(target.url("/bearer"), {**AAD, "secret": "wrong-secret-1"})
    outcome = await runner.run(job, context(aad_settings(authority)))
    assert not outcome.succeeded
    assert outcome.status_code is None
    assert outcome.message == (
        "Http Action - Could not get a token from the authority: HTTP 401 invalid_client: "
        "AADSTS7000215: Invalid client secret provided."
    )
    assert target.seen == []
    assert_no_secret(outcome.message, "wrong-secret-1")


async def test_an_echoed_secret_is_scrubbed_before_the_description_is_cut(
    target: Server, authority: Server, runner: HttpActionRunner
) -> None:
    authority.script.error_description = "y" * 190 + "wrong-secret-1 was refused"
    job = action(target.url("/bearer"), {**AAD, "secret": "wrong-secret-1"})
    outcome = await runner.run(job, context(aad_settings(authority)))
    assert outcome.message.endswith("y" * 190 + "*** was...")  # not "y...ywrong-s..."
    assert "wrong-s" not in outcome.message


async def test_an_unreachable_authority_is_a_failed_attempt(
    target: Server, runner: HttpActionRunner
) -> None:
    settings = {"SCHEDULER_AAD_AUTHORITY": "http://127.0.0.1:9"}
    outcome = await runner.run(action(target.url("/bearer"), AAD), context(settings))
    assert not outcome.succeeded
    assert outcome.message.startswith(
        "Http Action - Could not get a token from the authority: ConnectError"
    )
    assert target.seen == []


def test_a_malformed_authority_setting_stops_the_start() -> None:
    """It used to fail every attempt of every ActiveDirectoryOAuth job instead."""
    with pytest.raises(ConfigError, match="^SCHEDULER_AAD_AUTHORITY: 'login.example.com' is not"):
        context({"SCHEDULER_AAD_AUTHORITY": "login.example.com"})


async def test_a_refused_scope_is_a_failed_attempt(
    target: Server, authority: Server, runner: HttpActionRunner
) -> None:
    job = action(target.url("/bearer"), {**AAD, "audience": "api://other"})
    outcome = await runner.run(job, context(aad_settings(authority)))
    assert outcome.message == (
        "Http Action - Could not get a token from the authority: HTTP 400 invalid_scope"
    )


async def test_a_token_without_a_lifetime_is_not_cached(
    target: Server, authority: Server, runner: HttpActionRunner
) -> None:
    target.script = authority.script
    authority.script.expires_in = None
    job = action(target.url("/bearer"), AAD)
    for _ in range(2):
        assert (await runner.run(job, context(aad_settings(authority)))).succeeded
    assert len(authority.seen) == 2


async def test_the_target_is_checked_before_a_token_is_requested(
    target: Server, authority: Server, runner: HttpActionRunner
) -> None:
    ctx = context({**aad_settings(authority), "SCHEDULER_ALLOWED_NETWORKS": ""})
    outcome = await runner.run(action(target.url("/bearer"), AAD), ctx)
    assert "is a loopback address" in outcome.message
    assert authority.seen == [] and target.seen == []


# --- ManagedServiceIdentity ----------------------------------------------------------------------

MSI = {"type": "ManagedServiceIdentity", "audience": AUDIENCE}


ALLOW_MSI = {
    "SCHEDULER_IDENTITY_AUDIENCES": AUDIENCE,
    "SCHEDULER_IDENTITY_CLIENT_IDS": "user-assigned-1",
}


def msi_settings(identity: Server, header: str = IDENTITY_HEADER) -> dict[str, str]:
    return {"IDENTITY_ENDPOINT": identity.url("/msi"), "IDENTITY_HEADER": header, **ALLOW_MSI}


async def test_msi_token_from_the_identity_endpoint(
    target: Server, authority: Server, runner: HttpActionRunner
) -> None:
    target.script = authority.script
    job = action(target.url("/bearer"), MSI)
    for _ in range(2):
        outcome = await runner.run(job, context(msi_settings(authority)))
        assert outcome.succeeded, outcome.message
    [request] = authority.seen  # cached: expires_on is an hour away
    assert request.method == "GET"
    assert request.query == {"resource": [AUDIENCE], "api-version": ["2019-08-01"]}
    assert request.headers["x-identity-header"] == IDENTITY_HEADER
    assert target.seen[0].headers["authorization"] == "Bearer msi-token-1"


async def test_msi_user_assigned_identity_sends_its_client_id(
    target: Server, authority: Server, runner: HttpActionRunner
) -> None:
    target.script = authority.script
    job = action(target.url("/bearer"), {**MSI, "clientId": "user-assigned-1"})
    assert (await runner.run(job, context(msi_settings(authority)))).succeeded
    assert authority.seen[0].query["client_id"] == ["user-assigned-1"]


async def test_msi_expiry_is_read_from_expires_on(
    target: Server, authority: Server, runner: HttpActionRunner
) -> None:
    target.script = authority.script
    authority.script.msi_answer = lambda: {"expires_on": int(time.time()) + 2}  # an int here
    job = action(target.url("/bearer"), MSI)
    for _ in range(2):
        assert (await runner.run(job, context(msi_settings(authority)))).succeeded
    assert len(authority.seen) == 1
    await asyncio.sleep(1.5)
    assert (await runner.run(job, context(msi_settings(authority)))).succeeded
    assert len(authority.seen) == 2


async def test_msi_wrong_header_is_a_failed_attempt(
    target: Server, authority: Server, runner: HttpActionRunner
) -> None:
    job = action(target.url("/bearer"), MSI)
    outcome = await runner.run(job, context(msi_settings(authority, header="wrong-header-9")))
    assert outcome.message == (
        "Http Action - Could not get a token from the managed identity endpoint: "
        "HTTP 401 Unauthorized: bad header"
    )
    assert_no_secret(outcome.message, "wrong-header-9")
    assert target.seen == []


async def test_an_answer_without_a_token_is_a_failed_attempt(
    target: Server, authority: Server, runner: HttpActionRunner
) -> None:
    authority.script.msi_answer = lambda: {"access_token": ""}
    outcome = await runner.run(action(target.url("/bearer"), MSI), context(msi_settings(authority)))
    assert outcome.message == (
        "Http Action - Could not get a token from the managed identity endpoint: "
        "the answer has no access_token"
    )
    assert target.seen == []


async def test_msi_without_a_managed_identity(target: Server, runner: HttpActionRunner) -> None:
    outcome = await runner.run(action(target.url("/bearer"), MSI), context(ALLOW_MSI))
    assert not outcome.succeeded
    assert outcome.message == (
        "Http Action - ManagedServiceIdentity: no managed identity is configured for this app "
        "(IDENTITY_ENDPOINT is not set)"
    )
    assert target.seen == []


# --- through the API: secrets are write-only -----------------------------------------------------


async def test_the_api_never_returns_secrets(runtimes: Any, target: Server, pki: Pki) -> None:
    """PUT with secrets; GET, list, PATCH answers and history rows show only the public fields;
    `authentication: null` removes it."""
    import httpx

    from shared.api.app import create_api
    from tests.support.engine import work_queue

    runtime = await runtimes()

    async def provide() -> Any:
        return runtime

    base = "/api/jobCollections/secrets"
    pfx = pki.client.pfx(PFX_PASSWORD)
    body = {
        "properties": {
            "startTime": "2099-01-01T00:00:00Z",
            "action": {
                "type": "Http",
                "request": {"uri": target.url("/echo"), "authentication": BASIC},
                "retryPolicy": {"retryType": "None"},
                "errorAction": {
                    "type": "Https",
                    "request": {
                        "uri": "https://localhost:9/x",
                        "authentication": {
                            "type": "ClientCertificate",
                            "pfx": pfx,
                            "password": PFX_PASSWORD,
                        },
                    },
                },
            },
        }
    }
    secrets = (BASIC_PASSWORD, PFX_PASSWORD, pfx[:40], target.script.basic.split()[1])
    transport = httpx.ASGITransport(app=create_api(provide))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as api:
        assert (await api.put(base, json={"properties": {}})).status_code in (200, 201)
        answers = [await api.put(f"{base}/jobs/j", json=body)]
        assert answers[0].status_code == 201, answers[0].text
        answers.append(await api.get(f"{base}/jobs/j"))
        answers.append(await api.get(f"{base}/jobs"))
        answers.append(await api.patch(f"{base}/jobs/j", json={"properties": {"state": "Enabled"}}))
        assert (await api.post(f"{base}/jobs/j/run")).status_code == 200

        async def has_history() -> bool:
            return bool((await api.get(f"{base}/jobs/j/history")).json()["value"])

        await work_queue(runtime, has_history)
        answers.append(await api.get(f"{base}/jobs/j/history"))
        for answer in answers:
            assert answer.status_code in (200, 201), answer.text
            for secret in secrets:
                assert secret not in answer.text
        action = answers[1].json()["properties"]["action"]
        assert action["request"]["authentication"] == {"type": "Basic", "username": "alice"}
        shown = action["errorAction"]["request"]["authentication"]
        assert set(shown) == {
            "type",
            "certificateThumbprint",
            "certificateSubjectName",
            "certificateExpirationDate",
        }
        assert shown["certificateSubjectName"] == "CN=scheduler-client"
        [row] = answers[-1].json()["value"]
        assert row["properties"]["message"].endswith("Body: you sent Basic ***")
        # The PATCH kept the stored secrets: the job still authenticates.
        assert target.seen[0].headers["authorization"] == target.script.basic

        bad = await api.put(
            f"{base}/jobs/k",
            json={
                "properties": {
                    **body["properties"],
                    "action": {
                        "type": "Http",
                        "request": {
                            "uri": target.url("/echo"),
                            "authentication": {"type": "Basic", "username": "alice", "password": 7},
                        },
                    },
                }
            },
        )
        assert bad.status_code == 400
        assert bad.json()["error"]["target"] == "properties.action.request.authentication"

        removed = await api.patch(
            f"{base}/jobs/j", json={"properties": {"action": {"request": {"authentication": None}}}}
        )
        assert removed.status_code == 200, removed.text
        assert "authentication" not in removed.json()["properties"]["action"]["request"]


async def test_msi_audience_not_allowed_is_refused_at_run_time_without_a_token(
    target: Server, authority: Server, runner: HttpActionRunner
) -> None:
    """Stored while allowed, run after the allow-list was narrowed: no token is fetched."""
    settings = {**msi_settings(authority), "SCHEDULER_IDENTITY_AUDIENCES": "api://other"}
    outcome = await runner.run(action(target.url("/bearer"), MSI), context(settings))
    assert not outcome.succeeded
    assert outcome.message == (
        f"Http Action - ManagedServiceIdentity audience '{AUDIENCE}' is not one this app allows "
        "jobs to request (setting SCHEDULER_IDENTITY_AUDIENCES)"
    )
    assert authority.seen == [] and target.seen == []
    user_assigned = action(target.url("/bearer"), {**MSI, "clientId": "someone-else"})
    outcome = await runner.run(user_assigned, context(msi_settings(authority)))
    assert "clientId 'someone-else' is not one this app allows" in outcome.message
    assert authority.seen == []
