"""TLS and certificate material of one sandbox: a throwaway CA, the server certificate, the
app registration's client certificate (PEM + thumbprint, and a PFX with a passphrase) and the
key that signs access tokens.

Everything lives in one directory (a temp dir per sandbox, or a directory next to the state
file so a restarted sandbox keeps its CA, credentials and signing key and clients keep
trusting it). Private files are written 0600.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import os
import secrets
import ssl
import uuid
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

_MATERIAL_FILE = "material.json"


def _write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` readable by the owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)


def _new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _self_signed_client_cert(key: rsa.RSAPrivateKey, common_name: str) -> x509.Certificate:
    """A self-signed certificate like the ones admins upload to an app registration
    (New-SelfSignedCertificate / openssl req -x509)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    return (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365))
            .sign(key, hashes.SHA256()))


def b64url(data: bytes) -> str:
    """Base64url without padding (the encoding of JWT parts and of x5t thumbprints)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class TlsMaterial:
    """Paths and secrets of one sandbox's TLS and credential material."""

    directory: Path
    ca_file: Path
    server_cert_file: Path
    server_key_file: Path
    client_cert_pem_file: Path
    client_key_pem_file: Path
    client_pfx_file: Path
    client_pfx_passphrase: str
    signing_key_file: Path
    client_id: str
    client_secret: str
    device_client_id: str
    signing_key_id: str

    # -- derived -----------------------------------------------------------------------
    def client_certificate(self) -> x509.Certificate:
        """The app registration's certificate (public part)."""
        return x509.load_pem_x509_certificate(self.client_cert_pem_file.read_bytes())

    @property
    def client_cert_thumbprint(self) -> str:
        """SHA-1 thumbprint of the client certificate, upper-case hex as Entra shows it."""
        return self.client_certificate().fingerprint(hashes.SHA1()).hex().upper()

    def signing_key(self) -> rsa.RSAPrivateKey:
        """The private key that signs the sandbox's access tokens."""
        key = serialization.load_pem_private_key(self.signing_key_file.read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return key

    def server_ssl_context(self) -> ssl.SSLContext:
        """Server-side TLS context for 127.0.0.1 / localhost."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(self.server_cert_file), str(self.server_key_file))
        return ctx

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts exactly this sandbox's CA (for tests and tools)."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    # -- creation ----------------------------------------------------------------------
    @classmethod
    def create(cls, directory: Path, *, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
               server_from: TlsMaterial | None = None, app_from: TlsMaterial | None = None) -> TlsMaterial:
        """Load the material kept in `directory`, or generate it there if absent.

        `server_from`: take the CA and server certificate of that material (tenants served on one
        port share the server's TLS identity) and generate only this tenant's own credentials.
        """
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        meta_path = directory / _MATERIAL_FILE
        paths = {
            "ca_file": directory / "ca.pem",
            "server_cert_file": directory / "server-cert.pem",
            "server_key_file": directory / "server-key.pem",
            "client_cert_pem_file": directory / "client-cert.pem",
            "client_key_pem_file": directory / "client-key.pem",
            "client_pfx_file": directory / "client.pfx",
            "signing_key_file": directory / "token-signing-key.pem",
        }
        if meta_path.exists() and all(p.exists() for p in paths.values()):
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            return cls._build(directory, paths, meta)

        if server_from is not None:
            paths["ca_file"].write_bytes(server_from.ca_file.read_bytes())
            paths["server_cert_file"].write_bytes(server_from.server_cert_file.read_bytes())
            _write_private(paths["server_key_file"], server_from.server_key_file.read_bytes())
        else:
            ca = trustme.CA(organization_name="exocm sandbox (local test CA)")
            server = ca.issue_cert(*hosts)
            ca.cert_pem.write_to_path(str(paths["ca_file"]))
            server.cert_chain_pems[0].write_to_path(str(paths["server_cert_file"]))
            for extra in server.cert_chain_pems[1:]:
                extra.write_to_path(str(paths["server_cert_file"]), append=True)
            _write_private(paths["server_key_file"], server.private_key_pem.bytes())

        _write_private(paths["signing_key_file"], _key_pem(_new_rsa_key()))
        if app_from is not None:
            paths["client_cert_pem_file"].write_bytes(app_from.client_cert_pem_file.read_bytes())
            _write_private(paths["client_key_pem_file"], app_from.client_key_pem_file.read_bytes())
            _write_private(paths["client_pfx_file"], app_from.client_pfx_file.read_bytes())
            meta = {"client_pfx_passphrase": app_from.client_pfx_passphrase, "client_id": app_from.client_id,
                    "client_secret": app_from.client_secret, "device_client_id": app_from.device_client_id,
                    "signing_key_id": secrets.token_hex(8)}
            _write_private(meta_path, json.dumps(meta, indent=1).encode())
            return cls._build(directory, paths, meta)
        client_key = _new_rsa_key()
        client_cert = _self_signed_client_cert(client_key, "exocm-sandbox-app")
        paths["client_cert_pem_file"].write_bytes(client_cert.public_bytes(serialization.Encoding.PEM))
        _write_private(paths["client_key_pem_file"], _key_pem(client_key))
        passphrase = secrets.token_urlsafe(12)
        pfx = pkcs12.serialize_key_and_certificates(
            b"exocm-sandbox-app", client_key, client_cert, None,
            serialization.BestAvailableEncryption(passphrase.encode()))
        _write_private(paths["client_pfx_file"], pfx)

        meta = {
            "client_pfx_passphrase": passphrase,
            "client_id": str(uuid.uuid4()),
            "client_secret": secrets.token_urlsafe(30),
            "device_client_id": str(uuid.uuid4()),
            "signing_key_id": secrets.token_hex(8),
        }
        _write_private(meta_path, json.dumps(meta, indent=1).encode())
        return cls._build(directory, paths, meta)

    @classmethod
    def _build(cls, directory: Path, paths: dict[str, Path], meta: dict[str, str]) -> TlsMaterial:
        return cls(directory=directory, ca_file=paths["ca_file"], server_cert_file=paths["server_cert_file"],
                   server_key_file=paths["server_key_file"], client_cert_pem_file=paths["client_cert_pem_file"],
                   client_key_pem_file=paths["client_key_pem_file"], client_pfx_file=paths["client_pfx_file"],
                   client_pfx_passphrase=meta["client_pfx_passphrase"], signing_key_file=paths["signing_key_file"],
                   client_id=meta["client_id"], client_secret=meta["client_secret"],
                   device_client_id=meta["device_client_id"], signing_key_id=meta["signing_key_id"])
