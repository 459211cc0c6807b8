"""Password recovery over HTTP: the link by mail, its single use, expiry and limits.

The app queues its mails (tests.helpers.InlineJobs keeps their fields); what a mail holds
is read from those. The worker sending them over SMTP is tests/worker/test_mail.py's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import time

import pytest

from app.errors import MailUnavailable, TooManyRequests
from app.models import User
from app.services import password_resets
from app.services.mail import Mail
from app.services.throttle import MemoryCounters
from tests.helpers import PASSWORD, assert_problem, make_settings, new_email, runtime

REQUEST = "/api/v1/users/password-reset"
CONFIRM = "/api/v1/users/password-reset/confirm"
LOGIN = "/api/v1/users/login"
ME = "/api/v1/users/me"
NEW = "a brand new passphrase"
LINK = re.compile(r"^(http://testserver)/#/reset/([A-Za-z0-9_-]+)$", re.M)


@pytest.fixture(scope="module")
def mail_settings(tmp_path_factory, database_url, redis_url):
    """Settings whose mails go to files (the tests read them from the queue, before)."""
    tmp = tmp_path_factory.mktemp("mail")
    return make_settings(
        tmp, database_url, mail_outbox=tmp / "outbox", password_reset_max_per_ip=10_000
    )


@pytest.fixture
def mail_app(make_app, mail_settings):
    return make_app(mail_settings)


@pytest.fixture
def client(mail_app):
    with mail_app.test_client() as test_client:
        yield test_client


def mails(app) -> list[Mail]:
    return [Mail.from_args(fields) for fields in runtime(app).jobs.mails]


def token_in(mail: Mail) -> str:
    found = LINK.search(mail.text)
    assert found, mail.text
    return found.group(2)


def ask(client, email: str):
    response = client.post(REQUEST, json={"email": email})
    assert response.status_code == 202, response.text
    return response.json()


def test_the_mail_holds_a_link_that_sets_the_password_and_ends_every_session(
    client, mail_app, alice
):
    answer = ask(client, alice.email)
    assert answer == {
        "detail": f"If an account exists for {alice.email}, we have sent a link to it to set a "
        "new password. The link works for 30 minutes."
    }
    [mail] = mails(mail_app)
    assert mail.to == alice.email
    assert mail.subject == "Set a new Instashare password"
    assert "works once, for 30 minutes" in mail.text
    assert 29 * 60 <= mail.not_after - time.time() <= 30 * 60  # not sent once it is useless

    response = client.post(CONFIRM, json={"token": token_in(mail), "new_password": NEW})
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    fresh = response.json()["access_token"]
    assert client.get(ME, headers={"Authorization": f"Bearer {fresh}"}).status_code == 200
    # The session from before the reset has ended; the old password is wrong, the new one right.
    assert_problem(client.get(ME, headers=alice.headers), 401)
    assert_problem(client.post(LOGIN, json={"email": alice.email, "password": PASSWORD}), 401)
    assert client.post(LOGIN, json={"email": alice.email, "password": NEW}).status_code == 200


def test_a_link_works_once(client, mail_app, alice):
    ask(client, alice.email)
    token = token_in(mails(mail_app)[0])
    assert client.post(CONFIRM, json={"token": token, "new_password": NEW}).status_code == 200
    again = client.post(CONFIRM, json={"token": token, "new_password": NEW + " again"})
    body = assert_problem(again, 400)
    assert body["detail"] == password_resets.SPENT
    assert client.post(LOGIN, json={"email": alice.email, "password": NEW}).status_code == 200


def test_using_one_link_spends_every_link_sent_before(
    client, mail_app, mail_settings, session, alice
):
    # One sent a few minutes ago (two asked for in the same second are the same link).
    first = password_resets.make_token(
        mail_settings, session.get(User, alice.id), int(time.time()) + 1500
    )
    ask(client, alice.email)
    second = token_in(mails(mail_app)[0])
    assert first != second
    assert client.post(CONFIRM, json={"token": second, "new_password": NEW}).status_code == 200
    assert_problem(client.post(CONFIRM, json={"token": first, "new_password": NEW}), 400)


def test_changing_the_password_spends_the_links(client, mail_app, alice):
    ask(client, alice.email)
    token = token_in(mails(mail_app)[0])
    changed = client.post(
        "/api/v1/users/me/password",
        headers=alice.headers,
        json={"current_password": PASSWORD, "new_password": NEW},
    )
    assert changed.status_code == 200, changed.text
    body = assert_problem(client.post(CONFIRM, json={"token": token, "new_password": NEW}), 400)
    assert "changed since it was sent" in body["detail"]


def test_an_expired_link_is_gone(client, mail_settings, session, alice):
    user = session.get(User, alice.id)
    past = int(time.time()) - 1
    token = password_resets.make_token(mail_settings, user, past)
    body = assert_problem(client.post(CONFIRM, json={"token": token, "new_password": NEW}), 410)
    when = dt.datetime.fromtimestamp(past, dt.UTC)
    assert body["detail"] == (
        f"This password reset link expired at {when:%Y-%m-%d %H:%M} UTC; ask for a new one."
    )
    assert client.post(LOGIN, json={"email": alice.email, "password": PASSWORD}).status_code == 200


def _flip_last(token: str) -> str:
    return token[:-1] + ("A" if token[-1] != "A" else "Q")


@pytest.mark.parametrize(
    "spoil",
    [
        lambda t: t[:-1],  # cut short
        lambda t: t + "A",  # one too many
        lambda t: t.replace(t[5], "-" if t[5] != "-" else "_", 1),  # changed
        lambda t: t[:-1] + "=",  # padded, not the one spelling
        lambda t: "not a token at all",
    ],
    ids=["short", "long", "changed", "padded", "junk"],
)
def test_a_token_that_is_not_one_the_service_made_is_refused(client, mail_app, alice, spoil):
    ask(client, alice.email)
    token = spoil(token_in(mails(mail_app)[0]))
    body = assert_problem(client.post(CONFIRM, json={"token": token, "new_password": NEW}), 400)
    assert body["detail"] in (password_resets.NOT_VALID, password_resets.SPENT)
    assert client.post(LOGIN, json={"email": alice.email, "password": PASSWORD}).status_code == 200


def test_a_token_whose_mac_is_changed_is_refused_as_spent(client, mail_app, alice):
    ask(client, alice.email)
    token = _flip_last(token_in(mails(mail_app)[0]))
    body = assert_problem(client.post(CONFIRM, json={"token": token, "new_password": NEW}), 400)
    assert body["detail"] in (password_resets.NOT_VALID, password_resets.SPENT)


def test_a_password_too_short_is_refused_and_the_link_still_works(client, mail_app, alice):
    ask(client, alice.email)
    token = token_in(mails(mail_app)[0])
    body = assert_problem(client.post(CONFIRM, json={"token": token, "new_password": "short"}), 400)
    assert "new_password" in body["detail"] or "10" in body["detail"]
    assert "short" not in body["detail"]  # a password is never repeated back
    assert client.post(CONFIRM, json={"token": token, "new_password": NEW}).status_code == 200


def test_an_unknown_address_gets_the_same_answer_and_no_mail(client, mail_app, alice):
    unknown = new_email()
    assert ask(client, unknown) == {
        "detail": f"If an account exists for {unknown}, we have sent a link to it to set a new "
        "password. The link works for 30 minutes."
    }
    assert mails(mail_app) == []


def test_the_address_is_matched_whatever_its_case(client, mail_app, alice):
    ask(client, f"  {alice.email.upper()} ")
    assert [m.to for m in mails(mail_app)] == [alice.email]


def test_past_the_limit_the_answer_stays_the_same_and_no_mail_goes(client, mail_app, alice):
    answers = [ask(client, alice.email) for _ in range(5)]
    assert all(answer == answers[0] for answer in answers)
    assert len(mails(mail_app)) == 3  # INSTASHARE_PASSWORD_RESET_MAX_MAILS
    # The same address in another case is the same account, and the same limit.
    ask(client, alice.email.upper())
    assert len(mails(mail_app)) == 3


def test_not_an_address_is_a_400_with_a_sentence(client, mail_app):
    body = assert_problem(client.post(REQUEST, json={"email": "not-an-address"}), 400)
    assert body["detail"] == "'not-an-address' is not a valid e-mail address."


def test_a_server_that_sends_no_mail_says_so(make_app, local_settings):
    assert local_settings.smtp_host == "" and local_settings.mail_outbox is None
    with make_app(local_settings).test_client() as client:
        body = assert_problem(client.post(REQUEST, json={"email": new_email()}), 503)
    assert body["title"] == "Mail Unavailable"
    assert body["detail"].startswith("Password recovery by e-mail is not set up on this server")


# The rules themselves, on the service, with counters of their own.


def test_requests_from_one_client_address_are_limited_to_429(session, mail_settings):
    settings = dataclasses.replace(mail_settings, password_reset_max_per_ip=2)
    store = MemoryCounters()

    def request(email: str, address: str = "203.0.113.7"):
        return password_resets.request(
            session, settings, store, email=email, address=address, base_url="http://x"
        )

    request(new_email())
    request(new_email())
    with pytest.raises(TooManyRequests) as refused:
        request(new_email())
    assert refused.value.detail.startswith("Too many password reset requests from your address")
    assert 3590 <= int(refused.value.headers["Retry-After"]) <= 3600
    request(new_email(), address="198.51.100.1")  # another client is not held to it


def test_the_per_address_limit_counts_unknown_addresses_too(session, mail_settings, alice):
    store = MemoryCounters()
    for _ in range(3):
        assert (
            password_resets.request(
                session, mail_settings, store, email=new_email(), address="a", base_url="http://x"
            )
            is None
        )
    sent = [
        password_resets.request(
            session, mail_settings, store, email=alice.email, address="b", base_url="http://x"
        )
        for _ in range(4)
    ]
    assert [m is not None for m in sent] == [True, True, True, False]


def test_the_configured_public_url_makes_the_link_not_the_request_host(
    session, mail_settings, alice
):
    settings = dataclasses.replace(mail_settings, public_url="https://share.example.com")
    mail = password_resets.request(
        session,
        settings,
        MemoryCounters(),
        email=alice.email,
        address="a",
        base_url="http://evil.example",
    )
    assert mail is not None
    assert "https://share.example.com/#/reset/" in mail.text
    assert "evil" not in mail.text


def test_production_without_a_public_url_sends_no_link(session, mail_settings, alice):
    settings = dataclasses.replace(mail_settings, env="production")
    with pytest.raises(MailUnavailable) as refused:
        password_resets.request(
            session,
            settings,
            MemoryCounters(),
            email=alice.email,
            address="a",
            base_url="http://evil.example",
        )
    assert "INSTASHARE_PUBLIC_URL" in refused.value.detail


class CountingStore(MemoryCounters):
    """Counters that note each step asked of them (as Redis would be asked)."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[str] = []

    def take(self, key: str, limit: int, window: int) -> int:
        self.steps.append(f"take {key.split(':')[1]}")
        return super().take(key, limit, window)


