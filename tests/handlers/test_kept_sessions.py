"""Sessions people keep: "Keep me signed in" (a rotated refresh cookie), "Your sessions"
and ending them, on the app in process and on a live server of two processes."""

from __future__ import annotations

import datetime as dt
import re
import uuid

import httpx
import pytest
import sqlalchemy as sa

from app.db import utcnow
from app.models import SignedInSession, User
from app.services import sessions, tokens
from tests.helpers import Account, assert_problem, new_email, start_server, upload_ready

LOGIN = "/api/v1/users/login"
LOGOUT = "/api/v1/users/logout"
REFRESH = "/api/v1/users/session/refresh"
ME = "/api/v1/users/me"
SESSIONS = "/api/v1/users/me/sessions"
CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
COOKIE = re.compile(
    r"instashare_refresh=([A-Za-z0-9_-]{48}); Max-Age=(\d+); "
    r"Path=/api/v1/users/session; HttpOnly; Secure; SameSite=Strict"
)


def _login(client, account: Account, *, remember=False, agent=CHROME) -> httpx.Response:
    body = {"email": account.email, "password": account.password, "remember": remember}
    response = client.post(LOGIN, json=body, headers={"User-Agent": agent})
    assert response.status_code == 200, response.text
    return response


def _bearer(response: httpx.Response) -> dict[str, str]:
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _cookie(response: httpx.Response) -> str:
    """The refresh token a response sets, its cookie's attributes checked exactly."""
    found = COOKIE.fullmatch(response.headers["set-cookie"])
    assert found, response.headers["set-cookie"]
    return found.group(1)


def _refresh(client, token: str | None, **kwargs) -> httpx.Response:
    headers = {"Cookie": f"instashare_refresh={token}"} if token else {}
    kwargs.setdefault("json", {})
    return client.post(REFRESH, headers=headers, **kwargs)


@pytest.fixture
def row_of(session, local_settings):
    """The session row of the access token a response carries (read afresh)."""

    def row(response: httpx.Response) -> SignedInSession:
        claims = tokens.verify(local_settings, response.json()["access_token"])
        session.expire_all()
        found = session.get(SignedInSession, claims.session_id)
        assert found is not None
        return found

    return row


@pytest.fixture
def person(local_client, make_account) -> Account:
    """An account whose password is known (registered over HTTP)."""
    email, password = new_email(), "correct horse battery"
    created = local_client.post(
        "/api/v1/users/register", json={"email": email, "password": password}
    )
    assert created.status_code == 201, created.text
    return Account(created.json()["id"], email, "", password)


# --- "Keep me signed in" --------------------------------------------------------------


def test_keep_me_signed_in_sets_the_refresh_cookie_and_a_plain_login_does_not(
    local_client, local_settings, person
):
    kept = _login(local_client, person, remember=True)
    token = _cookie(kept)
    assert COOKIE.fullmatch(kept.headers["set-cookie"]).group(2) == str(  # type: ignore[union-attr]
        local_settings.session_days * 86400
    )
    assert kept.headers["cache-control"] == "no-store"
    assert token not in kept.text  # the refresh token is in the cookie only
    plain = _login(local_client, person)
    assert "set-cookie" not in plain.headers
    assert local_client.get(ME, headers=_bearer(plain)).status_code == 200


def test_a_refresh_rotates_the_cookie_and_answers_a_working_token(local_client, row_of, person):
    first = _cookie(_login(local_client, person, remember=True))
    refreshed = _refresh(local_client, first)
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.headers["cache-control"] == "no-store"
    second = _cookie(refreshed)
    assert second != first
    assert local_client.get(ME, headers=_bearer(refreshed)).status_code == 200
    # Tabs that open at once send the same cookie: the spent one is answered, for a few
    # seconds, with the current one (not a third), and the session goes on.
    again = _refresh(local_client, first)
    assert again.status_code == 200, again.text
    assert _cookie(again) == second
    third = _cookie(_refresh(local_client, second))
    assert third not in (first, second)
    assert row_of(refreshed).refresh_counter == 2


