"""A real SMTP server for the tests: aiosmtpd on a loopback port, keeping what it receives.

Nothing is mocked: the worker (or the transport) speaks SMTP to it over a socket, with
STARTTLS or TLS when a test gives it a certificate (`self_signed`, made with `cryptography`),
and a login when it names a user. A test reads the mails that arrived (`wait_for`).
"""

from __future__ import annotations

import datetime as dt
import email
import ipaddress
import re
import ssl
import threading
import time
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.helpers import free_port

RESET_LINK = re.compile(r"(https?://\S+/#/reset/([A-Za-z0-9_-]+))")


class Mailbox:
    """An SMTP server on 127.0.0.1:`port` (free by default); `start()`, `stop()`, `received`."""

    def __init__(
        self,
        port: int | None = None,
        *,
        certificate: tuple[Path, Path] | None = None,
        implicit_tls: bool = False,
        login: tuple[str, str] | None = None,
    ):
        self.port = port or free_port()
        self.certificate = certificate
        self.implicit_tls = implicit_tls
        self.login = login
        self.refused: set[str] = set()  # recipients it answers 550 for
        self.received: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    def _server_context(self) -> ssl.SSLContext | None:
        if self.certificate is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*map(str, self.certificate))
        return context

    def _authenticate(self, _server, _session, _envelope, mechanism, data) -> AuthResult:
        ok = isinstance(data, LoginPassword) and self.login == (
            data.login.decode(),
            data.password.decode(),
        )
        return AuthResult(success=ok, handled=False)

    async def handle_RCPT(self, _server, _session, envelope, address, _options) -> str:
        if address in self.refused:
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, _server, _session, envelope) -> str:
        message = email.message_from_bytes(envelope.original_content, policy=default)
        with self._lock:
            self.received.append(message)  # type: ignore[arg-type]
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"

    def start(self) -> Mailbox:
        context = self._server_context()
        options: dict = {}
        if self.implicit_tls:
            options["ssl_context"] = context
        elif context is not None:
            options.update(tls_context=context, require_starttls=True)
        if self.login is not None:
            options.update(authenticator=self._authenticate, auth_require_tls=context is not None)
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, **options)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def to(self, address: str) -> list[EmailMessage]:
        with self._lock:
            return [m for m in self.received if m["To"] == address]

    def wait_for(self, address: str, timeout: float = 30.0, count: int = 1) -> EmailMessage:
        """The `count`-th mail to `address`, once it has arrived."""
        deadline = time.monotonic() + timeout
        while True:
            mails = self.to(address)
            if len(mails) >= count:
                return mails[count - 1]
            if time.monotonic() > deadline:
                raise AssertionError(f"no mail #{count} to {address} arrived within {timeout}s")
            time.sleep(0.05)


def reset_link(message: EmailMessage) -> tuple[str, str]:
    """The password reset link in a mail's text, and its token."""
    body = message.get_body(("plain",))
    assert body is not None, "the mail has no text part"
    found = RESET_LINK.search(body.get_content())
    assert found, body.get_content()
    return found.group(1), found.group(2)


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key (PEM files in `directory`)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def trusting(cert_path: Path) -> ssl.SSLContext:
    """A client context that trusts only `cert_path` (what the test server presents)."""
    return ssl.create_default_context(cafile=str(cert_path))
