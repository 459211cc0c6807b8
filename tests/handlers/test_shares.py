"""Share links: the owner makes, lists and revokes them; anyone with one downloads."""

from __future__ import annotations

import base64
import datetime as dt
import io
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import update

from app.models import Share
from app.services import shares
from tests.helpers import assert_problem, run_jobs, runtime, upload, upload_ready

CONTENT = b"shared bytes " * 1000


def _upload_ready(client, app, account, content=CONTENT, filename="report.txt") -> str:
    return upload_ready(client, app, account, content, filename)


@pytest.fixture
def ready_file(local_client, local_app, alice) -> str:
    return _upload_ready(local_client, local_app, alice)


def _share(client, account, file_id, **body):
    made = client.post(f"/api/v1/files/{file_id}/shares", headers=account.headers, json=body)
    assert made.status_code == 201, made.text
    return made.json()


def _path(share: dict) -> str:
    """The link's path (its URL without the base)."""
    return "/s/" + share["url"].rsplit("/s/", 1)[1]


# --- making and seeing links -----------------------------------------------------------------


def test_a_stranger_downloads_the_zip_with_the_link_alone(local_client, alice, ready_file):
    share = _share(local_client, alice, ready_file)
    assert share["url"].startswith("http://testserver/s/")
    token = share["url"].rsplit("/", 1)[1]
    assert len(token) >= 22 and "?" not in share["url"]

    meta = local_client.get(_path(share))
    assert meta.status_code == 200, meta.text
    assert meta.json()["name"] == "report.txt.zip"
    assert meta.json()["size"] == len(CONTENT)
    assert meta.json()["status"] == "ready"
    assert meta.json()["has_password"] is False

    got = local_client.get(_path(share) + "/content")
    assert got.status_code == 200
    with zipfile.ZipFile(io.BytesIO(got.content)) as archive:
        assert archive.read("report.txt") == CONTENT
    assert "report.txt.zip" in got.headers["Content-Disposition"]
    assert got.headers["Referrer-Policy"] == "no-referrer"
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert got.headers["Access-Control-Allow-Origin"] == "*"


def test_original_bytes_with_ranges_head_and_etags(local_client, alice, ready_file):
    path = _path(_share(local_client, alice, ready_file, serves="original")) + "/content"
    head = local_client.head(path)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Length"] == str(len(CONTENT))
    part = local_client.get(path, headers={"Range": "bytes=5-9"})
    assert part.status_code == 206 and part.content == CONTENT[5:10]
    assert local_client.get(path, headers={"Range": f"bytes={len(CONTENT)}-"}).status_code == 416
    etag = local_client.get(path).headers["ETag"]
    assert local_client.get(path, headers={"If-None-Match": etag}).status_code == 304


def test_the_owner_lists_links_of_a_file_and_all_of_them(local_client, local_app, alice, bob):
    first = _upload_ready(local_client, local_app, alice, filename="a.txt")
    second = _upload_ready(local_client, local_app, alice, filename="b.txt")
    made = [_share(local_client, alice, first) for _ in range(3)]
    made.append(_share(local_client, alice, second, password="open sesame", max_downloads=2))

    of_first = local_client.get(f"/api/v1/files/{first}/shares", headers=alice.headers).json()
    assert {s["id"] for s in of_first["items"]} == {s["id"] for s in made[:3]}
    assert of_first["total"] == 3

    seen, cursor = [], None
    while True:
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = local_client.get("/api/v1/shares", headers=alice.headers, params=query)
        assert page.status_code == 200, page.text
        seen += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert [s["id"] for s in seen] == [s["id"] for s in reversed(made)]
    last = seen[0]
    assert last["has_password"] is True and last["max_downloads"] == 2
    assert last["downloads"] == 0 and last["state"] == "active"
    assert last["url"] == made[-1]["url"]  # shown again, the same
    assert "password" not in last and "password_hash" not in last
    assert local_client.get("/api/v1/shares", headers=bob.headers).json()["items"] == []


def test_someone_elses_file_and_links_are_not_found(local_client, alice, bob, ready_file):
    share = _share(local_client, alice, ready_file)
    for response in (
        local_client.post(f"/api/v1/files/{ready_file}/shares", headers=bob.headers, json={}),
        local_client.get(f"/api/v1/files/{ready_file}/shares", headers=bob.headers),
        local_client.delete(f"/api/v1/shares/{share['id']}", headers=bob.headers),
    ):
        assert_problem(response, 404)
    assert local_client.get(_path(share)).status_code == 200  # still alive