def test_a_spent_refresh_token_used_again_ends_the_whole_session(
    local_client, session, row_of, person
):
    login = _login(local_client, person, remember=True)
    stolen = _cookie(login)
    refreshed = _refresh(local_client, stolen)
    current = _cookie(refreshed)
    row = row_of(refreshed)
    row.refreshed_at = utcnow() - sessions.REUSE_GRACE - dt.timedelta(seconds=1)
    session.commit()
    reused = _refresh(local_client, stolen)
    assert "used from somewhere else" in assert_problem(reused, 401)["detail"]
    # Whoever holds the newer token is out too, and so is every access token of it.
    assert_problem(_refresh(local_client, current), 401)
    for token in (login, refreshed):
        assert (
            "ended" in assert_problem(local_client.get(ME, headers=_bearer(token)), 401)["detail"]
        )
        assert_problem(local_client.get("/api/v1/files", headers=_bearer(token)), 401)


def test_two_back_is_reuse_even_within_the_grace(local_client, person):
    first = _cookie(_login(local_client, person, remember=True))
    second = _cookie(_refresh(local_client, first))
    _cookie(_refresh(local_client, second))
    assert_problem(_refresh(local_client, first), 401)


def test_a_password_change_refuses_the_refresh_of_every_other_session(local_client, person):
    laptop = _login(local_client, person, remember=True)
    phone = _login(local_client, person, remember=True, agent=FIREFOX)
    changed = local_client.post(
        "/api/v1/users/me/password",
        headers=_bearer(laptop),
        json={"current_password": person.password, "new_password": "a brand new passphrase"},
    )
    assert changed.status_code == 200, changed.text
    assert "set-cookie" not in changed.headers  # the laptop's cookie goes on as it was
    body = assert_problem(_refresh(local_client, _cookie(phone)), 401)
    assert "password was changed" in body["detail"]
    assert local_client.get(ME, headers=_bearer(changed)).status_code == 200
    kept = _refresh(local_client, _cookie(laptop))
    assert kept.status_code == 200, kept.text
    assert local_client.get(ME, headers=_bearer(kept)).status_code == 200


def test_a_moved_token_generation_refuses_the_refresh(local_client, session, person):
    """What an administrator's disabling does (it moves the generation on, as a password
    change does): the kept session ends with it."""
    token = _cookie(_login(local_client, person, remember=True))
    session.execute(
        sa.update(User)
        .where(User.id == uuid.UUID(person.id))
        .values(token_generation=User.token_generation + 1)
    )
    session.commit()
    assert_problem(_refresh(local_client, token), 401)


