"""Outbound authentication of HTTP actions: Azure Scheduler's `HttpAuthentication`, plus ours.

The kinds are a union discriminated by `type` (matched case-insensitively, answered in PascalCase):
`NotSpecified` (no authentication), `Basic`, `ClientCertificate`, `ActiveDirectoryOAuth`
(Azure Scheduler 2016-03-01) and `ManagedServiceIdentity` (our extension: a token from the
Function App's own managed identity).

Secrets (`password`, `pfx`, `secret`) are write-only: they are `SecretStr`, so `repr()`/`str()`
show `**********`; they are written out only by a JSON dump (that is how the store keeps them) and
`public_json()` lists, per kind, the only fields a response may show. Validation messages name the
field but never quote a value, and the models hide their input in `ValidationError` text.

A client certificate is opened when it is validated, at PUT time and on every reload from storage:
the pfx must decode and open with its password, and the key must belong to the certificate. What
Azure Scheduler shows instead of the pfx (thumbprint, subject, expiration; see
docs/azure-scheduler.md §6) is computed then; values sent for those fields are accepted (the
store writes them back) but always
replaced by the computed ones. Opening a PKCS#12 file costs tens of milliseconds, so the result is
cached per digest of (pfx, password) for the life of the process.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12
from pydantic import (
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from shared.model.common import ApiModel

MAX_TEXT_LENGTH = 2048
MAX_PFX_LENGTH = 64 * 1024  # base64 characters; a certificate with its chain is a few KB

# A secret: masked in repr/str and python dumps, written out in JSON dumps (for the store only).
WriteOnly = Annotated[
    SecretStr,
    PlainSerializer(lambda value: value.get_secret_value(), return_type=str, when_used="json"),
]

_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,254}")  # a GUID or a domain: goes in a URL path


def _secret_text(
    value: SecretStr, name: str, *, allow_empty: bool = False, limit: int = MAX_TEXT_LENGTH
) -> SecretStr:
    text = value.get_secret_value()
    if not text and not allow_empty:
        raise ValueError(f"{name} must not be empty")
    if len(text) > limit:
        raise ValueError(f"{name} is longer than {limit} characters")
    return value


def _plain_text(value: str, name: str) -> str:
    if not value.strip():
        raise ValueError(f"{name} must not be empty")
    if len(value) > MAX_TEXT_LENGTH:
        raise ValueError(f"{name} is longer than {MAX_TEXT_LENGTH} characters")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValueError(f"{name} must not contain control characters")
    return value


class _Authentication(ApiModel):
    """Base of the kinds: `type` folds case on input; `public_json()` is a whitelist."""

    model_config = ConfigDict(hide_input_in_errors=True)

    kind: ClassVar[str]
    public_fields: ClassVar[frozenset[str]]  # JSON names a response may show

    @model_validator(mode="before")
    @classmethod
    def _pascal_case_type(cls, data: object) -> object:
        kind = data.get("type") if isinstance(data, dict) else None
        if isinstance(kind, str) and kind != cls.kind and kind.casefold() == cls.kind.casefold():
            return {**data, "type": cls.kind}  # type: ignore[dict-item]
        return data

    def public_json(self) -> dict[str, Any]:
        """What a GET may show: the kind's public fields, never a secret."""
        return public_authentication_json(self.to_json_dict())


class NotSpecifiedAuthentication(_Authentication):
    kind: ClassVar[str] = "NotSpecified"
    public_fields: ClassVar[frozenset[str]] = frozenset({"type"})

    type: Literal["NotSpecified"] = "NotSpecified"


class BasicAuthentication(_Authentication):
    kind: ClassVar[str] = "Basic"
    public_fields: ClassVar[frozenset[str]] = frozenset({"type", "username"})

    type: Literal["Basic"] = "Basic"
    username: str
    password: WriteOnly

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        _plain_text(value, "username")
        if ":" in value:
            raise ValueError("username must not contain ':' (RFC 7617)")
        return value

    @field_validator("password")
    @classmethod
    def _password(cls, value: SecretStr) -> SecretStr:
        return _secret_text(value, "password", allow_empty=True)


