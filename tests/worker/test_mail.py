"""Mail sent by a real Celery worker process to a real SMTP server (aiosmtpd).

The app commits and queues; `instashare-server worker` takes the job from the broker and
speaks SMTP to the server on a loopback port; the test reads what arrived, and uses it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Iterator

import pytest

from app.runtime import Runtime, build_runtime
from app.services import mail
from app.web import create_app
from tests.helpers import (
    Account,
    WorkerProcess,
    committed_account,
    fresh_database,
    make_settings,
    new_email,
    wait_until,
)
from tests.mailbox import Mailbox, reset_link

FROM = "Instashare <noreply@example.com>"
NEW = "a brand new passphrase"


@dataclasses.dataclass
class MailSite:
    client: object  # the app's test client (it commits)
    rt: Runtime
    box: Mailbox
    worker: WorkerProcess

    def account(self) -> Account:
        return committed_account(self.rt.sessions, self.rt.settings)


@pytest.fixture(scope="module")
def site(tmp_path_factory, redis_url) -> Iterator[MailSite]:
    """An app and one worker on a database and a `filesystem://` broker of their own, both
    set to send mail through the SMTP server the tests read."""
    tmp = tmp_path_factory.mktemp("mail-worker")
    box = Mailbox().start()
    with fresh_database("instashare_mail") as url:
        settings = make_settings(
            tmp,
            url,
            broker_url="filesystem://",
            smtp_host="127.0.0.1",
            smtp_port=box.port,
            smtp_security="none",
            mail_from=FROM,
            password_reset_max_per_ip=10_000,
        )
        worker = WorkerProcess(
            settings, tmp / "worker.log", concurrency=1, extra_args=("--no-small-lane",)
        ).start()
        rt = build_runtime(settings)
        try:
            with create_app(settings, runtime=rt).test_client() as client:
                yield MailSite(client, rt, box, worker)
        finally:
            worker.kill()
            rt.sessions.kw["bind"].dispose()
            box.stop()


def test_the_reset_mail_arrives_by_smtp_and_its_link_sets_the_password(site):
    account = site.account()
    asked = site.client.post("/api/v1/users/password-reset", json={"email": account.email})
    assert asked.status_code == 202, asked.text

    got = site.box.wait_for(account.email, 60)
    assert got["From"] == FROM and got["Subject"] == "Set a new Instashare password"
    link, token = reset_link(got)
    assert link.startswith("http://testserver/#/reset/")  # the host the request came to
    done = site.client.post(
        "/api/v1/users/password-reset/confirm", json={"token": token, "new_password": NEW}
    )
    assert done.status_code == 200, done.text
    login = {"email": account.email, "password": NEW}
    assert site.client.post("/api/v1/users/login", json=login).status_code == 200
    ended = site.client.get("/api/v1/users/me", headers=account.headers)
    assert ended.status_code == 401, "the session from before the reset has ended"
    again = site.client.post(
        "/api/v1/users/password-reset/confirm", json={"token": token, "new_password": NEW}
    )
    assert again.status_code == 400
    assert f"mail {got['Message-ID']}" in site.worker.log()
    assert token not in site.worker.log(), "the link is a secret: no log line holds it"


def test_an_unknown_address_gets_no_mail(site):
    account, unknown = site.account(), new_email()
    for email in (unknown, account.email):
        asked = site.client.post("/api/v1/users/password-reset", json={"email": email})
        assert asked.status_code == 202
    site.box.wait_for(account.email, 60)  # sent after the unknown one's (nothing) was
    assert site.box.to(unknown) == []


def test_a_mail_the_server_was_down_for_is_delivered_on_a_retry(site):
    account = site.account()
    site.box.stop()
    try:
        asked = site.client.post("/api/v1/users/password-reset", json={"email": account.email})
        assert asked.status_code == 202
        wait_until(
            lambda: "will retry" in site.worker.log(), 60, 0.1, what="the first attempt to fail"
        )
    finally:
        site.box.start()  # the same port: the worker's next attempt reaches it
    started = time.monotonic()
    got = site.box.wait_for(account.email, 30)
    assert time.monotonic() - started < 30  # the first retry is 2 s after the failure
    assert len(site.box.to(account.email)) == 1
    _, token = reset_link(got)
    assert token not in site.worker.log(), "nor the retry's log lines"
    done = site.client.post(
        "/api/v1/users/password-reset/confirm", json={"token": token, "new_password": NEW}
    )
    assert done.status_code == 200, done.text


def test_an_invitation_is_sent_the_same_way(site):
    to = new_email()
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=7)
    link = "http://testserver/#/invite/an-invitation-token"
    assert mail.send_invitation(site.rt.jobs, to, link, "admin@example.com", expires)
    got = site.box.wait_for(to, 60)
    assert got["Subject"] == "admin@example.com invited you to Instashare"
    text = got.get_body(("plain",)).get_content()
    assert link in text and f"until {expires:%Y-%m-%d %H:%M} UTC" in text


def test_a_mail_whose_link_expired_before_it_could_go_is_not_sent(site):
    to = new_email()
    stale = dataclasses.replace(
        mail.password_reset(to, "http://testserver/#/reset/x", dt.datetime.now(dt.UTC)),
        not_after=int(time.time()) - 60,
    )
    assert mail.send(site.rt.jobs, stale)
    wait_until(
        lambda: (
            f"mail {stale.message_id} ('Set a new Instashare password'): not sent, its link "
            "expired" in site.worker.log()
        ),
        60,
        0.1,
        what="the worker to drop it",
    )
    assert site.box.to(to) == []