def test_the_refresh_takes_only_json_and_a_cookie_of_ours(local_client, person):
    token = _cookie(_login(local_client, person, remember=True))
    # A form another site could post: refused before the cookie is read.
    form_headers = {
        "Cookie": f"instashare_refresh={token}",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    form = local_client.post(REFRESH, headers=form_headers, content=b"a=b")
    assert_problem(form, 415)
    assert "not signed in" in assert_problem(_refresh(local_client, None), 401)["detail"]
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BA")
    assert_problem(_refresh(local_client, forged), 401)
    assert_problem(_refresh(local_client, "not-a-token"), 401)
    assert _refresh(local_client, token).status_code == 200  # still the current one


def test_a_plain_session_has_no_refresh(local_client, local_settings, row_of, person):
    plain = _login(local_client, person)
    made = sessions._refresh_token(local_settings, row_of(plain).id, 0)
    assert_problem(_refresh(local_client, made), 401)


def test_logout_ends_the_kept_session_and_clears_its_cookie(local_client, person):
    login = _login(local_client, person, remember=True)
    token = _cookie(login)
    out = local_client.post(LOGOUT, headers=_bearer(login))
    assert out.status_code == 204
    assert out.headers["set-cookie"] == (
        "instashare_refresh=; Max-Age=0; Path=/api/v1/users/session; HttpOnly; Secure; "
        "SameSite=Strict"
    )
    assert_problem(_refresh(local_client, token), 401)


# --- "Your sessions" ------------------------------------------------------------------


def test_your_sessions_lists_each_device_and_ends_one_at_once(local_client, session, person):
    laptop = _login(local_client, person, remember=True)
    phone = _login(local_client, person, agent=FIREFOX)
    cli = _login(local_client, person, agent="instashare-cli/1.0.0")
    listed = local_client.get(SESSIONS, headers=_bearer(laptop))
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert [(i["device"], i["kind"], i["current"]) for i in items] == [
        ("Instashare CLI", "cli", False),
        ("Firefox on Windows", "plain", False),
        ("Chrome on Linux", "kept", True),
    ]
    assert {i["address"] for i in items} == {"testclient"}
    phone_id = items[1]["id"]
    assert local_client.delete(f"{SESSIONS}/{phone_id}", headers=_bearer(laptop)).status_code == 204
    body = assert_problem(local_client.get(ME, headers=_bearer(phone)), 401)
    assert "ended" in body["detail"]
    assert_problem(local_client.get("/api/v1/files", headers=_bearer(phone)), 401)
    assert local_client.get(ME, headers=_bearer(cli)).status_code == 200
    left = local_client.get(SESSIONS, headers=_bearer(laptop)).json()["items"]
    assert phone_id not in {i["id"] for i in left} and len(left) == 2
    again = local_client.delete(f"{SESSIONS}/{phone_id}", headers=_bearer(laptop))
    assert "may have ended" in assert_problem(again, 404)["detail"]


def test_ending_this_sessions_own_row_signs_it_out_and_clears_its_cookie(local_client, person):
    login = _login(local_client, person, remember=True)
    mine = local_client.get(SESSIONS, headers=_bearer(login)).json()["items"][0]
    assert mine["current"]
    ended = local_client.delete(f"{SESSIONS}/{mine['id']}", headers=_bearer(login))
    assert ended.status_code == 204
    assert ended.headers["set-cookie"].startswith("instashare_refresh=; Max-Age=0; ")
    assert_problem(local_client.get(ME, headers=_bearer(login)), 401)
    assert_problem(_refresh(local_client, _cookie(login)), 401)


def test_ending_the_kept_session_from_elsewhere_refuses_its_refresh(local_client, person):
    laptop = _login(local_client, person, remember=True)
    phone = _login(local_client, person, agent=FIREFOX)
    mine = local_client.get(SESSIONS, headers=_bearer(phone)).json()["items"]
    laptop_id = next(i["id"] for i in mine if not i["current"])
    assert local_client.delete(f"{SESSIONS}/{laptop_id}", headers=_bearer(phone)).status_code == 204
    assert_problem(_refresh(local_client, _cookie(laptop)), 401)


def test_ending_a_session_ends_the_download_grants_its_tokens_made(local_client, local_app, person):
    laptop = _login(local_client, person, remember=True)
    phone = _login(local_client, person, agent=FIREFOX)
    owner = Account(person.id, person.email, laptop.json()["access_token"], person.password)
    file_id = upload_ready(local_client, local_app, owner, b"some bytes", "a.txt")
    grants = {
        made: local_client.post(
            path, headers=_bearer(made_by), json=body
        ).json()["url"].split("testserver", 1)[1]
        for made, made_by, path, body in (
            ("file", laptop, f"/api/v1/files/{file_id}/download-grants", {}),
            ("selection", laptop, "/api/v1/download-grants",
             {"items": [{"kind": "file", "id": file_id}]}),
            ("phone's", phone, f"/api/v1/files/{file_id}/download-grants", {}),
        )
    }  # fmt: skip
    assert all(local_client.get(path).status_code == 200 for path in grants.values())
    # The laptop's session ends from the phone's "Your sessions": the grants it made go too.
    listed = local_client.get(SESSIONS, headers=_bearer(phone)).json()["items"]
    laptop_id = next(i["id"] for i in listed if not i["current"])
    assert local_client.delete(f"{SESSIONS}/{laptop_id}", headers=_bearer(phone)).status_code == 204
    for made in ("file", "selection"):
        assert assert_problem(local_client.get(grants[made]), 410)["reason"] == "revoked"
    assert local_client.get(grants["phone's"]).status_code == 200


def test_nobody_ends_or_sees_anothers_sessions(local_client, person, make_account):
    mine = _login(local_client, person)
    theirs = make_account()
    assert local_client.get(SESSIONS, headers=theirs.headers).json()["items"] == []
    my_id = local_client.get(SESSIONS, headers=_bearer(mine)).json()["items"][0]["id"]
    assert_problem(local_client.delete(f"{SESSIONS}/{my_id}", headers=theirs.headers), 404)
    assert local_client.get(ME, headers=_bearer(mine)).status_code == 200


def test_sign_out_everywhere_else(local_client, person):
    here = _login(local_client, person)
    others = [_login(local_client, person, remember=True) for _ in range(3)]
    ended = local_client.delete(SESSIONS, headers=_bearer(here))
    assert ended.status_code == 200 and ended.json() == {"ended": 3}
    for other in others:
        assert_problem(local_client.get(ME, headers=_bearer(other)), 401)
        assert_problem(_refresh(local_client, _cookie(other)), 401)
    assert local_client.get(ME, headers=_bearer(here)).status_code == 200
    assert len(local_client.get(SESSIONS, headers=_bearer(here)).json()["items"]) == 1


def test_your_sessions_come_a_page_at_a_time(local_client, person):
    tokens = [_login(local_client, person) for _ in range(5)]
    seen, cursor = [], None
    while True:
        query = f"?limit=2&cursor={cursor}" if cursor else "?limit=2"
        page = local_client.get(SESSIONS + query, headers=_bearer(tokens[0])).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 5
    bad = local_client.get(SESSIONS + "?cursor=nonsense", headers=_bearer(tokens[0]))
    assert "cursor is not valid" in assert_problem(bad, 400)["detail"]


def test_the_last_use_is_written_at_most_once_a_minute(local_client, session, row_of, person):
    login = _login(local_client, person)
    row = row_of(login)
    started = row.last_used_at
    for path in (ME, "/api/v1/files", "/api/v1/entries"):
        assert local_client.get(path, headers=_bearer(login)).status_code == 200
    assert row_of(login).last_used_at == started  # not within the minute
    for path in (ME, "/api/v1/files", "/api/v1/entries"):
        row = row_of(login)
        row.last_used_at = before = utcnow() - dt.timedelta(minutes=2)
        session.commit()
        assert local_client.get(path, headers=_bearer(login)).status_code == 200
        assert row_of(login).last_used_at > before + dt.timedelta(minutes=1), path


def test_the_files_page_still_checks_the_session_in_its_one_statement(
    local_client, session, person
):
    login = _login(local_client, person)
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        if not statement.startswith(("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO")):
            statements.append(statement)

    connection = session.connection()
    sa.event.listen(connection, "before_cursor_execute", record)
    try:
        page = local_client.get("/api/v1/files?status=ready", headers=_bearer(login))
    finally:
        sa.event.remove(connection, "before_cursor_execute", record)
    assert page.status_code == 200, page.text
    # What the page reads (the account's last-seen time may be written after it): an empty
    # page is the page and its counter, and both ask about the session themselves.
    reads = [s for s in statements if s.startswith("SELECT")]
    assert len(reads) <= 2, reads
    assert all("sessions" in s for s in reads)


# --- on a live server -------------------------------------------------------------------


@pytest.mark.slow  # `instashare-server serve --workers 2`
def test_an_ended_session_is_refused_by_every_process_of_a_live_server(
    local_settings, engine, tmp_path
):
    log = (tmp_path / "server.log").open("wb")
    process, base = start_server(local_settings, workers=2, log=log)
    email, password = new_email(), "correct horse battery"
    try:
        with httpx.Client(base_url=base, timeout=30) as http:
            assert http.post(
                "/api/v1/users/register", json={"email": email, "password": password}
            ).status_code == 201  # fmt: skip
            body = {"email": email, "password": password, "remember": True}
            laptop = http.post(LOGIN, json=body, headers={"User-Agent": CHROME})
            phone = http.post(LOGIN, json={"email": email, "password": password})
            # Many requests: both processes answer some of them, and all are fine.
            for _ in range(10):
                assert http.get("/api/v1/files", headers=_bearer(laptop)).status_code == 200
            listed = http.get(SESSIONS, headers=_bearer(phone)).json()["items"]
            laptop_id = next(i["id"] for i in listed if not i["current"])
            ended = http.delete(f"{SESSIONS}/{laptop_id}", headers=_bearer(phone))
            assert ended.status_code == 204
            for _ in range(10):  # from the next request on, on whichever process
                for path in (ME, "/api/v1/files"):
                    assert http.get(path, headers=_bearer(laptop)).status_code == 401
            assert _refresh(http, _cookie(laptop)).status_code == 401
            assert http.get(ME, headers=_bearer(phone)).status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
        with engine.begin() as connection:
            connection.execute(sa.delete(User).where(User.email == email))
