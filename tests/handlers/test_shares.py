"""Share links: the owner makes, lists and revokes them; anyone with one downloads."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import io
import os
import socket
import time
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import select, update

from app.models import Share, ShareDownload
from app.services import shares
from tests.handlers.conftest import Live, serve_live
from tests.helpers import (
    Account,
    Dev,
    assert_problem,
    make_settings,
    run_jobs,
    runtime,
    start_server,
    upload,
    upload_ready,
    wait_until,
)

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
    assert "Content-Type" not in revoked.headers
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
    # Resuming again (a quarter of a copy more is allowed: what a cut connection had sent).
    again = local_client.get(path, headers={"Range": "bytes=10000-", "If-Range": etag})
    assert again.status_code == 206 and again.content == CONTENT[10000:]

    # Any other request is a new download, and the limit of 1 is spent; so is a resume
    # that would send more than the resumes' budget.
    for headers in (
        {},
        {"Range": "bytes=100-"},
        {"Range": "bytes=100-", "If-Range": '"x"'},
        {"Range": "bytes=100-", "If-Range": etag},
    ):
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


# --- resumes are bounded: in time and in bytes ------------------------------------------------


def _owner_sees(client, account) -> dict:
    return client.get("/api/v1/shares", headers=account.headers).json()["items"][0]


@pytest.mark.parametrize("replay", ["bytes=1-", "bytes=-4000"])
def test_replaying_a_resume_gets_at_most_one_more_copy(local_client, alice, ready_file, replay):
    share = _share(local_client, alice, ready_file, serves="original", max_downloads=1)
    path = _path(share) + "/content"
    first = local_client.get(path)
    assert first.status_code == 200 and first.content == CONTENT
    ticket = first.headers["ETag"]

    replays = [
        local_client.get(path, headers={"Range": replay, "If-Range": ticket}) for _ in range(20)
    ]
    served = [r for r in replays if r.status_code == 206]
    assert served, "a genuine resume is served"
    for refused in replays[len(served) :]:  # the budget spent, and no download left
        assert assert_problem(refused, 410)["reason"] == "exhausted"
    got = sum(len(r.content) for r in served)
    # One more copy, at most (and a quarter of a copy for a resume's overlap, no more).
    assert got <= shares.resume_budget(len(CONTENT))
    if replay == "bytes=1-":
        assert got <= len(CONTENT)
    assert _owner_sees(local_client, alice)["downloads"] == 1


def test_a_spent_ticket_makes_a_new_download_answered_in_full(local_client, alice, ready_file):
    share = _share(local_client, alice, ready_file, serves="original", max_downloads=3)
    path = _path(share) + "/content"
    ticket = local_client.get(path).headers["ETag"]
    resume = {"Range": "bytes=1-", "If-Range": ticket}
    assert local_client.get(path, headers=resume).status_code == 206
    # The budget spent: the same request is a new download, counted, the whole file under
    # a ticket of its own (its If-Range names another download, so not a range of this one).
    fresh = local_client.get(path, headers=resume)
    assert fresh.status_code == 200 and fresh.content == CONTENT
    assert fresh.headers["ETag"] not in (ticket, None)
    assert _owner_sees(local_client, alice)["downloads"] == 2
    assert local_client.get(path, headers=resume).status_code == 200
    assert _owner_sees(local_client, alice)["downloads"] == 3
    assert assert_problem(local_client.get(path, headers=resume), 410)["reason"] == "exhausted"


def _age_downloads(app, share_id: str, hours: float) -> None:
    """Make the link's counted downloads have begun `hours` earlier than they did."""
    with runtime(app).sessions() as session:
        rows = session.scalars(
            select(ShareDownload).where(ShareDownload.share_id == uuid.UUID(share_id))
        )
        for row in rows:
            row.began_at -= dt.timedelta(hours=hours)
        session.commit()