class ClientCertificateAuthentication(_Authentication):
    """Mutual TLS: `pfx` is a base64 PKCS#12 file holding the certificate and its private key."""

    kind: ClassVar[str] = "ClientCertificate"
    public_fields: ClassVar[frozenset[str]] = frozenset(
        {"type", "certificateThumbprint", "certificateSubjectName", "certificateExpirationDate"}
    )

    type: Literal["ClientCertificate"] = "ClientCertificate"
    pfx: WriteOnly
    password: WriteOnly | None = None
    # Computed from the pfx (any value sent is replaced); kept so responses can show them.
    certificate_thumbprint: str | None = None
    certificate_subject_name: str | None = None
    certificate_expiration_date: datetime | None = None

    @field_validator("pfx")
    @classmethod
    def _pfx_size(cls, value: SecretStr) -> SecretStr:
        return _secret_text(value, "pfx", limit=MAX_PFX_LENGTH)

    @field_validator("password")
    @classmethod
    def _password(cls, value: SecretStr | None) -> SecretStr | None:
        return None if value is None else _secret_text(value, "password", allow_empty=True)

    @model_validator(mode="after")
    def _open_the_certificate(self) -> ClientCertificateAuthentication:
        facts = certificate_facts(self.pfx, self.password)
        self.certificate_thumbprint = facts.thumbprint
        self.certificate_subject_name = facts.subject_name
        self.certificate_expiration_date = facts.expiration_date
        return self

    @property
    def credential_digest(self) -> str:
        """Identifies this pfx + password (for caches) without revealing either."""
        return _digest(self.pfx, self.password)

    def open(self) -> OpenedCertificate:
        """The private key, the certificate and any further certificates (the chain)."""
        return open_pfx(self.pfx, self.password)


class ActiveDirectoryOAuthAuthentication(_Authentication):
    """A client-credentials token for `audience` from the configured Microsoft Entra authority."""

    kind: ClassVar[str] = "ActiveDirectoryOAuth"
    public_fields: ClassVar[frozenset[str]] = frozenset({"type", "tenant", "audience", "clientId"})

    type: Literal["ActiveDirectoryOAuth"] = "ActiveDirectoryOAuth"
    tenant: str
    audience: str
    client_id: str
    secret: WriteOnly

    @field_validator("tenant")
    @classmethod
    def _tenant(cls, value: str) -> str:
        if not _TENANT.fullmatch(value):
            raise ValueError("tenant must be a tenant id (GUID) or domain name")
        return value

    @field_validator("audience")
    @classmethod
    def _audience(cls, value: str) -> str:
        return _plain_text(value, "audience")

    @field_validator("client_id")
    @classmethod
    def _client_id(cls, value: str) -> str:
        return _plain_text(value, "clientId")

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: SecretStr) -> SecretStr:
        return _secret_text(value, "secret")


class ManagedServiceIdentityAuthentication(_Authentication):
    """Ours: a token for `audience` from the Function App's managed identity (user-assigned one
    when `clientId` is given). No secret: the identity belongs to the app."""

    kind: ClassVar[str] = "ManagedServiceIdentity"
    public_fields: ClassVar[frozenset[str]] = frozenset({"type", "audience", "clientId"})

    type: Literal["ManagedServiceIdentity"] = "ManagedServiceIdentity"
    audience: str
    client_id: str | None = None

    @field_validator("audience")
    @classmethod
    def _audience(cls, value: str) -> str:
        return _plain_text(value, "audience")

    @field_validator("client_id")
    @classmethod
    def _client_id(cls, value: str | None) -> str | None:
        return None if value is None else _plain_text(value, "clientId")


HttpAuthentication = Annotated[
    NotSpecifiedAuthentication
    | BasicAuthentication
    | ClientCertificateAuthentication
    | ActiveDirectoryOAuthAuthentication
    | ManagedServiceIdentityAuthentication,
    Field(discriminator="type"),
]

AUTHENTICATION_KINDS: dict[str, type[_Authentication]] = {
    cls.kind: cls
    for cls in (
        NotSpecifiedAuthentication,
        BasicAuthentication,
        ClientCertificateAuthentication,
        ActiveDirectoryOAuthAuthentication,
        ManagedServiceIdentityAuthentication,
    )
}
_BY_FOLDED_NAME = {name.casefold(): cls for name, cls in AUTHENTICATION_KINDS.items()}


def parse_authentication(value: object) -> object:
    """The `authentication` field's input as a model of its kind (None stays None).

    Refusals are one `ValueError` whose text names the fields (`password is required`) and never
    quotes a value; pydantic then reports it at `request.authentication`.
    """
    if value is None or isinstance(value, _Authentication):
        return value
    if not isinstance(value, dict):
        raise ValueError("authentication must be an object with a type")
    names = ", ".join(AUTHENTICATION_KINDS)
    kind = value.get("type")
    if kind is None:
        raise ValueError(f"authentication type is required (one of {names})")
    cls = _BY_FOLDED_NAME.get(kind.casefold()) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"authentication type must be one of {names}")
    try:
        return cls.model_validate(value)
    except ValidationError as error:
        raise ValueError(_describe(error, cls.kind)) from None


