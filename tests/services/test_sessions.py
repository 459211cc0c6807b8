"""The sessions log-ins start: device names, who keeps a refresh token, what is swept."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import pytest
import sqlalchemy as sa

from app.db import utcnow
from app.errors import Unauthorized
from app.migrate import upgrade
from app.models import SessionKind, SignedInSession
from app.queue import FORGET_SESSIONS
from app.queue.celery import make_celery
from app.services import sessions
from tests.factories import UserFactory
from tests.helpers import assert_problem, make_settings, runtime

UAS = {
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36": "Chrome on Linux",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/131.0.0.0 Safari/537.36": "Chrome on Linux",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0": "Edge on Windows",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15": "Safari on macOS",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1": "Safari on iOS",
    "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0": "Firefox on Android",
    "instashare-cli/1.0.0": "Instashare CLI",
    "curl/7.88.1": "curl",
    "": "Unknown device",
    "Mozilla/5.0 (X11; Linux x86_64) SomethingNew/1.0": "A browser on Linux",
}


@pytest.mark.parametrize("agent", sorted(UAS))
def test_a_user_agent_reads_as_a_device(agent):
    assert sessions.device_label(agent) == UAS[agent]


def test_the_kind_of_a_session():
    assert sessions.kind_for("instashare-cli/1.0.0", False) == SessionKind.CLI
    assert sessions.kind_for("curl/8", False) == SessionKind.PLAIN
    assert sessions.kind_for("anything", True) == SessionKind.KEPT


def test_only_a_kept_session_has_a_refresh_token(session, factories, local_settings):
    user = UserFactory()
    plain = sessions.start_session(
        session, local_settings, user, user_agent="curl/8", address="192.0.2.1", remember=False
    )
    kept = sessions.start_session(
        session, local_settings, user, user_agent="curl/8", address="192.0.2.1", remember=True
    )
    access, expires_in, refresh = kept  # as the OIDC log-in unpacks it
    assert plain.refresh_token is None and refresh is not None and access
    assert plain.expires_in == expires_in == local_settings.token_ttl_seconds


def test_a_refresh_token_is_bound_to_the_secret_key(session, factories, local_settings):
    user = UserFactory()
    kept = sessions.start_session(
        session, local_settings, user, user_agent="", address="192.0.2.1", remember=True
    )
    other = dataclasses.replace(local_settings, secret_key="another key " * 4)
    assert kept.refresh_token is not None
    with pytest.raises(Unauthorized):
        sessions.refresh(session, other, kept.refresh_token, user_agent="", address="x")
    again = sessions.refresh(
        session, local_settings, kept.refresh_token, user_agent="", address="192.0.2.9"
    )
    assert again.refresh_token != kept.refresh_token


def _row(session, user_id, *, expires_at, ended_at=None) -> SignedInSession:
    row = SignedInSession(
        id=uuid.uuid4(),
        user_id=user_id,
        kind=SessionKind.PLAIN,
        device="curl",
        address="192.0.2.1",
        token_generation=0,
        expires_at=expires_at,
        ended_at=ended_at,
    )
    session.add(row)
    return row


def test_a_log_in_removes_its_accounts_sessions_that_are_over(session, factories, local_settings):
    user, other = UserFactory(), UserFactory()
    now = utcnow()
    gone = [_row(session, user.id, expires_at=now - dt.timedelta(seconds=1)),
            _row(session, user.id, expires_at=now, ended_at=now)]  # fmt: skip
    live = _row(session, user.id, expires_at=now + dt.timedelta(hours=1))
    theirs = _row(session, other.id, expires_at=now - dt.timedelta(seconds=1))
    session.commit()
    sessions.start_session(
        session, local_settings, user, user_agent="", address="192.0.2.1", remember=False
    )
    left = set(session.scalars(sa.select(SignedInSession.id)))
    assert not left & {row.id for row in gone}
    assert {live.id, theirs.id} <= left  # another account's rows wait for the sweep


def test_the_sweep_forgets_sessions_that_are_over_in_batches(session, factories):
    user = UserFactory()
    now = utcnow()
    over = [_row(session, user.id, expires_at=now - dt.timedelta(minutes=i)) for i in range(5)]
    live = _row(session, user.id, expires_at=now + dt.timedelta(days=1))
    session.commit()
    assert sessions.forget_over(session, batch=2) == 5
    left = set(
        session.scalars(sa.select(SignedInSession.id).where(SignedInSession.user_id == user.id))
    )
    assert left == {live.id} and not {row.id for row in over} & left


def test_the_worker_sweeps_them_every_hour(tmp_path, database_url):
    celery = make_celery(make_settings(tmp_path, database_url, broker_url="filesystem://"))
    entries = {e["task"]: e["schedule"] for e in celery.conf.beat_schedule.values()}
    assert entries[FORGET_SESSIONS] == 3600


def test_a_kept_session_refreshes_on_sqlite_too(tmp_path, redis_url):
    """The embedded default: the same migration, refresh and reuse rule on SQLite."""
    from app.web import create_app

    url = f"sqlite:///{tmp_path}/sessions.db"
    upgrade(url)
    settings = dataclasses.replace(
        make_settings(tmp_path, url), redis_url="", broker_url="filesystem://"
    )
    app = create_app(settings)
    try:
        with app.test_client() as client:
            email, password = f"kept-{uuid.uuid4().hex[:8]}@example.com", "ten chars ok"
            client.post("/api/v1/users/register", json={"email": email, "password": password})
            login = client.post(
                "/api/v1/users/login",
                json={"email": email, "password": password, "remember": True},
            )
            first = login.headers["set-cookie"].split(";")[0]
            refreshed = client.post(
                "/api/v1/users/session/refresh", json={}, headers={"Cookie": first}
            )
            assert refreshed.status_code == 200, refreshed.text
            second = refreshed.headers["set-cookie"].split(";")[0]
            third = client.post(
                "/api/v1/users/session/refresh", json={}, headers={"Cookie": second}
            )
            assert third.status_code == 200, third.text
            reused = client.post(
                "/api/v1/users/session/refresh", json={}, headers={"Cookie": first}
            )
            assert_problem(reused, 401)
            bearer = {"Authorization": f"Bearer {third.json()['access_token']}"}
            assert_problem(client.get("/api/v1/users/me", headers=bearer), 401)
    finally:
        runtime(app).sessions.kw["bind"].dispose()
