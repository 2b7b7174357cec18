"""Outbound authentication models: validation, write-only secrets, public views, storage."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from shared.kinds.http.model import HttpRequest
from shared.model.actions import JobAction
from shared.model.auth import (
    ActiveDirectoryOAuthAuthentication,
    BasicAuthentication,
    ClientCertificateAuthentication,
    ManagedServiceIdentityAuthentication,
    NotSpecifiedAuthentication,
    public_authentication_json,
)
from shared.model.job import JobProperties
from tests.support.actions import request_of

PASSWORD = "pfx-pass-9f2c"
EXPIRES = dt.datetime(2031, 5, 6, 7, 8, 9, tzinfo=dt.UTC)


def make_certificate(
    common_name: str = "scheduler-client", key: Any = None
) -> tuple[Any, x509.Certificate]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Contoso"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(EXPIRES)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_pfx(password: str | None = PASSWORD, *, key: Any = None, cert: Any = None) -> str:
    made_key, made_cert = make_certificate()
    encryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    data = pkcs12.serialize_key_and_certificates(
        b"client", key or made_key, cert or made_cert, None, encryption
    )
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def pfx_and_cert() -> tuple[str, x509.Certificate]:
    key, cert = make_certificate()
    data = pkcs12.serialize_key_and_certificates(
        b"client", key, cert, None, serialization.BestAvailableEncryption(PASSWORD.encode())
    )
    return base64.b64encode(data).decode(), cert


def request_with(auth: Any, uri: str = "https://example.com/run") -> dict[str, Any]:
    return {"type": "Http", "request": {"uri": uri, "authentication": auth}}


def refusal(data: dict[str, Any]) -> tuple[str, ValidationError]:
    with pytest.raises(ValidationError) as info:
        JobAction.model_validate(data)
    errors = info.value.errors(include_input=False, include_url=False)
    text = " | ".join(".".join(map(str, e["loc"])) + ": " + e["msg"] for e in errors)
    return text, info.value


# --- kinds ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spelling", "kind"),
    [
        ("basic", BasicAuthentication),
        ("BASIC", BasicAuthentication),
        ("activedirectoryoauth", ActiveDirectoryOAuthAuthentication),
        ("managedServiceIdentity", ManagedServiceIdentityAuthentication),
        ("notspecified", NotSpecifiedAuthentication),
    ],
)
def test_type_is_case_insensitive_and_answered_in_pascal_case(spelling: str, kind: Any) -> None:
    auth = {
        BasicAuthentication: {"username": "u", "password": "p"},
        ActiveDirectoryOAuthAuthentication: {
            "tenant": "contoso.onmicrosoft.com",
            "audience": "https://api.contoso.com",
            "clientId": "app-1",
            "secret": "s3cr3t",
        },
        ManagedServiceIdentityAuthentication: {"audience": "https://api.contoso.com"},
        NotSpecifiedAuthentication: {},
    }[kind]
    action = JobAction.model_validate(request_with({"type": spelling, **auth}))
    assert request_of(action) is not None
    assert isinstance(request_of(action).authentication, kind)
    assert action.to_json_dict()["request"]["authentication"]["type"] == kind.kind


def test_missing_or_unknown_type_is_refused() -> None:
    text, _ = refusal(request_with({"username": "u", "password": "p"}))
    assert text.startswith("request.authentication: ")
    assert "authentication type is required (one of NotSpecified, Basic, " in text
    text, _ = refusal(request_with({"type": "Digest"}))
    assert "authentication type must be one of" in text
    text, _ = refusal(request_with("Basic"))
    assert "authentication must be an object with a type" in text


def test_null_authentication_means_none() -> None:
    action = JobAction.model_validate(request_with(None))
    assert request_of(action) is not None and request_of(action).authentication is None
    assert "authentication" not in action.public_json()["request"]


def test_not_specified_is_kept_and_shown() -> None:
    action = JobAction.model_validate(request_with({"type": "NotSpecified"}))
    assert action.public_json()["request"]["authentication"] == {"type": "NotSpecified"}


# --- Basic ---------------------------------------------------------------------------------------


def test_basic_public_json_shows_only_type_and_username() -> None:
    action = JobAction.model_validate(
        request_with({"type": "Basic", "username": "alice", "password": "hunter22"})
    )
    assert action.public_json()["request"]["authentication"] == {
        "type": "Basic",
        "username": "alice",
    }
    auth = request_of(action).authentication
    assert auth is not None
    assert auth.public_json() == {"type": "Basic", "username": "alice"}
    assert "hunter22" not in json.dumps(action.public_json())


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        ({"type": "Basic", "username": "alice"}, "password is required for Basic authentication"),
        ({"type": "Basic", "password": "hunter22"}, "username is required"),
        ({"type": "Basic", "username": "", "password": "hunter22"}, "username must not be empty"),
        ({"type": "Basic", "username": "a:b", "password": "hunter22"}, "must not contain ':'"),
        (
            {"type": "Basic", "username": "a", "password": "hunter22", "secret": "x"},
            "secret is not a field of Basic authentication",
        ),
        ({"type": "Basic", "username": "a", "password": 5}, "password: Input should be"),
    ],
)
def test_basic_refusals_name_the_field(auth: dict[str, Any], expected: str) -> None:
    text, error = refusal(request_with(auth))
    assert text.startswith("request.authentication: ")
    assert expected in text
    assert "hunter22" not in text


def test_empty_basic_password_is_allowed() -> None:
    auth = BasicAuthentication.model_validate({"type": "Basic", "username": "a", "password": ""})
    assert auth.password.get_secret_value() == ""


# --- ClientCertificate ---------------------------------------------------------------------------


def test_client_certificate_computes_thumbprint_subject_and_expiration(
    pfx_and_cert: tuple[str, x509.Certificate],
) -> None:
    pfx, cert = pfx_and_cert
    action = JobAction.model_validate(
        request_with({"type": "clientCertificate", "pfx": pfx, "password": PASSWORD})
    )
    assert request_of(action) is not None
    auth = request_of(action).authentication
    assert isinstance(auth, ClientCertificateAuthentication)
    thumbprint = cert.fingerprint(hashes.SHA1()).hex().upper()
    assert auth.certificate_thumbprint == thumbprint
    assert len(thumbprint) == 40
    assert auth.certificate_subject_name == "O=Contoso,CN=scheduler-client"
    assert auth.certificate_expiration_date == EXPIRES
    assert action.public_json()["request"]["authentication"] == {
        "type": "ClientCertificate",
        "certificateThumbprint": thumbprint,
        "certificateSubjectName": "O=Contoso,CN=scheduler-client",
        "certificateExpirationDate": "2031-05-06T07:08:09Z",
    }


def test_values_sent_for_computed_fields_are_replaced(
    pfx_and_cert: tuple[str, x509.Certificate],
) -> None:
    pfx, cert = pfx_and_cert
    auth = ClientCertificateAuthentication.model_validate(
        {
            "type": "ClientCertificate",
            "pfx": pfx,
            "password": PASSWORD,
            "certificateThumbprint": "00" * 20,
            "certificateSubjectName": "CN=someone-else",
            "certificateExpirationDate": "2099-01-01T00:00:00Z",
        }
    )
    assert auth.certificate_thumbprint == cert.fingerprint(hashes.SHA1()).hex().upper()
    assert auth.certificate_subject_name == "O=Contoso,CN=scheduler-client"
    assert auth.certificate_expiration_date == EXPIRES


def test_pfx_without_password_opens_without_one() -> None:
    auth = ClientCertificateAuthentication.model_validate(
        {"type": "ClientCertificate", "pfx": make_pfx(None)}
    )
    assert auth.password is None
    assert auth.certificate_thumbprint


def test_pfx_may_be_wrapped_base64() -> None:
    pfx = make_pfx()
    wrapped = "\n".join(pfx[i : i + 64] for i in range(0, len(pfx), 64))
    auth = ClientCertificateAuthentication.model_validate(
        {"type": "ClientCertificate", "pfx": wrapped, "password": PASSWORD}
    )
    assert auth.certificate_thumbprint


def test_bad_pfx_and_password_are_refused_without_echoing_them(
    pfx_and_cert: tuple[str, x509.Certificate],
) -> None:
    pfx, _ = pfx_and_cert
    wrong = "wrong-password-77"
    cases = [
        ({"pfx": pfx, "password": wrong}, "pfx could not be opened with the given password"),
        ({"pfx": "not base64 at all!", "password": PASSWORD}, "pfx must be a base64-encoded"),
        (
            {"pfx": base64.b64encode(b"just bytes").decode(), "password": PASSWORD},
            "pfx could not be opened with the given password",
        ),
        ({"pfx": "", "password": PASSWORD}, "pfx must not be empty"),
        ({"password": PASSWORD}, "pfx is required for ClientCertificate authentication"),
    ]
    for auth, expected in cases:
        text, error = refusal(request_with({"type": "ClientCertificate", **auth}))
        assert text.startswith("request.authentication: "), text
        assert expected in text
        for secret in (wrong, PASSWORD, pfx[:40], pfx[-40:]):
            assert secret not in text
        # The ValueError pydantic wraps holds only our message.
        for item in error.errors(include_url=False):
            assert wrong not in str(item.get("ctx", ""))
            assert PASSWORD not in str(item.get("ctx", ""))


def test_refusal_text_of_the_auth_model_itself_hides_the_input() -> None:
    wrong = "wrong-password-77"
    with pytest.raises(ValidationError) as info:
        ClientCertificateAuthentication.model_validate(
            {"type": "ClientCertificate", "pfx": make_pfx(), "password": wrong}
        )
    assert wrong not in str(info.value)
    assert "pfx could not be opened" in str(info.value)


def test_pfx_whose_key_does_not_match_the_certificate_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """cryptography will not write such a file, so the reader is made to return one."""
    _, cert = make_certificate()
    other_key = ec.generate_private_key(ec.SECP256R1())
    monkeypatch.setattr(
        pkcs12, "load_key_and_certificates", lambda data, password: (other_key, cert, [])
    )
    pfx = base64.b64encode(b"mismatched pair").decode()
    text, _ = refusal(request_with({"type": "ClientCertificate", "pfx": pfx, "password": PASSWORD}))
    assert "the private key does not belong to the certificate" in text


def test_pfx_without_a_key_is_refused() -> None:
    _, cert = make_certificate()
    data = pkcs12.serialize_key_and_certificates(
        b"c", None, cert, None, serialization.BestAvailableEncryption(PASSWORD.encode())
    )
    pfx = base64.b64encode(data).decode()
    text, _ = refusal(request_with({"type": "ClientCertificate", "pfx": pfx, "password": PASSWORD}))
    assert "pfx must contain a certificate and its private key" in text


def test_client_certificate_needs_an_https_uri(
    pfx_and_cert: tuple[str, x509.Certificate],
) -> None:
    pfx, _ = pfx_and_cert
    auth = {"type": "ClientCertificate", "pfx": pfx, "password": PASSWORD}
    text, _ = refusal(request_with(auth, uri="http://example.com/run"))
    assert "ClientCertificate needs an https:// uri" in text


def test_credential_digest_changes_with_password_and_pfx() -> None:
    pfx = make_pfx(None)
    a = ClientCertificateAuthentication.model_validate({"type": "ClientCertificate", "pfx": pfx})
    b = ClientCertificateAuthentication.model_validate(
        {"type": "ClientCertificate", "pfx": pfx, "password": ""}
    )
    c = ClientCertificateAuthentication.model_validate(
        {"type": "ClientCertificate", "pfx": make_pfx(None)}
    )
    assert len({a.credential_digest, b.credential_digest, c.credential_digest}) == 3
    assert pfx not in a.credential_digest


# --- ActiveDirectoryOAuth and ManagedServiceIdentity ---------------------------------------------

AAD = {
    "type": "ActiveDirectoryOAuth",
    "tenant": "72f988bf-86f1-41af-91ab-2d7cd011db47",
    "audience": "https://api.contoso.com",
    "clientId": "11111111-2222-3333-4444-555555555555",
    "secret": "aad-secret-value-1",
}


def test_aad_public_json_omits_the_secret() -> None:
    action = JobAction.model_validate(request_with(AAD))
    assert action.public_json()["request"]["authentication"] == {
        "type": "ActiveDirectoryOAuth",
        "tenant": AAD["tenant"],
        "audience": AAD["audience"],
        "clientId": AAD["clientId"],
    }


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"tenant": "contoso/../evil"}, "tenant must be a tenant id (GUID) or domain name"),
        ({"audience": " "}, "audience must not be empty"),
        ({"clientId": ""}, "clientId must not be empty"),
        ({"secret": ""}, "secret must not be empty"),
        ({"secret": None}, "secret: Input should be a valid string"),
    ],
)
def test_aad_refusals(change: dict[str, Any], expected: str) -> None:
    text, _ = refusal(request_with({**AAD, **change}))
    assert expected in text
    assert "aad-secret-value-1" not in text


def test_msi_public_json_and_client_id() -> None:
    action = JobAction.model_validate(
        request_with({"type": "ManagedServiceIdentity", "audience": "https://vault.azure.net"})
    )
    assert action.public_json()["request"]["authentication"] == {
        "type": "ManagedServiceIdentity",
        "audience": "https://vault.azure.net",
    }
    with_id = {"type": "ManagedServiceIdentity", "audience": "https://x", "clientId": "abc"}
    action = JobAction.model_validate(request_with(with_id))
    assert action.public_json()["request"]["authentication"] == with_id
    text, _ = refusal(request_with({"type": "ManagedServiceIdentity"}))
    assert "audience is required for ManagedServiceIdentity authentication" in text
    text, _ = refusal(request_with({"type": "ManagedServiceIdentity", "audience": "a", "x": 1}))
    assert "x is not a field of ManagedServiceIdentity authentication" in text


# --- secrets never shown -------------------------------------------------------------------------


def all_kinds(pfx: str) -> list[dict[str, Any]]:
    return [
        {"type": "Basic", "username": "alice", "password": "basic-pass-123"},
        {"type": "ClientCertificate", "pfx": pfx, "password": PASSWORD},
        AAD,
        {"type": "ManagedServiceIdentity", "audience": "https://vault.azure.net"},
        {"type": "NotSpecified"},
    ]


SECRETS = ("basic-pass-123", PASSWORD, "aad-secret-value-1")


def test_repr_and_str_never_show_secrets(pfx_and_cert: tuple[str, x509.Certificate]) -> None:
    pfx, _ = pfx_and_cert
    for auth in all_kinds(pfx):
        action = JobAction.model_validate(request_with(auth))
        assert request_of(action) is not None
        for text in (repr(action), str(action), repr(request_of(action).authentication)):
            assert pfx[:40] not in text
            for secret in SECRETS:
                assert secret not in text
        # A python dump keeps the masked SecretStr, not the value.
        assert not any(s in str(action.model_dump()) for s in SECRETS)


def test_public_json_of_every_kind_has_no_secret(
    pfx_and_cert: tuple[str, x509.Certificate],
) -> None:
    pfx, _ = pfx_and_cert
    for auth in all_kinds(pfx):
        action = JobAction.model_validate({**request_with(auth), "errorAction": request_with(auth)})
        public = json.dumps(action.public_json())
        assert pfx[:40] not in public
        assert not any(s in public for s in SECRETS)
        assert not any(f'"{key}"' in public for key in ("password", "pfx", "secret"))
        assert action.public_json()["errorAction"]["request"]["authentication"]["type"]


def test_public_authentication_json_of_an_unknown_kind_shows_only_its_type() -> None:
    assert public_authentication_json({"type": "Other", "password": "x", "a": 1}) == {
        "type": "Other"
    }


def test_http_request_public_json_uses_the_whitelist() -> None:
    request = HttpRequest.model_validate(
        {
            "uri": "http://example.com",
            "authentication": {"type": "Basic", "username": "u", "password": "basic-pass-123"},
        }
    )
    assert request.public_json()["authentication"] == {"type": "Basic", "username": "u"}


# --- storage round trip --------------------------------------------------------------------------


def test_round_trip_through_storage_keeps_secrets_and_computed_fields(
    pfx_and_cert: tuple[str, x509.Certificate],
) -> None:
    pfx, _ = pfx_and_cert
    for auth in all_kinds(pfx):
        properties = JobProperties.model_validate({"action": request_with(auth)})
        # What the store does: a JSON dump by alias, reloaded without a validation context.
        stored = json.dumps(properties.model_dump(mode="json", by_alias=True, exclude_none=True))
        reloaded = JobProperties.model_validate(json.loads(stored))
        assert reloaded == properties
        assert request_of(reloaded.action) is not None and request_of(properties.action) is not None
        again = request_of(reloaded.action).authentication
        first = request_of(properties.action).authentication
        assert type(again) is type(first)
        assert reloaded.action.public_json() == properties.action.public_json()
    basic = JobProperties.model_validate({"action": request_with(all_kinds(pfx)[0])})
    stored_auth = basic.model_dump(mode="json", by_alias=True)["action"]["request"]
    assert stored_auth["authentication"]["password"] == "basic-pass-123"


def test_stored_client_certificate_reloads_with_its_facts(
    pfx_and_cert: tuple[str, x509.Certificate],
) -> None:
    pfx, cert = pfx_and_cert
    auth = {"type": "ClientCertificate", "pfx": pfx, "password": PASSWORD}
    properties = JobProperties.model_validate({"action": request_with(auth)})
    data = properties.model_dump(mode="json", by_alias=True, exclude_none=True)
    stored = data["action"]["request"]["authentication"]
    assert stored["pfx"] == pfx and stored["password"] == PASSWORD
    assert stored["certificateThumbprint"] == cert.fingerprint(hashes.SHA1()).hex().upper()
    reloaded = JobProperties.model_validate(data)
    assert request_of(reloaded.action) is not None
    reloaded_auth = request_of(reloaded.action).authentication
    assert isinstance(reloaded_auth, ClientCertificateAuthentication)
    assert reloaded_auth.pfx.get_secret_value() == pfx
    assert reloaded_auth.certificate_expiration_date == EXPIRES


def test_a_tenant_ending_in_a_newline_is_refused() -> None:
    data = {
        "type": "ActiveDirectoryOAuth",
        "tenant": "contoso.onmicrosoft.com\n",
        "audience": "https://x",
        "clientId": "c",
        "secret": "s3cr3t",
    }
    with pytest.raises(ValidationError) as info:
        HttpRequest.model_validate({"uri": "https://example.com/", "authentication": data})
    assert "tenant must be a tenant id" in str(info.value)
