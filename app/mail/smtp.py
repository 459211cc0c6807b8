"""Mail through an SMTP server: STARTTLS, TLS from the first byte, or plain; optional login."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage

from app.mail import MailDeferred, MailRefused
from app.settings import Settings

# One conversation with the server (connect, each command's answer) may take this long.
TIMEOUT_SECONDS = 20.0


@dataclass(frozen=True)
class SMTPTransport:
    host: str
    port: int
    security: str  # starttls | tls | none
    user: str = ""
    password: str = ""
    timeout: float = TIMEOUT_SECONDS
    # The certificates the server's is checked against; None: the system's (tests pass one).
    tls_context: ssl.SSLContext | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> SMTPTransport:
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port_or_default,
            security=settings.smtp_security,
            user=settings.smtp_user,
            password=settings.smtp_password,
        )

    def describe(self) -> str:
        login = f", as {self.user}" if self.user else ""
        return f"SMTP {self.host}:{self.port} ({self.security}{login})"

    def _context(self) -> ssl.SSLContext:
        return self.tls_context or ssl.create_default_context()

    def connect(self) -> smtplib.SMTP:
        """A connection that has said EHLO, is encrypted as set, and has logged in."""
        client: smtplib.SMTP
        if self.security == "tls":
            client = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=self._context()
            )
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            client.ehlo()
            if self.security == "starttls":
                # Required, never opportunistic: a server (or a man in the middle) that
                # does not offer it gets no password and no mail.
                if not client.has_extn("starttls"):
                    raise smtplib.SMTPNotSupportedError("the server does not offer STARTTLS")
                client.starttls(context=self._context())
                client.ehlo()
            if self.user:
                client.login(self.user, self.password)
        except BaseException:
            client.close()
            raise
        return client

    def ping(self) -> None:
        """Connect, encrypt and log in as a send would, then quit (for `check`)."""
        client = self.connect()
        try:
            client.quit()
        finally:
            client.close()

    def send(self, message: EmailMessage) -> None:
        try:
            client = self.connect()
            try:
                client.send_message(message)
                client.quit()
            finally:
                client.close()
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            if all(code >= 500 for code in codes):
                raise MailRefused(f"the server refused the recipient: {exc.recipients}") from exc
            raise MailDeferred(f"the server deferred the recipient: {exc.recipients}") from exc
        except smtplib.SMTPResponseException as exc:
            # 5xx is final, except a failed login (535) or missing TLS, which an operator
            # fixes in the settings: worth the retries' few minutes.
            if exc.smtp_code >= 500 and exc.smtp_code not in (530, 535, 538):
                raise MailRefused(f"{exc.smtp_code} {exc.smtp_error!r}") from exc
            raise MailDeferred(f"{exc.smtp_code} {exc.smtp_error!r}") from exc
        except (smtplib.SMTPException, OSError) as exc:
            # Refused or dropped connections, timeouts, TLS failures, no STARTTLS offered.
            raise MailDeferred(f"{type(exc).__name__}: {exc}") from exc
