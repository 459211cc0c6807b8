"""Where mail goes: an SMTP server, or (the embedded default) files in a directory.

The worker alone sends mail (`worker.tasks.send_mail`); a request only queues it. Like
`app.storage`, each transport does one thing behind one method, `send(message)`, and the
task never knows which it talks to. What a transport raises tells the task what to do:
`MailDeferred` (the server is down or said "try later": retry with backoff) or
`MailRefused` (the server refused this message for good: retrying would not help).
"""

from __future__ import annotations

from email.message import EmailMessage
from typing import Protocol

from app.settings import Settings

# The sender when none is set: only `dev`'s files use it (an SMTP host requires one).
DEFAULT_FROM = "Instashare <instashare@localhost>"


class MailDeferred(Exception):
    """Not sent this time (connection failed, timed out, 4xx): try again later."""


class MailRefused(Exception):
    """The server refused the message for good (5xx): no retry will deliver it."""


class Transport(Protocol):
    def send(self, message: EmailMessage) -> None:
        """Deliver `message` to its recipients, or raise MailDeferred / MailRefused."""
        ...

    def describe(self) -> str:
        """Where mail goes, for a log line or `instashare-server check`."""
        ...


def configured(settings: Settings) -> bool:
    """Whether mail can be sent at all: an SMTP host, or a directory to write it to."""
    return bool(settings.smtp_host or settings.mail_outbox)


def sender(settings: Settings) -> str:
    return settings.mail_from or DEFAULT_FROM


def make_transport(settings: Settings) -> Transport | None:
    """The transport the settings name (SMTP before the outbox); None when neither is set."""
    if settings.smtp_host:
        from app.mail.smtp import SMTPTransport

        return SMTPTransport.from_settings(settings)
    if settings.mail_outbox:
        from app.mail.outbox import OutboxTransport

        return OutboxTransport(settings.mail_outbox)
    return None