@pytest.mark.parametrize(
    "body",
    [
        {"expires_in_days": 91},
        {"never_expires": True},
        {"max_downloads": 0},
        {"password": "abc"},
        {"serves": "gzip"},
        {"unknown": 1},
    ],
)
def test_bad_link_requests_are_400(local_client, alice, ready_file, body):
    response = local_client.post(
        f"/api/v1/files/{ready_file}/shares", headers=alice.headers, json=body
    )
    assert_problem(response, 400)


def test_a_link_to_a_file_not_ready_yet_says_when_to_ask_again(local_client, alice):
    pending = upload(local_client, alice, CONTENT, "later.txt").json()["id"]
    path = _path(_share(local_client, alice, pending))
    assert local_client.get(path).json()["status"] == "pending"
    response = local_client.get(path + "/content")
    assert_problem(response, 409)
    assert int(response.headers["Retry-After"]) > 0


# --- links that no longer work -------------------------------------------------------------


def test_unknown_and_forged_tokens_are_404(local_client, alice, ready_file, local_settings):
    share = _share(local_client, alice, ready_file)
    forged = shares.token("another secret", uuid.UUID(share["id"]))
    random = base64.urlsafe_b64encode(uuid.uuid4().bytes * 2).rstrip(b"=").decode()
    for token in (forged, random, "nope", "a" * 200):
        assert_problem(local_client.get(f"/s/{token}"), 404)
        assert_problem(local_client.get(f"/s/{token}/content"), 404)


def test_a_revoked_link_is_gone_at_once(local_client, alice, ready_file):
    share = _share(local_client, alice, ready_file)
    revoked = local_client.delete(f"/api/v1/shares/{share['id']}", headers=alice.headers)
    assert revoked.status_code == 204
    for path in (_path(share), _path(share) + "/content"):
        assert assert_problem(local_client.get(path), 410)["reason"] == "revoked"
    listed = local_client.get("/api/v1/shares", headers=alice.headers).json()["items"]
    assert listed[0]["state"] == "revoked"


def test_an_expired_link_is_gone(local_client, alice, ready_file, session):
    share = _share(local_client, alice, ready_file, expires_in_days=1)
    session.execute(
        update(Share)
        .where(Share.id == uuid.UUID(share["id"]))
        .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    )
    session.flush()
    body = assert_problem(local_client.get(_path(share) + "/content"), 410)
    assert body["reason"] == "expired"


def test_a_renamed_file_keeps_its_links_and_a_deleted_one_takes_them(
    local_client, alice, ready_file
):
    share = _share(local_client, alice, ready_file)
    renamed = local_client.patch(
        f"/api/v1/files/{ready_file}", headers=alice.headers, json={"name": "final.txt"}
    )
    assert renamed.status_code == 200
    assert local_client.get(_path(share)).json()["name"] == "final.txt.zip"
    got = local_client.get(_path(share) + "/content")
    assert "final.txt.zip" in got.headers["Content-Disposition"]

    assert (
        local_client.delete(f"/api/v1/files/{ready_file}", headers=alice.headers).status_code == 204
    )
    assert_problem(local_client.get(_path(share)), 404)
    assert local_client.get("/api/v1/shares", headers=alice.headers).json()["total"] == 0


# --- passwords ------------------------------------------------------------------------------


def test_a_password_link_needs_its_password_in_a_header(local_client, alice, ready_file):
    path = _path(_share(local_client, alice, ready_file, password="correct horse"))
    missing = local_client.get(path + "/content")
    assert_problem(missing, 401)
    assert missing.headers["WWW-Authenticate"].startswith("Basic")
    assert_problem(local_client.get(path, headers={"X-Share-Password": "wrong one"}), 401)

    ok = local_client.get(path + "/content", headers={"X-Share-Password": "correct horse"})
    assert ok.status_code == 200
    assert ok.headers["Cache-Control"] == "private, no-store"
    assert ok.headers["Referrer-Policy"] == "no-referrer"
    basic = base64.b64encode(b"anyone:correct horse").decode()
    meta = local_client.get(path, headers={"Authorization": f"Basic {basic}"})
    assert meta.status_code == 200 and meta.json()["has_password"] is True
    assert meta.headers["Cache-Control"] == "private, no-store"