def public_authentication_json(data: dict[str, Any]) -> dict[str, Any]:
    """The whitelisted part of a dumped authentication object (an unknown kind shows its type)."""
    cls = AUTHENTICATION_KINDS.get(str(data.get("type")))
    allowed = cls.public_fields if cls is not None else frozenset({"type"})
    return {key: value for key, value in data.items() if key in allowed}


def _describe(error: ValidationError, kind: str) -> str:
    parts: list[str] = []
    for item in error.errors(include_url=False, include_input=False, include_context=False):
        field = ".".join(str(part) for part in item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "missing":
            parts.append(f"{field} is required for {kind} authentication")
        elif item["type"] == "extra_forbidden":
            parts.append(f"{field} is not a field of {kind} authentication")
        elif not field or message.startswith(field.split(".")[0]):
            parts.append(message)
        else:
            parts.append(f"{field}: {message}")
    return "; ".join(parts)


# --- PKCS#12 -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CertificateFacts:
    """What a response shows of a client certificate."""

    thumbprint: str  # SHA-1 of the DER certificate, upper-case hex (as Azure shows it)
    subject_name: str  # RFC 4514, e.g. "CN=client,O=Contoso"
    expiration_date: datetime


@dataclass(frozen=True)
class OpenedCertificate:
    key: PrivateKeyTypes
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]


_FACTS_CACHE_SIZE = 1024
_facts_cache: OrderedDict[str, CertificateFacts | str] = OrderedDict()  # digest -> facts or refusal
_facts_lock = threading.Lock()


def _digest(pfx: SecretStr, password: SecretStr | None) -> str:
    hasher = hashlib.sha256(pfx.get_secret_value().encode())
    if password is not None:
        hasher.update(b"\0" + password.get_secret_value().encode())
    return hasher.hexdigest()


def open_pfx(pfx: SecretStr, password: SecretStr | None) -> OpenedCertificate:
    """Decode and open a base64 PKCS#12 file; `ValueError` naming pfx/password otherwise."""
    text = "".join(pfx.get_secret_value().split())
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("pfx must be a base64-encoded PKCS#12 (.pfx) file") from None
    secret = None if password is None else password.get_secret_value().encode()
    try:
        key, certificate, chain = pkcs12.load_key_and_certificates(data, secret)
    except (ValueError, TypeError):
        # cryptography cannot tell a wrong password from a file that is not PKCS#12.
        raise ValueError(
            "pfx could not be opened with the given password "
            "(wrong password, or not a PKCS#12 file)"
        ) from None
    if key is None or certificate is None:
        raise ValueError("pfx must contain a certificate and its private key")
    if _public_key_bytes(key.public_key()) != _public_key_bytes(certificate.public_key()):
        raise ValueError("pfx: the private key does not belong to the certificate")
    return OpenedCertificate(key=key, certificate=certificate, chain=tuple(chain))


def certificate_facts(pfx: SecretStr, password: SecretStr | None) -> CertificateFacts:
    """Thumbprint, subject and expiration of the pfx's certificate (cached per pfx + password)."""
    digest = _digest(pfx, password)
    with _facts_lock:
        cached = _facts_cache.get(digest)
        if cached is not None:
            _facts_cache.move_to_end(digest)
    if cached is None:
        try:
            opened = open_pfx(pfx, password)
            cached = CertificateFacts(
                thumbprint=opened.certificate.fingerprint(hashes.SHA1()).hex().upper(),
                subject_name=opened.certificate.subject.rfc4514_string(),
                expiration_date=opened.certificate.not_valid_after_utc.astimezone(UTC),
            )
        except ValueError as error:
            cached = str(error)
        with _facts_lock:
            _facts_cache[digest] = cached
            while len(_facts_cache) > _FACTS_CACHE_SIZE:
                _facts_cache.popitem(last=False)
    if isinstance(cached, str):
        raise ValueError(cached)
    return cached


def _public_key_bytes(key: Any) -> bytes:
    result: bytes = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return result


__all__ = [
    "AUTHENTICATION_KINDS",
    "ActiveDirectoryOAuthAuthentication",
    "BasicAuthentication",
    "CertificateFacts",
    "ClientCertificateAuthentication",
    "HttpAuthentication",
    "ManagedServiceIdentityAuthentication",
    "NotSpecifiedAuthentication",
    "OpenedCertificate",
    "WriteOnly",
    "certificate_facts",
    "open_pfx",
    "parse_authentication",
    "public_authentication_json",
]
