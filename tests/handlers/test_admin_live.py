"""Administration against a live server whose requests commit: disabling takes effect at
once for requests already holding a token, a grant or a link, and two registrations racing
for one invitation end with one account."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import delete, func, select, update

from app.db import make_session_factory
from app.models import User
from tests.handlers.conftest import LiveServer, serve_live
from tests.helpers import (
    PASSWORD,
    Account,
    assert_problem,
    committed_account,
    new_email,
    run_jobs,
    wait_until,
)

A = "/api/v1/admin"
pytestmark = pytest.mark.slow  # a live server of its own (serve_live)


@pytest.fixture(scope="module")
def invite_server(engine, local_settings) -> Iterator[LiveServer]:
    with serve_live(engine, dataclasses.replace(local_settings, signup="invite")) as server:
        yield server


@pytest.fixture
def site(invite_server, engine, local_settings) -> Iterator[tuple[httpx.Client, list[str]]]:
    made: list[str] = []
    with httpx.Client(base_url=invite_server.url, timeout=30) as http:
        yield http, made
    with make_session_factory(engine)() as session:
        session.execute(delete(User).where(User.email.in_(made)))
        session.commit()


def _account(engine, local_settings, made: list[str], role: str = "user") -> Account:
    account = committed_account(make_session_factory(engine), local_settings)
    made.append(account.email)
    with make_session_factory(engine)() as session:
        session.execute(update(User).where(User.email == account.email).values(role=role))
        session.commit()
    return account


def test_disabling_ends_a_live_accounts_token_grant_and_link_and_refuses_its_login(
    site, invite_server, engine, local_settings
):
    http, made = site
    admin = _account(engine, local_settings, made, "admin")
    person = _account(engine, local_settings, made)
    uploaded = http.post(
        "/api/v1/upload_files",
        headers=person.headers,
        files={"file": ("live.txt", b"live bytes", "text/plain")},
    )
    assert uploaded.status_code == 202, uploaded.text
    run_jobs(invite_server.app)
    file_id = uploaded.json()["id"]
    link = http.post(f"/api/v1/files/{file_id}/shares", headers=person.headers, json={})
    link_path = "/s/" + link.json()["url"].split("/s/", 1)[1]
    grant = http.post(f"/api/v1/files/{file_id}/download-grants", headers=person.headers, json={})
    grant_path = "/api/" + grant.json()["url"].split("/api/", 1)[1]
    assert http.get(grant_path).status_code == 200
    assert http.get(f"{link_path}/content").status_code == 200
    assert http.get("/api/v1/files", headers=person.headers).status_code == 200

    off = http.patch(f"{A}/users/{person.id}", headers=admin.headers, json={"disabled": True})
    assert off.status_code == 200, off.text

    told = assert_problem(http.get("/api/v1/files", headers=person.headers), 401)
    assert told["detail"] == "This account is disabled; ask an administrator."
    assert assert_problem(http.get(grant_path), 410)["reason"] == "revoked"
    assert assert_problem(http.get(f"{link_path}/content"), 410)["reason"] == "revoked"
    login = http.post("/api/v1/users/login", json={"email": person.email, "password": PASSWORD})
    assert assert_problem(login, 403)["detail"] == "This account is disabled; ask an administrator."

    http.patch(f"{A}/users/{person.id}", headers=admin.headers, json={"disabled": False})
    assert http.get(f"{link_path}/content").status_code == 200


def test_two_registrations_with_one_invitation_make_one_account(site, engine, local_settings):
    http, made = site
    admin = _account(engine, local_settings, made, "admin")
    token = http.post(f"{A}/invitations", headers=admin.headers, json={}).json()["token"]
    emails = [new_email() for _ in range(2)]
    made += emails
    results: list[int] = []
    start = threading.Barrier(2)

    def register(email: str) -> None:
        with httpx.Client(base_url=str(http.base_url), timeout=30) as own:
            start.wait()
            body = {"email": email, "password": PASSWORD, "invitation": token}
            results.append(own.post("/api/v1/users/register", json=body).status_code)

    threads = [threading.Thread(target=register, args=(e,)) for e in emails]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [201, 403]
    with make_session_factory(engine)() as session:
        count = session.scalar(select(func.count()).select_from(User).where(User.email.in_(emails)))
    assert count == 1


def test_last_seen_moves_with_requests_at_most_once_a_minute(site, engine, local_settings):
    http, made = site
    person = _account(engine, local_settings, made)

    def seen():
        with make_session_factory(engine)() as session:
            return session.scalar(select(User.last_seen_at).where(User.id == uuid.UUID(person.id)))

    assert seen() is None
    assert http.get("/api/v1/users/me", headers=person.headers).status_code == 200
    wait_until(lambda: seen() is not None, 10, what="last_seen_at written after the answer")
    first = seen()
    assert http.get("/api/v1/files", headers=person.headers).status_code == 200
    time.sleep(0.3)
    assert seen() == first  # within the minute: no second write
    # A login moves it too (after its answer), whatever this process remembers.
    with make_session_factory(engine)() as session:
        session.execute(update(User).where(User.email == person.email).values(last_seen_at=None))
        session.commit()
    login = {"email": person.email, "password": PASSWORD}
    assert http.post("/api/v1/users/login", json=login).status_code == 200
    wait_until(lambda: seen() is not None, 10, what="last_seen_at written after the login")