def test_a_non_ascii_password_works_in_the_header_as_utf8(local_client, alice, ready_file):
    path = _path(_share(local_client, alice, ready_file, password="contraseña ünïcode"))
    sent = {"X-Share-Password": "contraseña ünïcode".encode()}  # the bytes a client sends
    assert local_client.get(path + "/content", headers=sent).status_code == 200
    wrong = {"X-Share-Password": b"contrasena unicode"}
    assert_problem(local_client.get(path + "/content", headers=wrong), 401)


def test_wrong_passwords_are_throttled_per_link(local_client, local_app, alice, ready_file):
    guessed = _path(_share(local_client, alice, ready_file, password="correct horse"))
    other = _path(_share(local_client, alice, ready_file, password="correct horse"))
    limit = runtime(local_app).settings.login_max_failures
    for _ in range(limit):
        wrong = local_client.get(guessed, headers={"X-Share-Password": "guess"})
        assert_problem(wrong, 401)
    refused = local_client.get(guessed, headers={"X-Share-Password": "correct horse"})
    assert_problem(refused, 429)
    assert int(refused.headers["Retry-After"]) > 0
    # The owner's other link, and the owner's account, are not affected.
    assert local_client.get(other, headers={"X-Share-Password": "correct horse"}).status_code == 200
    assert local_client.get("/api/v1/shares", headers=alice.headers).status_code == 200


# --- counting downloads ------------------------------------------------------------------------


def test_a_resume_presenting_its_etag_does_not_count(local_client, alice, ready_file):
    share = _share(local_client, alice, ready_file, serves="original", max_downloads=1)
    path = _path(share) + "/content"
    first = local_client.get(path, headers={"Range": "bytes=0-99"})
    assert first.status_code == 206 and first.content == CONTENT[:100]
    etag = first.headers["ETag"]
    rest = local_client.get(path, headers={"Range": "bytes=100-", "If-Range": etag})
    assert rest.status_code == 206 and rest.content == CONTENT[100:]
    again = local_client.get(path, headers={"Range": "bytes=500-", "If-Range": etag})
    assert again.status_code == 206  # resuming the counted download, however often

    # Any other request is a new download, and the limit of 1 is spent.
    for headers in ({}, {"Range": "bytes=100-"}, {"Range": "bytes=100-", "If-Range": '"x"'}):
        body = assert_problem(local_client.get(path, headers=headers), 410)
        assert body["reason"] == "exhausted"
    assert_problem(local_client.get(_path(share)), 410)
    listed = local_client.get("/api/v1/shares", headers=alice.headers).json()["items"][0]
    assert listed["downloads"] == 1 and listed["state"] == "exhausted"
    assert listed["last_downloaded_at"] is not None


def test_head_and_not_modified_do_not_count(local_client, alice, ready_file):
    share = _share(local_client, alice, ready_file, max_downloads=1)
    path = _path(share) + "/content"
    for _ in range(3):
        assert local_client.head(path).status_code == 200
    got = local_client.get(path)
    assert got.status_code == 200
    assert local_client.get(path, headers={"If-None-Match": got.headers["ETag"]}).status_code == 304
    assert_problem(local_client.get(path), 410)


def test_the_limit_is_exact_under_concurrency(live):
    owner = live.account()
    created = live.http.post(
        "/api/v1/upload_files",
        headers=owner.headers,
        files={"file": ("race.bin", CONTENT, "application/octet-stream")},
    )
    assert created.status_code == 202, created.text
    run_jobs(live.app)
    made = live.http.post(
        f"/api/v1/files/{created.json()['id']}/shares",
        headers=owner.headers,
        json={"max_downloads": 3, "serves": "original"},
    )
    assert made.status_code == 201, made.text
    path = _path(made.json()) + "/content"

    def fetch(_):
        with httpx.Client(base_url=live.url, timeout=60) as http:
            response = http.get(path)
            return response.status_code, response.content

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(fetch, range(50)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * 3 + [410] * 47
    assert all(body == CONTENT for status, body in results if status == 200)
    listed = live.http.get("/api/v1/shares", headers=owner.headers).json()["items"][0]
    assert listed["downloads"] == 3


def test_cors_lets_any_page_fetch_a_shared_file(local_client, alice, ready_file):
    path = _path(_share(local_client, alice, ready_file)) + "/content"
    preflight = local_client.options(
        path,
        headers={
            "Origin": "https://elsewhere.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "x-share-password, range",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "X-Share-Password" in preflight.headers["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in preflight.headers
    got = local_client.get(path, headers={"Origin": "https://elsewhere.example"})
    assert got.headers["Access-Control-Allow-Origin"] == "*"
    assert "Content-Disposition" in got.headers["Access-Control-Expose-Headers"]
