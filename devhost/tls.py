"""HTTPS for the local host, like `func start --useHttps --cert cert.pfx --password ...`.

A certificate is a PKCS#12 file (`.pfx`/`.p12`, with its password if it has one), or a PEM
certificate chain with its PEM private key (a separate file, or in the same file). It is loaded
and checked at start-up, so a wrong password or a key that does not match fails there, naming
the file. uvicorn reads PEM files only: a PKCS#12 file is converted into a private temporary
directory that is removed when the host stops.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    pkcs12,
)

CERT_SETTING = "DEVHOST_HTTPS_CERT"
KEY_SETTING = "DEVHOST_HTTPS_CERT_KEY"
PASSWORD_SETTING = "DEVHOST_HTTPS_CERT_PASSWORD"
PKCS12_SUFFIXES = (".pfx", ".p12")


class CertificateError(ValueError):
    """The certificate cannot be served; the message names the file, never the password."""


@dataclass(frozen=True)
class HttpsCertificate:
    """What the user gave: a certificate file, maybe a key file, maybe a password."""

    cert: Path
    key: Path | None = None
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class PemFiles:
    """What uvicorn is given; `workdir` holds converted files and is removed by `close()`."""

    certfile: str
    keyfile: str | None
    password: str | None = field(repr=False)
    workdir: tempfile.TemporaryDirectory[str] | None = None

    def close(self) -> None:
        if self.workdir is not None:
            self.workdir.cleanup()


def prepare(certificate: HttpsCertificate) -> PemFiles:
    """PEM files uvicorn can load, checked by loading them once here."""
    if not certificate.cert.is_file():
        raise CertificateError(f"{certificate.cert}: no such file")
    if certificate.cert.suffix.lower() in PKCS12_SUFFIXES:
        if certificate.key is not None:
            raise CertificateError(
                f"{certificate.cert}: a PKCS#12 file holds its key; drop the key file"
            )
        files = _from_pkcs12(certificate.cert, certificate.password)
    else:
        if certificate.key is not None and not certificate.key.is_file():
            raise CertificateError(f"{certificate.key}: no such file")
        key = str(certificate.key) if certificate.key else None
        files = PemFiles(str(certificate.cert), key, certificate.password)
    try:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(files.certfile, files.keyfile, files.password)
    except (ssl.SSLError, OSError) as error:
        files.close()
        reason = getattr(error, "reason", None) or type(error).__name__
        raise CertificateError(
            f"{certificate.cert}: cannot serve this certificate and key ({reason}); "
            "a PEM certificate needs its PEM key (and its password, if encrypted)"
        ) from None
    return files


def _from_pkcs12(path: Path, password: str | None) -> PemFiles:
    try:
        key, cert, chain = pkcs12.load_key_and_certificates(
            path.read_bytes(), password.encode() if password else None
        )
    except ValueError:
        raise CertificateError(f"{path}: not a PKCS#12 file, or the password is wrong") from None
    if key is None or cert is None:
        raise CertificateError(f"{path}: the PKCS#12 file lacks a certificate or its key")
    workdir = tempfile.TemporaryDirectory(prefix="devhost-tls-")
    os.chmod(workdir.name, 0o700)
    certfile = Path(workdir.name, "cert.pem")
    keyfile = Path(workdir.name, "key.pem")
    certfile.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in [cert, *chain]))
    # The key stays encrypted on disk under the password the user gave, when there is one.
    encryption = BestAvailableEncryption(password.encode()) if password else NoEncryption()
    descriptor = os.open(keyfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, encryption))
    return PemFiles(str(certfile), str(keyfile), password, workdir)