def test_a_ticket_resumes_for_its_hours_and_not_after(local_client, local_app, alice, ready_file):
    hours = runtime(local_app).settings.share_resume_hours
    share = _share(local_client, alice, ready_file, serves="original", max_downloads=2)
    path = _path(share) + "/content"
    ticket = local_client.get(path, headers={"Range": "bytes=0-999"}).headers["ETag"]
    resume = {"Range": "bytes=1000-", "If-Range": ticket}

    _age_downloads(local_app, share["id"], hours - 0.1)  # still within its time
    within = local_client.get(path, headers=resume)
    assert within.status_code == 206 and within.content == CONTENT[1000:]
    assert _owner_sees(local_client, alice)["downloads"] == 1

    _age_downloads(local_app, share["id"], 0.2)  # now past it: a new download
    late = local_client.get(path, headers=resume)
    assert late.status_code == 200 and late.content == CONTENT
    assert _owner_sees(local_client, alice)["downloads"] == 2
    _age_downloads(local_app, share["id"], hours + 1)
    refused = local_client.get(path, headers={"Range": "bytes=1000-", "If-Range": ticket})
    assert assert_problem(refused, 410)["reason"] == "exhausted"


def _cut(url: str, headers: dict, keep: int) -> tuple[bytes, str, int]:
    """A GET whose client goes away after `keep` bytes: (those bytes, the ETag, the status)."""
    got = bytearray()
    with httpx.stream("GET", url, headers=headers, timeout=60) as response:
        for chunk in response.iter_raw(64 * 1024):
            got += chunk
            if len(got) >= keep:
                break
    return bytes(got[:keep]), response.headers["ETag"], response.status_code


def _shared_original(live, data: bytes, **body) -> tuple[Account, str]:
    owner = live.account()
    created = live.http.post(
        "/api/v1/upload_files",
        headers=owner.headers,
        files={"file": ("big.bin", data, "application/octet-stream")},
    )
    assert created.status_code == 202, created.text
    run_jobs(live.app)
    made = live.http.post(
        f"/api/v1/files/{created.json()['id']}/shares",
        headers=owner.headers,
        json={"serves": "original", **body},
    )
    assert made.status_code == 201, made.text
    return owner, _path(made.json()) + "/content"


def test_a_forged_ticket_with_a_digit_that_is_not_ascii_is_no_ticket(live):
    # Header bytes are read as Latin-1: "\xb2" is "²", a digit to str.isdigit() that int()
    # refuses. Such a ticket names no download: the request is a new one, never a 500.
    data = os.urandom(10_000)
    owner, path = _shared_original(live, data, max_downloads=2)
    url = live.url + path
    inner = httpx.head(url, timeout=30).headers["ETag"].strip('"')
    for forged in (f'"{inner}.d\xb2.00"', f'"{inner}.d1\xb9.00"'):
        for name in ("If-Range", "If-None-Match"):
            headers = {"Range": "bytes=1-", name: forged.encode("latin-1")}
            got = httpx.get(url, headers=headers, timeout=30)
            assert got.status_code in (200, 206, 410), got.text
    listed = live.http.get("/api/v1/shares", headers=owner.headers).json()["items"][0]
    assert listed["downloads"] == 2


