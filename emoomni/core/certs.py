"""`emoomni certs`: a private CA with a server and a client certificate, for a secured stack on hosts you run.

Writes ca.pem (what clients trust, and the client CA for mutual TLS), server.pem/server.key (every gRPC server
and the nats-server) and client.pem/client.key (a client's certificate under mutual TLS). Made with the
`cryptography` package: EC P-256 keys, SHA-256 signatures. For public deployments use your own PKI instead.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from emoomni.core.private_files import write_private


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "EmoOmni"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(hosts: list[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None = None) -> None:
    path.with_suffix(".pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        key_path = path.with_suffix(".key")
        write_private(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))


def _issue(subject: str, key, issuer: x509.Name, issuer_key, days: int, *, ca: bool = False,
           hosts: list[str] | None = None, usage=None) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if hosts:
        builder = builder.add_extension(_san(hosts), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_certs(out: str | Path, hosts: list[str] | None = None, days: int = 365, ca_name: str = "EmoOmni CA") -> Path:
    """Write ca.pem, server.pem/.key (valid for 127.0.0.1, localhost and `hosts`) and client.pem/.key."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    hosts = list(dict.fromkeys(["127.0.0.1", "localhost", *(hosts or [])]))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue(ca_name, ca_key, _name(ca_name), ca_key, days, ca=True)
    _write(out / "ca", ca, ca_key)
    for role, usage in (("server", ExtendedKeyUsageOID.SERVER_AUTH), ("client", ExtendedKeyUsageOID.CLIENT_AUTH)):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(f"emoomni-{role}", key, ca.subject, ca_key, days, hosts=hosts if role == "server" else None,
                      usage=usage)
        _write(out / role, cert, key)
    return out
