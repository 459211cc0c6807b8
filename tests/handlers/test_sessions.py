"""Sessions end: logout revokes its token, a password change every earlier one."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import uuid

import pytest
import sqlalchemy as sa
import yaml

from app.db import utcnow
from app.migrate import upgrade
from app.models import RevokedToken
from app.settings import Settings
from tests.helpers import ROOT, Account, assert_problem, make_settings, runtime, upload

LOGIN = "/api/v1/users/login"
LOGOUT = "/api/v1/users/logout"
PASSWORD = "/api/v1/users/me/password"
ME = "/api/v1/users/me"
NEW_PASSWORD = "a brand new passphrase"


def _login(client, account: Account, password: str | None = None, **kwargs) -> dict[str, str]:
    response = client.post(
        LOGIN, json={"email": account.email, "password": password or account.password}, **kwargs
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _change(client, headers, current: str, new: str = NEW_PASSWORD):
    return client.post(
        PASSWORD, headers=headers, json={"current_password": current, "new_password": new}
    )


def test_logout_ends_the_presented_session_and_no_other(local_client, make_account):
    account = make_account()
    laptop, phone = _login(local_client, account), _login(local_client, account)
    response = local_client.post(LOGOUT, headers=laptop)
    assert response.status_code == 204, response.text
    assert response.content == b""
    body = assert_problem(local_client.get(ME, headers=laptop), 401)
    assert "ended" in body["detail"]
    assert_problem(local_client.get("/api/v1/files", headers=laptop), 401)
    assert_problem(local_client.post(LOGOUT, headers=laptop), 401)  # it is over already
    assert local_client.get(ME, headers=phone).status_code == 200


def test_logout_needs_a_token(local_client):
    assert_problem(local_client.post(LOGOUT), 401)


def test_a_password_change_ends_every_earlier_session(local_client, local_settings, make_account):
    account = make_account()
    laptop, phone = _login(local_client, account), _login(local_client, account)
    response = _change(local_client, laptop, account.password)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    token = response.json()
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == local_settings.token_ttl_seconds
    fresh = {"Authorization": f"Bearer {token['access_token']}"}
    for ended in (laptop, phone, account.headers):
        body = assert_problem(local_client.get(ME, headers=ended), 401)
        assert "password was changed" in body["detail"]
    assert local_client.get(ME, headers=fresh).status_code == 200
    assert_problem(
        local_client.post(LOGIN, json={"email": account.email, "password": account.password}),
        401,
    )
    later = _login(local_client, account, NEW_PASSWORD)
    assert local_client.get(ME, headers=later).status_code == 200
    assert local_client.get(ME, headers=fresh).status_code == 200


def test_a_wrong_current_password_changes_nothing(local_client, make_account):
    account = make_account()
    body = assert_problem(_change(local_client, account.headers, "not the password at all"), 403)
    assert body["detail"] == "The current password is wrong."
    assert body["type"] == "/problems/forbidden"
    assert local_client.get(ME, headers=account.headers).status_code == 200
    _login(local_client, account)


def test_the_new_password_follows_the_rules_and_is_never_repeated(local_client, make_account):
    account = make_account()
    response = _change(local_client, account.headers, account.password, "Secr3tPW")
    assert assert_problem(response, 400)["detail"] == (
        "The new password must be at least 10 characters long."
    )
    assert "Secr3tPW" not in response.text
    assert local_client.get(ME, headers=account.headers).status_code == 200


def test_guessing_the_current_password_with_a_stolen_token_is_throttled(
    local_app, local_settings, make_account
):
    account = make_account()
    with local_app.test_client(client=("192.0.2.77", 40000)) as thief:
        for _ in range(local_settings.login_max_failures):
            assert_problem(_change(thief, account.headers, "a guess, not it"), 403)
        assert_problem(_change(thief, account.headers, account.password), 429)
    with local_app.test_client(client=("192.0.2.78", 40000)) as owner:
        assert _change(owner, account.headers, account.password).status_code == 200


def test_logout_removes_the_rows_of_tokens_that_expired(local_client, session, make_account):
    stale = RevokedToken(jti=uuid.uuid4().hex, expires_at=utcnow() - dt.timedelta(seconds=1))
    live = RevokedToken(jti=uuid.uuid4().hex, expires_at=utcnow() + dt.timedelta(hours=1))
    session.add_all([stale, live])
    session.commit()
    assert local_client.post(LOGOUT, headers=make_account().headers).status_code == 204
    left = set(session.scalars(sa.select(RevokedToken.jti)))
    assert stale.jti not in left
    assert live.jti in left


def _statements_of(connection, request) -> list[str]:
    """The SQL statements (savepoints aside) sent on `connection` while `request()` runs."""
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        if not statement.startswith(("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO")):
            statements.append(statement)

    sa.event.listen(connection, "before_cursor_execute", record)
    try:
        request()
    finally:
        sa.event.remove(connection, "before_cursor_execute", record)
    return statements


@pytest.mark.parametrize("how", ["logout", "password change"])
def test_the_files_page_checks_the_session_in_its_one_statement(
    local_client, session, make_account, how
):
    account = make_account()
    headers = _login(local_client, account)
    for name in ("a.txt", "b.txt"):
        assert upload(local_client, account, filename=name).status_code == 202
    pages = []
    statements = _statements_of(
        session.connection(),
        lambda: pages.append(local_client.get("/api/v1/files?limit=1", headers=headers)),
    )
    assert pages[0].status_code == 200, pages[0].text
    assert len(pages[0].json()["items"]) == 1 and pages[0].json()["total"] == 2
    assert len(statements) == 1, statements  # the session check rides in the page's statement
    cursor = pages[0].json()["next_cursor"]
    if how == "logout":
        assert local_client.post(LOGOUT, headers=headers).status_code == 204
    else:
        assert _change(local_client, account.headers, account.password).status_code == 200
    # A page with files, an empty one (no match) and a bad cursor: each refuses the session.
    for query in (f"limit=1&cursor={cursor}", "status=failed", "cursor=not-a-cursor"):
        response = local_client.get(f"/api/v1/files?{query}", headers=headers)
        assert "ended" in assert_problem(response, 401)["detail"], query


# Every operation that takes a token refuses an ended one: each row is a request that gets
# past validation, so only the token can stop it.
FILE_ID = str(uuid.uuid4())
TUS = {"Tus-Resumable": "1.0.0"}
REQUESTS = {
    "app.handlers.users.me": ("GET", ME, {}),
    "app.handlers.users.logout": ("POST", LOGOUT, {}),
    "app.handlers.users.change_password": (
        "POST",
        PASSWORD,
        {"json": {"current_password": "whatever it is", "new_password": NEW_PASSWORD}},
    ),
    "app.handlers.sessions.list_sessions": ("GET", f"{ME}/sessions", {}),
    "app.handlers.sessions.end_others": ("DELETE", f"{ME}/sessions", {}),
    "app.handlers.sessions.end": ("DELETE", f"{ME}/sessions/{FILE_ID}", {}),
    "app.handlers.files.upload_multipart": (
        "POST",
        "/api/v1/upload_files",
        {"files": {"file": ("a.txt", b"abc", "text/plain")}},
    ),
    "app.handlers.api_tokens.list_tokens": ("GET", "/api/v1/users/me/tokens", {}),
    "app.handlers.api_tokens.create": (
        "POST",
        "/api/v1/users/me/tokens",
        {"json": {"name": "t", "scopes": ["read"]}},
    ),
    "app.handlers.api_tokens.revoke": ("DELETE", f"/api/v1/users/me/tokens/{FILE_ID}", {}),
    "app.handlers.files.list_files": ("GET", "/api/v1/files", {}),
    "app.handlers.files.get_file": ("GET", f"/api/v1/files/{FILE_ID}", {}),
    "app.handlers.inline.preview": ("GET", f"/api/v1/files/{FILE_ID}/preview", {}),
    "app.handlers.files.rename": ("PATCH", f"/api/v1/files/{FILE_ID}", {"json": {"name": "b"}}),
    "app.handlers.files.delete": ("DELETE", f"/api/v1/files/{FILE_ID}", {}),
    "app.handlers.files.download_head": ("HEAD", f"/api/v1/files/{FILE_ID}/content", {}),
    "app.handlers.files.download": ("GET", f"/api/v1/files/{FILE_ID}/content", {}),
    "app.handlers.folders.create": ("POST", "/api/v1/folders", {"json": {"name": "f"}}),
    "app.handlers.folders.make_path": ("POST", "/api/v1/folder-paths", {"json": {"path": "a/b"}}),
    "app.handlers.folders.get_folder": ("GET", f"/api/v1/folders/{FILE_ID}", {}),
    "app.handlers.folders.update": (
        "PATCH",
        f"/api/v1/folders/{FILE_ID}",
        {"json": {"name": "g"}},
    ),
    "app.handlers.folders.delete": ("DELETE", f"/api/v1/folders/{FILE_ID}", {}),
    "app.handlers.folders.list_entries": ("GET", "/api/v1/entries", {}),
    "app.handlers.shares.create": ("POST", f"/api/v1/files/{FILE_ID}/shares", {"json": {}}),
    "app.handlers.shares.list_for_file": ("GET", f"/api/v1/files/{FILE_ID}/shares", {}),
    "app.handlers.shares.list_all": ("GET", "/api/v1/shares", {}),
    "app.handlers.shares.create_link": (
        "POST",
        "/api/v1/shares",
        {"json": {"items": [{"kind": "file", "id": FILE_ID}]}},
    ),
    "app.handlers.shares.revoke": ("DELETE", f"/api/v1/shares/{FILE_ID}", {}),
    "app.handlers.downloads.create": (
        "POST",
        f"/api/v1/files/{FILE_ID}/download-grants",
        {"json": {}},
    ),
    "app.handlers.downloads.create_for_selection": (
        "POST",
        "/api/v1/download-grants",
        {"json": {"items": [{"kind": "folder", "id": FILE_ID}]}},
    ),
    "app.handlers.resumable_uploads.create": (
        "POST",
        "/api/v1/uploads",
        {
            "headers": {
                **TUS,
                "Upload-Length": "3",
                "Upload-Metadata": f"filename {base64.b64encode(b'c.txt').decode()}",
            }
        },
    ),
    "app.handlers.resumable_uploads.list_uploads": ("GET", "/api/v1/uploads", {}),
    "app.handlers.resumable_uploads.head": ("HEAD", f"/api/v1/uploads/{FILE_ID}", {"headers": TUS}),
    "app.handlers.resumable_uploads.patch": (
        "PATCH",
        f"/api/v1/uploads/{FILE_ID}",
        {
            "headers": {
                **TUS,
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
            },
            "content": b"abc",
        },
    ),
    "app.handlers.resumable_uploads.terminate": (
        "DELETE",
        f"/api/v1/uploads/{FILE_ID}",
        {"headers": TUS},
    ),
    "app.handlers.direct_uploads.offer": ("GET", "/api/v1/direct-uploads", {}),
    "app.handlers.direct_uploads.start": (
        "POST",
        "/api/v1/direct-uploads",
        {"json": {"name": "c.txt", "size": 3}},
    ),
    "app.handlers.direct_uploads.complete": (
        "POST",
        f"/api/v1/direct-uploads/{FILE_ID}/complete",
        {"json": {"crc32": "00000000"}},
    ),
    "app.handlers.direct_uploads.cancel": (
        "POST",
        f"/api/v1/direct-uploads/{FILE_ID}/cancel",
        {"json": {}},
    ),
}


def _operations_with_a_token() -> set[str]:
    spec = yaml.safe_load((ROOT / "swagger" / "openapi.yaml").read_text())
    return {
        operation["operationId"]
        for path in spec["paths"].values()
        for method, operation in path.items()
        if isinstance(operation, dict)
        and "operationId" in operation
        and operation.get("security", spec["security"])
    }


def test_every_operation_with_a_token_is_in_the_table():
    assert set(REQUESTS) == _operations_with_a_token()


@pytest.mark.parametrize("operation", sorted(REQUESTS))
@pytest.mark.parametrize("how", ["logout", "password change"])
def test_an_ended_session_is_refused_by_every_operation(local_client, make_account, operation, how):
    account = make_account()
    method, url, kwargs = REQUESTS[operation]
    headers = _login(local_client, account)
    kwargs = {**kwargs, "headers": {**kwargs.get("headers", {}), **headers}}
    if how == "logout":
        assert local_client.post(LOGOUT, headers=headers).status_code == 204
    else:
        assert _change(local_client, account.headers, account.password).status_code == 200
    response = local_client.request(method, url, **kwargs)
    assert response.status_code == 401, response.text
    if method != "HEAD":
        assert "ended" in assert_problem(response, 401)["detail"]  # not for another reason


def test_sessions_end_on_sqlite_too(tmp_path, redis_url):
    """The embedded default: the same migration, query and update on SQLite."""
    from app.web import create_app

    url = f"sqlite:///{tmp_path}/sessions.db"
    upgrade(url)
    settings: Settings = dataclasses.replace(
        make_settings(tmp_path, url), redis_url="", broker_url="filesystem://"
    )
    app = create_app(settings)
    try:
        with app.test_client() as client:
            email = f"sqlite-{uuid.uuid4().hex[:8]}@example.com"
            created = client.post(
                "/api/v1/users/register", json={"email": email, "password": "ten chars ok"}
            )
            assert created.status_code == 201, created.text
            account = Account(created.json()["id"], email, "", "ten chars ok")
            first, second = _login(client, account), _login(client, account)
            assert client.post(LOGOUT, headers=first).status_code == 204
            assert_problem(client.get(ME, headers=first), 401)
            changed = _change(client, second, "ten chars ok")
            assert changed.status_code == 200, changed.text
            assert_problem(client.get(ME, headers=second), 401)
            fresh = {"Authorization": f"Bearer {changed.json()['access_token']}"}
            assert client.get(ME, headers=fresh).status_code == 200
            # The files page asks in its own statement, empty or not.
            assert_problem(client.get("/api/v1/files", headers=first), 401)
            assert client.get("/api/v1/files", headers=fresh).json()["total"] == 0
            added = client.post(
                "/api/v1/upload_files", headers=fresh, files={"file": ("a.txt", b"abc")}
            )
            assert added.status_code == 202, added.text
            assert_problem(client.get("/api/v1/files", headers=second), 401)
            assert client.get("/api/v1/files", headers=fresh).json()["total"] == 1
    finally:
        runtime(app).sessions.kw["bind"].dispose()