def test_an_unknown_address_costs_the_same_work_as_a_known_one(session, mail_settings, alice):
    """What the answer waits for: the same statements and counter steps either way (the
    mail is queued after the answer has gone, app.handlers.users)."""
    from sqlalchemy import event

    def work(email: str) -> tuple[list[str], list[str]]:
        store, statements = CountingStore(), []

        def seen(_conn, _cursor, statement, *_args) -> None:
            statements.append(statement)

        connection = session.connection()
        event.listen(connection, "before_cursor_execute", seen)
        try:
            password_resets.request(
                session, mail_settings, store, email=email, address="a", base_url="http://x"
            )
        finally:
            event.remove(connection, "before_cursor_execute", seen)
        return store.steps, statements

    known, unknown = work(alice.email), work(new_email())
    assert known == unknown
    assert known[0] == ["take ip", "take to", "take acct"]
    assert len(known[1]) == 1  # the account looked up, by its address


def test_using_a_link_lets_its_address_log_in_after_failed_logins(client, mail_app, alice):
    wrong = {"email": alice.email, "password": "not the password at all"}
    statuses = [client.post(LOGIN, json=wrong).status_code for _ in range(6)]
    assert statuses[-1] == 429  # this address now waits before its next try at the account
    ask(client, alice.email)
    token = token_in(mails(mail_app)[0])
    assert client.post(CONFIRM, json={"token": token, "new_password": NEW}).status_code == 200
    logged_in = client.post(LOGIN, json={"email": alice.email, "password": NEW})
    assert logged_in.status_code == 200, logged_in.text


def test_an_invitation_for_an_address_is_mailed_to_it(client, mail_app, mail_settings, factories):
    from app.services import tokens
    from tests.factories import UserFactory

    admin = UserFactory(email=new_email(), role="admin")
    headers = {"Authorization": f"Bearer {tokens.issue(mail_settings, admin.id)[0]}"}
    to = new_email()
    made = client.post(
        "/api/v1/admin/invitations", headers=headers, json={"email": to, "expires_in_days": 2}
    )
    assert made.status_code == 201, made.text
    [mail] = mails(mail_app)
    assert mail.to == to
    assert mail.subject == f"{admin.email} invited you to Instashare"
    assert made.json()["link"] in mail.text
    assert mail.not_after == int(dt.datetime.fromisoformat(made.json()["expires_at"]).timestamp())
    # One for anybody (no address) has nobody to go to.
    anyone = client.post("/api/v1/admin/invitations", headers=headers, json={})
    assert anyone.status_code == 201 and len(mails(mail_app)) == 1