def test_a_download_cut_short_resumes_with_its_ticket_and_counts_once(live):
    data = os.urandom(3_000_000)
    owner, path = _shared_original(live, data, max_downloads=1)
    url = live.url + path
    have, ticket, status = _cut(url, {}, len(data) * 3 // 10)
    assert status == 200
    # Cut again, and again: a flaky connection resumes as often as it has to.
    for stop in (len(data) * 6 // 10, len(data) * 9 // 10):
        more, etag, status = _cut(
            url, {"Range": f"bytes={len(have)}-", "If-Range": ticket}, stop - len(have)
        )
        assert (status, etag) == (206, ticket)
        have += more
    rest = httpx.get(url, headers={"Range": f"bytes={len(have)}-", "If-Range": ticket}, timeout=60)
    assert rest.status_code == 206
    assert have + rest.content == data
    listed = live.http.get("/api/v1/shares", headers=owner.headers).json()["items"][0]
    assert (listed["downloads"], listed["state"]) == (1, "exhausted")
    # The download complete, its ticket gives no other copy: that would be a new download.
    replay = httpx.get(url, headers={"Range": "bytes=1-", "If-Range": ticket}, timeout=60)
    assert assert_problem(replay, 410)["reason"] == "exhausted"


def test_a_cut_resume_costs_only_what_it_sent(live):
    """A resume reserves its range before sending; what a client that went away was never
    sent goes back to the download's budget, so a resume cut again and again completes.

    A cut costs what the server had written before it saw the client go: on loopback,
    under load, that is what the socket buffers took (a few MB). The file is large enough
    that two such cuts stay well inside the quarter the budget allows for them."""
    data = os.urandom(48_000_000)
    owner, path = _shared_original(live, data, max_downloads=1)
    url = live.url + path
    _, ticket, _ = _cut(url, {}, 100_000)
    resume = {"Range": "bytes=100000-", "If-Range": ticket}

    def resumed() -> int:
        with live.rt.sessions() as session:
            return session.scalars(select(ShareDownload.resumed_bytes)).one()

    # Each of these asks for the rest of the file (47.9 MB of a budget of 60 MB): without
    # what the first did not send given back, the last would be refused.
    for _ in range(2):
        before = resumed()
        _, etag, status = _cut(url, resume, 100_000)
        assert (status, etag) == (206, ticket)
        wait_until(
            lambda before=before: resumed() < before + len(data) // 2,
            what="the server giving back what it did not send",
        )
    whole = httpx.get(url, headers=resume, timeout=60)
    assert whole.status_code == 206 and whole.content == data[100_000:]
    listed = live.http.get("/api/v1/shares", headers=owner.headers).json()["items"][0]
    assert listed["downloads"] == 1


def test_a_resume_left_hanging_holds_only_what_it_was_sent(live):
    """A client that vanished without a word (its connection open, nothing read) holds what
    was sent to it and one step more (a sixteenth of the budget), not the rest of the file
    (11.2 MB of a budget of 20 MB, twice too much for a second resume): its next resume, on
    a new connection, goes through while the first still hangs."""
    data = os.urandom(16_000_000)
    owner, path = _shared_original(live, data, max_downloads=1)
    url = live.url + path
    have, ticket, _ = _cut(url, {}, 4_800_000)  # 30 %
    resume = {"Range": f"bytes={len(have)}-", "If-Range": ticket}

    host, port = live.url.removeprefix("http://").split(":")
    hanging = socket.socket()
    hanging.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    hanging.connect((host, int(port)))
    with contextlib.closing(hanging):
        lines = [f"GET {path} HTTP/1.1", "Host: test", *(f"{k}: {v}" for k, v in resume.items())]
        hanging.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        assert hanging.recv(12) == b"HTTP/1.1 206"
        time.sleep(1.0)  # the server fills what the connection takes, then waits

        rest = httpx.get(url, headers=resume, timeout=60)
        assert rest.status_code == 206 and have + rest.content == data
    listed = live.http.get("/api/v1/shares", headers=owner.headers).json()["items"][0]
    assert listed["downloads"] == 1
    # What the two sent is spent: a replay of the whole file gets nothing more.
    replay = httpx.get(url, headers={"Range": "bytes=1-", "If-Range": ticket}, timeout=60)
    assert assert_problem(replay, 410)["reason"] == "exhausted"


@pytest.mark.slow  # two `serve` processes
def test_the_resume_rule_holds_across_two_api_processes(engine, database_url, redis_url, tmp_path):
    """Two `serve` processes on one database: a resume on the other process is still free,
    and replays racing through both spend one budget."""
    settings = make_settings(tmp_path, database_url)
    data = os.urandom(1_000_000)
    servers = []
    with serve_live(engine, settings) as inline:  # where the upload's job runs
        http = httpx.Client(base_url=inline.url, timeout=60)
        live = Live(inline.url, http, inline.app, inline.counter, settings)
        try:
            owner, cut_path = _shared_original(live, data, max_downloads=1)
            file_id = http.get("/api/v1/files", headers=owner.headers).json()["items"][0]["id"]
            made = http.post(
                f"/api/v1/files/{file_id}/shares",
                headers=owner.headers,
                json={"serves": "original", "max_downloads": 1},
            )
            replay_path = _path(made.json()) + "/content"
            for _ in range(2):
                servers.append(start_server(settings))
            (_, a), (_, b) = servers

            # Cut at 30 % on one process, resumed on the other.
            have, ticket, status = _cut(a + cut_path, {}, len(data) * 3 // 10)
            assert status == 200
            resume = {"Range": f"bytes={len(have)}-", "If-Range": ticket}
            rest = httpx.get(b + cut_path, headers=resume, timeout=60)
            assert rest.status_code == 206 and have + rest.content == data

            # One download on one process, then 20 replays racing through both.
            first = httpx.get(a + replay_path, timeout=60)
            assert first.status_code == 200
            replay = {"Range": "bytes=1-", "If-Range": first.headers["ETag"]}

            def fetch(base: str) -> tuple[int, int]:
                got = httpx.get(base + replay_path, headers=replay, timeout=60)
                return got.status_code, len(got.content) if got.status_code == 206 else 0

            with ThreadPoolExecutor(max_workers=20) as pool:
                results = list(pool.map(fetch, [a, b] * 10))
            assert sorted(status for status, _ in results) == [206] + [410] * 19
            assert sum(size for _, size in results) <= len(data)  # one more copy at most
            links = http.get("/api/v1/shares", headers=owner.headers).json()["items"]
            assert [link["downloads"] for link in links] == [1, 1]
        finally:
            for server, _ in servers:
                server.terminate()
                server.wait(timeout=30)
            live.remove_accounts()
            http.close()


@pytest.mark.slow  # `instashare-server dev`
def test_the_embedded_default_keeps_the_rule_too(tmp_path):
    """`instashare-server dev` (SQLite, no Redis, its own worker): a cut download resumes
    free, and replays of its ticket get at most one more copy."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSTASHARE_")}
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    dev = Dev(env=env, cwd=tmp_path)
    try:
        base = dev.base + "/api/v1"
        account = {"email": "dee@example.com", "password": "correct horse battery"}
        assert httpx.post(f"{base}/users/register", json=account).status_code == 201
        login = httpx.post(f"{base}/users/login", json=account).json()
        auth = {"Authorization": f"Bearer {login['access_token']}"}
        data = os.urandom(1_000_000)
        files = {"file": ("dee.bin", data, "application/octet-stream")}
        file_id = httpx.post(f"{base}/upload_files", headers=auth, files=files).json()["id"]
        wait_until(
            lambda: httpx.get(f"{base}/files/{file_id}", headers=auth).json()["status"] == "ready",
            90,
            0.2,
            what="the dev worker compressing",
        )
        made = httpx.post(
            f"{base}/files/{file_id}/shares",
            headers=auth,
            json={"serves": "original", "max_downloads": 1},
        )
        url = dev.base + _path(made.json()) + "/content"

        have, ticket, status = _cut(url, {}, len(data) * 3 // 10)
        assert status == 200
        resume = {"Range": f"bytes={len(have)}-", "If-Range": ticket}
        rest = httpx.get(url, headers=resume, timeout=60)
        assert rest.status_code == 206 and have + rest.content == data
        replay = {"Range": "bytes=1-", "If-Range": ticket}
        replays = [httpx.get(url, headers=replay, timeout=60) for _ in range(5)]
        assert [r.status_code for r in replays] == [410] * 5  # the resume spent most of it
        [link] = httpx.get(f"{base}/shares", headers=auth).json()["items"]
        assert link["downloads"] == 1
    finally:
        dev.stop()


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
