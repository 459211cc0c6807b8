"""The mail transports against a real SMTP server (aiosmtpd, tests/mailbox.py), and the
mails the service composes."""

from __future__ import annotations

import datetime as dt
import email
from email.policy import default

import pytest

from app.mail import MailDeferred, MailRefused, make_transport, sender
from app.mail.outbox import OutboxTransport
from app.mail.smtp import SMTPTransport
from app.services import mail
from app.settings import Settings
from tests.helpers import free_port
from tests.mailbox import Mailbox, self_signed, trusting

FROM = "Instashare <noreply@example.com>"
TO = "ada@example.com"
LINK = "https://share.example.com/#/reset/abc"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def reset_mail() -> mail.Mail:
    return mail.password_reset(TO, LINK, dt.datetime.now(dt.UTC) + dt.timedelta(minutes=30))


def _transport(box: Mailbox, security: str, certificate=None, **login) -> SMTPTransport:
    context = trusting(certificate[0]) if certificate else None
    return SMTPTransport("127.0.0.1", box.port, security, tls_context=context, **login)


def test_a_plain_relay_gets_the_mail_as_composed(reset_mail):
    box = Mailbox().start()
    try:
        _transport(box, "none").send(reset_mail.as_email(FROM))
        got = box.wait_for(TO, 5)
    finally:
        box.stop()
    assert box.envelopes == [("noreply@example.com", [TO])]
    assert got["From"] == FROM and got["Subject"] == "Set a new Instashare password"
    assert got["Message-ID"] == reset_mail.message_id
    assert got["Auto-Submitted"] == "auto-generated"
    body = got.get_body(("plain",)).get_content()
    assert LINK in body and "works once, for 30 minutes" in body
    assert "If you did not ask for this, ignore this mail" in body


def test_starttls_with_a_login(certificate, reset_mail):
    box = Mailbox(certificate=certificate, login=("mailer", "s3cret")).start()
    try:
        transport = _transport(box, "starttls", certificate, user="mailer", password="s3cret")
        transport.send(reset_mail.as_email(FROM))
        assert box.wait_for(TO, 5)["Subject"] == "Set a new Instashare password"
    finally:
        box.stop()


def test_tls_from_the_first_byte(certificate, reset_mail):
    box = Mailbox(certificate=certificate, implicit_tls=True).start()
    try:
        _transport(box, "tls", certificate).send(reset_mail.as_email(FROM))
        assert box.wait_for(TO, 5)
    finally:
        box.stop()


def test_starttls_is_required_not_hoped_for(reset_mail):
    box = Mailbox(login=None).start()  # offers no STARTTLS
    try:
        with pytest.raises(MailDeferred, match="STARTTLS"):
            _transport(box, "starttls").send(reset_mail.as_email(FROM))
    finally:
        box.stop()
    assert box.received == []


def test_a_certificate_nobody_vouches_for_is_refused(certificate, reset_mail):
    box = Mailbox(certificate=certificate).start()
    try:
        with pytest.raises(MailDeferred, match="SSL"):
            _transport(box, "starttls").send(reset_mail.as_email(FROM))  # the system's CAs
    finally:
        box.stop()
    assert box.received == []


def test_a_wrong_login_is_worth_retrying_once_the_settings_are_fixed(certificate, reset_mail):
    box = Mailbox(certificate=certificate, login=("mailer", "s3cret")).start()
    try:
        transport = _transport(box, "starttls", certificate, user="mailer", password="wrong")
        with pytest.raises(MailDeferred, match="535"):
            transport.send(reset_mail.as_email(FROM))
    finally:
        box.stop()


def test_a_recipient_the_server_refuses_is_refused_for_good(reset_mail):
    box = Mailbox().start()
    box.refused.add(TO)
    try:
        with pytest.raises(MailRefused, match="550"):
            _transport(box, "none").send(reset_mail.as_email(FROM))
    finally:
        box.stop()


def test_a_server_that_is_not_there_is_worth_retrying(reset_mail):
    with pytest.raises(MailDeferred, match="ConnectionRefusedError"):
        SMTPTransport("127.0.0.1", free_port(), "none", timeout=2).send(reset_mail.as_email(FROM))


def test_the_outbox_writes_one_readable_file_per_mail(tmp_path, reset_mail):
    outbox = OutboxTransport(tmp_path / "mail")
    outbox.send(reset_mail.as_email(FROM))
    [written] = (tmp_path / "mail").iterdir()
    assert written.suffix == ".eml"
    parsed = email.message_from_bytes(written.read_bytes(), policy=default)
    assert LINK in parsed.get_body(("plain",)).get_content()


def test_the_settings_pick_the_transport(tmp_path):
    smtp = Settings.from_env({}, smtp_host="mail.example.com", mail_from=FROM, mail_outbox=tmp_path)
    assert isinstance(make_transport(smtp), SMTPTransport)
    assert make_transport(smtp).describe() == "SMTP mail.example.com:587 (starttls)"
    files = Settings.from_env({}, mail_outbox=tmp_path)
    assert isinstance(make_transport(files), OutboxTransport)
    assert sender(files) == "Instashare <instashare@localhost>"
    assert make_transport(Settings.from_env({})) is None


def test_the_invitation_names_who_invites_the_link_and_until_when():
    expires = dt.datetime(2030, 1, 2, 3, 4, tzinfo=dt.UTC)
    invite = mail.invitation(
        TO, "https://share.example.com/#/invite/xyz", "boss@example.com", expires
    )
    assert invite.subject == "boss@example.com invited you to Instashare"
    assert "https://share.example.com/#/invite/xyz" in invite.text
    assert "works once, until 2030-01-02 03:04 UTC" in invite.text
    assert invite.not_after == int(expires.timestamp())
    forever = mail.invitation(TO, "https://x/#/invite/xyz", "boss@example.com", None)
    assert "works once, until it is used" in forever.text and forever.not_after == 0
    assert mail.Mail.from_args(invite.args()) == invite


def test_a_header_cannot_be_smuggled_in():
    invite = mail.invitation(TO, "https://x/#/invite/xyz", "boss@example.com\r\nBcc: x@evil", None)
    with pytest.raises(ValueError):
        invite.as_email(FROM).as_bytes()
