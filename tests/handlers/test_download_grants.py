"""Download grants: a short-lived URL that downloads one file with no header, for the owner's
files (/api/v1/files/{id}/download-grants) and for share links (/s/{token}/grants)."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import io
import os
import uuid
import zipfile
from urllib.parse import urljoin

import pytest
from sqlalchemy import select

from app.models import ShareDownload
from app.services import grants, shares
from tests.helpers import (
    Account,
    assert_problem,
    runtime,
    started_download,
    upload,
    upload_ready,
    wait_until,
)

CONTENT = os.urandom(300_000)  # incompressible: the ZIP is as large, ranges cross chunks
BASE = "http://testserver"


def _ready(client, app, account, content=CONTENT, filename="data.bin") -> str:
    return upload_ready(client, app, account, content, filename)


@pytest.fixture
def ready_file(local_client, local_app, alice) -> str:
    return _ready(local_client, local_app, alice)


def _grant(client, account, file_id, **body) -> dict:
    made = client.post(
        f"/api/v1/files/{file_id}/download-grants", headers=account.headers, json=body or None
    )
    assert made.status_code == 201, made.text
    return made.json()


def _path(url: str) -> str:
    assert url.startswith(BASE + "/api/v1/downloads/"), url
    return url[len(BASE) :]


def _share(client, account, file_id, **body) -> str:
    made = client.post(f"/api/v1/files/{file_id}/shares", headers=account.headers, json=body)
    assert made.status_code == 201, made.text
    return "/s/" + made.json()["url"].rsplit("/s/", 1)[1]


def _downloads(client, account) -> int:
    return client.get("/api/v1/shares", headers=account.headers).json()["items"][0]["downloads"]


# --- the owner's grants ------------------------------------------------------------------


def test_a_grant_downloads_the_file_with_no_header_and_resumes(local_client, alice, ready_file):
    made = local_client.post(
        f"/api/v1/files/{ready_file}/download-grants",
        headers=alice.headers,
        json={"format": "original"},
    )
    assert made.status_code == 201, made.text
    assert made.headers["Cache-Control"] == "no-store"
    grant = made.json()
    assert made.headers["Location"] == grant["url"]
    assert "?" not in grant["url"]
    lifetime = dt.datetime.fromisoformat(grant["expires_at"]) - dt.datetime.now(dt.UTC)
    assert dt.timedelta(seconds=290) < lifetime <= dt.timedelta(seconds=300)
    path = _path(grant["url"])

    whole = local_client.get(path)  # no Authorization header at all
    assert whole.status_code == 200 and whole.content == CONTENT
    assert whole.headers["Referrer-Policy"] == "no-referrer"
    assert whole.headers["X-Content-Type-Options"] == "nosniff"
    assert whole.headers["Cache-Control"] == "private, no-store"
    assert "data.bin" in whole.headers["Content-Disposition"]
    etag = whole.headers["ETag"]

    # A dropped download resumes where it stopped, byte for byte.
    first = local_client.get(path, headers={"Range": "bytes=0-99999"})
    assert first.status_code == 206 and first.content == CONTENT[:100_000]
    rest = local_client.get(path, headers={"Range": "bytes=100000-", "If-Range": etag})
    assert rest.status_code == 206
    assert first.content + rest.content == CONTENT
    stale = local_client.get(path, headers={"Range": "bytes=100000-", "If-Range": '"old"'})
    assert stale.status_code == 200 and stale.content == CONTENT  # changed: all of it
    assert local_client.get(path, headers={"If-None-Match": etag}).status_code == 304
    assert local_client.get(path, headers={"Range": f"bytes={len(CONTENT)}-"}).status_code == 416
    head = local_client.head(path)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Length"] == str(len(CONTENT))


def test_the_default_grant_is_the_zip_with_the_current_name(local_client, alice, ready_file):
    renamed = local_client.patch(
        f"/api/v1/files/{ready_file}", headers=alice.headers, json={"name": "final.bin"}
    )
    assert renamed.status_code == 200
    got = local_client.get(_path(_grant(local_client, alice, ready_file)["url"]))
    assert got.status_code == 200
    assert got.headers["Content-Type"] == "application/zip"
    assert "final.bin.zip" in got.headers["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(got.content)) as archive:
        assert archive.read("final.bin") == CONTENT


def test_only_the_owner_gets_a_grant(local_client, alice, bob, ready_file):
    url = f"/api/v1/files/{ready_file}/download-grants"
    assert_problem(local_client.post(url, headers=bob.headers, json={}), 404)
    assert_problem(local_client.post(url), 401)
    missing = f"/api/v1/files/{uuid.uuid4()}/download-grants"
    assert_problem(local_client.post(missing, headers=alice.headers), 404)
    bad = local_client.post(url, headers=alice.headers, json={"format": "gzip"})
    assert_problem(bad, 400)


def test_a_file_not_ready_yet_gets_no_grant(local_client, alice):
    pending = upload(local_client, alice, CONTENT, "later.bin").json()["id"]
    refused = local_client.post(
        f"/api/v1/files/{pending}/download-grants", headers=alice.headers, json={}
    )
    assert_problem(refused, 409)
    assert int(refused.headers["Retry-After"]) > 0


def test_an_expired_grant_is_gone(make_app, local_settings, alice):
    app = make_app(dataclasses.replace(local_settings, download_grant_seconds=1))
    with app.test_client() as client:
        file_id = _ready(client, app, alice)
        grant = _grant(client, alice, file_id)
        expires = dt.datetime.fromisoformat(grant["expires_at"])
        assert expires - dt.datetime.now(dt.UTC) <= dt.timedelta(seconds=1)
        path = _path(grant["url"])
        wait_until(lambda: dt.datetime.now(dt.UTC) >= expires, 5, what="the grant expiring")
        body = assert_problem(client.get(path), 410)
        assert body["reason"] == "expired"
        assert client.head(path).status_code == 410
        # A new grant downloads again.
        assert client.get(_path(_grant(client, alice, file_id)["url"])).content != b""


def test_a_grant_starts_downloads_until_its_expiry_and_no_later(local_settings):
    grant = grants.Grant("file", uuid.uuid4(), False, 1_000, 0, "jti")
    token = grants.encode(local_settings.secret_key, grant)
    assert grants.decode(local_settings.secret_key, token, now=999.5) == grant
    with pytest.raises(grants.Gone):
        grants.decode(local_settings.secret_key, token, now=1_000)


def test_tampered_and_foreign_grants_are_not_found(local_client, alice, ready_file, local_app):
    url = _grant(local_client, alice, ready_file)["url"]
    token = url.rsplit("/", 1)[1]
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[5] ^= 0x01  # a later expiry, under the old MAC
    longer = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    share_token = _share(local_client, alice, ready_file).rsplit("/", 1)[1]
    secret = runtime(local_app).settings.secret_key
    foreign = grants.encode("another secret", grants.decode(secret, token))
    spelled = token[:10] + "!" + token[10:]  # a stray character is not another spelling
    for candidate in (longer, token[:-2], token + "AA", share_token, foreign, "x", "a" * 500):
        assert_problem(local_client.get(f"/api/v1/downloads/{candidate}"), 404)
    assert_problem(local_client.get(f"/api/v1/downloads/{spelled}"), 404)
    assert local_client.get(_path(url)).status_code == 200


def test_logout_ends_the_grants_its_token_made(local_client, local_app):
    ada = Account.register(local_client)
    file_id = _ready(local_client, local_app, ada)
    path = _path(_grant(local_client, ada, file_id)["url"])
    assert local_client.get(path).status_code == 200
    assert local_client.post("/api/v1/users/logout", headers=ada.headers).status_code == 204
    assert assert_problem(local_client.get(path), 410)["reason"] == "revoked"


def test_a_password_change_ends_every_grant(local_client, local_app):
    ada = Account.register(local_client)
    file_id = _ready(local_client, local_app, ada)
    path = _path(_grant(local_client, ada, file_id)["url"])
    changed = local_client.post(
        "/api/v1/users/me/password",
        headers=ada.headers,
        json={"current_password": ada.password, "new_password": "a brand new password"},
    )
    assert changed.status_code == 200, changed.text
    assert assert_problem(local_client.get(path), 410)["reason"] == "revoked"
    fresh = {"Authorization": f"Bearer {changed.json()['access_token']}"}
    again = local_client.post(f"/api/v1/files/{file_id}/download-grants", headers=fresh, json={})
    assert local_client.get(_path(again.json()["url"])).status_code == 200


def test_a_deleted_file_takes_its_grants(local_client, alice, ready_file):
    path = _path(_grant(local_client, alice, ready_file)["url"])
    assert (
        local_client.delete(f"/api/v1/files/{ready_file}", headers=alice.headers).status_code == 204
    )
    assert_problem(local_client.get(path), 404)


# --- share links' grants ------------------------------------------------------------------


def test_a_link_grant_counts_toward_its_limit_and_resumes_free(local_client, alice, ready_file):
    link = _share(
        local_client, alice, ready_file, password="open sesame", max_downloads=2, serves="original"
    )
    refused = local_client.post(f"{link}/grants", headers={"X-Share-Password": "wrong"})
    assert_problem(refused, 401)
    made = local_client.post(f"{link}/grants", headers={"X-Share-Password": "open sesame"})
    assert made.status_code == 201, made.text
    assert made.headers["Cache-Control"] == "no-store"
    path = _path(made.json()["url"])

    first = local_client.get(path, headers={"Range": "bytes=0-999"})
    assert first.status_code == 206 and first.content == CONTENT[:1000]
    assert first.headers["Cache-Control"] == "private, no-store"
    assert _downloads(local_client, alice) == 1
    ticket = first.headers["ETag"]
    rest = local_client.get(path, headers={"Range": "bytes=1000-", "If-Range": ticket})
    assert rest.status_code == 206 and first.content + rest.content == CONTENT
    assert local_client.head(path).status_code == 200
    assert _downloads(local_client, alice) == 1  # a resume and a HEAD: not counted

    # As on the link's other routes, Basic carries the password too (any user name).
    basic = base64.b64encode(b"anyone:open sesame").decode()
    second = local_client.post(f"{link}/grants", headers={"Authorization": f"Basic {basic}"})
    assert second.status_code == 201, second.text
    assert local_client.get(_path(second.json()["url"])).content == CONTENT
    assert _downloads(local_client, alice) == 2
    assert assert_problem(local_client.get(path), 410)["reason"] == "exhausted"
    # The resume of a counted download still goes through, as on /s/{token}/content.
    tail = local_client.get(path, headers={"Range": "bytes=299000-", "If-Range": ticket})
    assert tail.status_code == 206 and tail.content == CONTENT[299_000:]
    again = local_client.post(f"{link}/grants", headers={"X-Share-Password": "open sesame"})
    assert assert_problem(again, 410)["reason"] == "exhausted"


def test_a_link_grant_bounds_resumes_as_the_link_does(local_client, local_app, alice, ready_file):
    link = _share(local_client, alice, ready_file, max_downloads=2, serves="original")
    path = _path(local_client.post(f"{link}/grants").json()["url"])
    first = local_client.get(path)
    assert first.status_code == 200 and first.content == CONTENT
    ticket = first.headers["ETag"]
    replay = {"Range": "bytes=1-", "If-Range": ticket}
    # Replayed through the grant and through the link itself: one budget for both.
    answers = [local_client.get(p, headers=replay) for p in [path, f"{link}/content"] * 10]
    served = [a for a in answers if a.status_code == 206]
    assert len(served) == 1 and len(served[0].content) == len(CONTENT) - 1
    # Then the ticket is spent: the next is a new download (the second and last), in full.
    assert [a.status_code for a in answers].count(200) == 1
    assert {a.status_code for a in answers} == {200, 206, 410}
    assert _downloads(local_client, alice) == 2

    # The second download's own ticket resumes it, for its hours and no longer.
    [second] = [a for a in answers if a.status_code == 200]
    tail = {"Range": "bytes=299000-", "If-Range": second.headers["ETag"]}
    assert local_client.get(path, headers=tail).status_code == 206
    hours = runtime(local_app).settings.share_resume_hours
    with runtime(local_app).sessions() as session:
        for row in session.scalars(select(ShareDownload)):
            row.began_at -= dt.timedelta(hours=hours)
        session.commit()
    assert assert_problem(local_client.get(path, headers=tail), 410)["reason"] == "exhausted"


def test_a_revoked_link_stops_its_grants(local_client, alice, ready_file):
    link = _share(local_client, alice, ready_file)
    path = _path(local_client.post(f"{link}/grants").json()["url"])
    share_id = local_client.get("/api/v1/shares", headers=alice.headers).json()["items"][0]["id"]
    assert (
        local_client.delete(f"/api/v1/shares/{share_id}", headers=alice.headers).status_code == 204
    )
    assert assert_problem(local_client.get(path), 410)["reason"] == "revoked"
    assert assert_problem(local_client.post(f"{link}/grants"), 410)["reason"] == "revoked"


def test_link_grants_answer_unknown_and_unready_links_as_content_does(local_client, alice):
    assert_problem(local_client.post("/s/nope/grants"), 404)
    pending = upload(local_client, alice, CONTENT, "later.bin").json()["id"]
    refused = local_client.post(f"{_share(local_client, alice, pending)}/grants")
    assert_problem(refused, 409)
    assert int(refused.headers["Retry-After"]) > 0


def test_the_page_form_posts_the_password_and_is_sent_to_the_download(
    local_client, alice, ready_file
):
    link = _share(local_client, alice, ready_file, password="open sesame", serves="original")
    posted = local_client.post(
        f"{link}/grants", data={"password": "open sesame"}, follow_redirects=False
    )
    location = urljoin(f"http://testserver{link}/grants", started_download(posted))
    downloaded = local_client.get(location)
    assert downloaded.status_code == 200 and downloaded.content == CONTENT
    assert "attachment" in downloaded.headers["Content-Disposition"]


def test_a_wrong_password_in_the_form_shows_the_form_again(
    local_client, local_app, alice, ready_file
):
    link = _share(local_client, alice, ready_file, password="open sesame")
    wrong = local_client.post(f"{link}/grants", data={"password": "guess"}, follow_redirects=False)
    assert wrong.status_code == 401
    assert wrong.headers["Content-Type"].startswith("text/html")
    assert "not right" in wrong.text and 'name="password"' in wrong.text
    assert not wrong.headers["WWW-Authenticate"].lower().startswith("basic")
    for _ in range(runtime(local_app).settings.login_max_failures - 1):
        local_client.post(f"{link}/grants", data={"password": "guess"})
    throttled = local_client.post(f"{link}/grants", data={"password": "open sesame"})
    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) > 0
    assert "Try again in" in throttled.text


def test_a_form_body_over_the_limit_is_refused_before_it_is_read(local_client, local_app):
    limit = runtime(local_app).settings.max_json_bytes
    refused = local_client.post("/s/nope/grants", data={"password": "x" * (limit + 1)})
    assert assert_problem(refused, 413)["limit"] == "body"
    # Media types are case-insensitive: another spelling is no way around the limit.
    for spelling in ("Application/X-WWW-Form-Urlencoded", "APPLICATION/JSON; charset=utf-8"):
        refused = local_client.post(
            "/s/nope/grants",
            content=b"password=" + b"x" * limit,
            headers={"Content-Type": spelling},
        )
        assert assert_problem(refused, 413)["limit"] == "body"


def test_link_tokens_and_grants_are_not_interchangeable(local_client, alice, ready_file, local_app):
    link = _share(local_client, alice, ready_file)
    grant_token = _path(local_client.post(f"{link}/grants").json()["url"]).rsplit("/", 1)[1]
    assert_problem(local_client.get(f"/s/{grant_token}"), 404)
    secret = runtime(local_app).settings.secret_key
    with pytest.raises(shares.NotFound):
        shares.share_id_of(secret, grant_token)
