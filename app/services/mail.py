"""The mails the service sends, in plain sentences: composed here, queued, sent by the worker.

A request composes a mail and queues it (`send`); the worker's `send_mail` job hands it to
the transport (app.mail) and retries with backoff while the server is down. The job carries
the mail itself, as plain fields: what an invitation's link holds exists nowhere else (the
database keeps only a hash of it). A mail past `not_after` (its link expired) is dropped.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import textwrap
import time
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from app.queue.jobs import JobQueue

log = logging.getLogger(__name__)
# The domain of the Message-IDs this service makes.
MESSAGE_ID_DOMAIN = "instashare.invalid"


@dataclasses.dataclass(frozen=True)
class Mail:
    """One mail to one address: what the job carries (`args`) and the worker sends."""

    to: str
    subject: str
    text: str
    # Seconds since the epoch after which it is not worth sending; 0: no limit.
    not_after: int = 0
    # Made once, when composed: a retry (or a redelivery) sends the same message, which
    # mail programs show once.
    message_id: str = dataclasses.field(
        default_factory=lambda: make_msgid(domain=MESSAGE_ID_DOMAIN)
    )

    def args(self) -> list[str]:
        return [self.to, self.subject, self.text, str(self.not_after), self.message_id]

    @classmethod
    def from_args(cls, args: list[str]) -> Mail:
        to, subject, text, not_after, message_id = args
        return cls(to, subject, text, int(not_after), message_id)

    def expired(self, now: float | None = None) -> bool:
        return bool(self.not_after) and (now if now is not None else time.time()) > self.not_after

    def as_email(self, sender: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = sender
        message["To"] = self.to
        message["Subject"] = self.subject
        message["Date"] = format_datetime(dt.datetime.now(dt.UTC))
        message["Message-ID"] = self.message_id
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to it
        # Plain text a person (or `dev`'s newcomer, opening the file) reads as it is: no
        # quoted-printable breaking the link across lines. The text is ASCII (the addresses
        # are, app.services.users.EMAIL) and its lines are short but for the link's.
        message.set_content(self.text, charset="us-ascii", cte="7bit")
        return message


def _paragraphs(*paragraphs: str) -> str:
    """The paragraphs wrapped at 72 characters, a blank line between (a link is one line)."""
    return (
        "\n\n".join(
            p
            if p.startswith(("http://", "https://"))
            else textwrap.fill(p, 72, break_long_words=False, break_on_hyphens=False)
            for p in paragraphs
        )
        + "\n"
    )


def _when(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def password_reset(to: str, link: str, expires_at: dt.datetime) -> Mail:
    """The mail with a password reset link for the account of `to`."""
    minutes = max(round((expires_at - dt.datetime.now(dt.UTC)).total_seconds() / 60), 1)
    text = _paragraphs(
        f"Someone, we hope you, asked to set a new password for the Instashare account of {to}.",
        "Open this link to choose a new password:",
        link,
        f"The link works once, for {minutes} minutes (until {_when(expires_at)}). Setting the "
        "new password signs you out on every device.",
        "If you did not ask for this, ignore this mail: your password stays as it is.",
    )
    return Mail(
        to,
        "Set a new Instashare password",
        text,
        not_after=int(expires_at.timestamp()),
    )


def invitation(to: str, link: str, inviter: str, expires_at: dt.datetime | None) -> Mail:
    """The mail that invites `to` to make an account, from the administrator `inviter`."""
    lasting = f"until {_when(expires_at)}" if expires_at else "until it is used"
    text = _paragraphs(
        f"{inviter} invited you to make an account on Instashare, where you can upload "
        "files of any size and share them with a link.",
        "Open this link to choose your password:",
        link,
        f"The invitation works once, {lasting}.",
        f"If you do not know {inviter}, ignore this mail.",
    )
    return Mail(
        to,
        f"{inviter} invited you to Instashare",
        text,
        not_after=int(expires_at.timestamp()) if expires_at else 0,
    )


def send(jobs: JobQueue, mail: Mail) -> bool:
    """Queue `mail` for the worker (after the caller's commit); False (and a log line) if
    the broker is down: the mail is not sent, and whoever asked for it may ask again."""
    try:
        jobs.send_mail(mail.args())
    except Exception as exc:  # any broker failure: never the request's
        log.warning("could not queue the mail %r to %s: %s", mail.subject, mail.to, exc)
        return False
    return True


def send_invitation(
    jobs: JobQueue, to: str, link: str, inviter: str, expires_at: dt.datetime | None
) -> bool:
    """Queue the invitation mail (call it once the invitation is committed): `to` is the
    invited address, `link` the invitation's, `inviter` the administrator's address."""
    return send(jobs, invitation(to, link, inviter, expires_at))
