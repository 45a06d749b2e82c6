"""bigEVY over HTTPS with Serve's own TLS (`tls_certfile` / `tls_keyfile`, as
serve_config.tls.yaml ships it): a self-signed certificate made here, a real Serve app, and
keys that travel only inside TLS."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bigevy.config import Settings
from tests.support.cluster import API, free_port, new_key, wait_for


def self_signed(where: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bigevy.test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert, private = where / "cert.pem", where / "key.pem"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    private.chmod(0o600)
    return cert, private


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, ssl.SSLContext]]:
    """A Ray and Serve of this module's own, its proxy speaking HTTPS only."""
    import ray
    from ray import serve

    from deployments.app import build_app

    where = tmp_path_factory.mktemp("tls")
    cert, key = self_signed(where)
    settings = Settings(
        data_dir=where / "data", port=free_port(), tls_certfile=cert, tls_keyfile=key
    )
    settings.data_dir.mkdir()
    trust = ssl.create_default_context(cafile=str(cert))
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options=settings.http_options())
        API.key = new_key(settings)
        target = serve.RunTarget(build_app(settings), name=settings.app_name, route_prefix="/")
        serve.run_many([target], wait_for_applications_running=False)

        def ready() -> bool:
            try:
                url = f"{settings.base_url}/readyz"
                return httpx.get(url, verify=trust, timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, 180, "bigEVY over HTTPS")
        yield settings, trust
    finally:
        serve.shutdown()
        ray.shutdown()


def test_bigevy_speaks_https_only(tls: tuple[Settings, ssl.SSLContext]) -> None:
    settings, trust = tls
    assert settings.base_url.startswith("https://")
    models = httpx.get(f"{settings.base_url}/v1/models", headers=API.headers, verify=trust)
    assert models.status_code == 200 and models.json()["data"]
    # A client that does not trust the certificate refuses to send its key at all...
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{settings.base_url}/v1/models", headers=API.headers)
    # ... and nothing answers in clear on the port.
    plain = settings.base_url.replace("https://", "http://")
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{plain}/v1/models", headers=API.headers, timeout=5)


def test_the_console_cookie_is_secure_over_https(tls: tuple[Settings, ssl.SSLContext]) -> None:
    """Over TLS the browser is told never to send the session in clear."""
    settings, trust = tls
    signed_in = httpx.post(
        f"{settings.base_url}/console/login", data={"key": API.key}, verify=trust
    )
    assert signed_in.status_code == 303
    cookie = signed_in.headers["set-cookie"]
    assert cookie.startswith("bigevy_console=bevysession_")
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"secure", "httponly", "samesite=strict", "path=/console"} <= attributes
