"""Direct uploads: the client sends the bytes to a GCS resumable session (the emulator's),
the API checks them and the worker makes the file ready; every lie and every break."""

from __future__ import annotations

import base64
import concurrent.futures
import datetime as dt
import hashlib
import io
import logging
import socket
import urllib.parse
import uuid
import zipfile
import zlib

import google_crc32c
import httpx
import pytest
from sqlalchemy import select, update

from app.models import File, FileStatus, Upload
from app.services import quota, resumable_uploads
from tests.handlers.conftest import Live, serve_live
from tests.helpers import Account, make_settings, run_jobs, runtime, stored_keys

DIRECT = "/api/v1/direct-uploads"
CHUNK = 256 * 1024  # the smallest chunk GCS takes; the tests send several


def payload(size: int, seed: int = 7) -> bytes:
    """Bytes that deflate a little (the worker compresses them)."""
    block = hashlib.sha256(str(seed).encode()).hexdigest().encode() * 64
    return (block * (size // len(block) + 1))[:size]


def crc32c_of(data: bytes) -> str:
    return base64.b64encode(google_crc32c.Checksum(data).digest()).decode()


def crc32_of(data: bytes) -> str:
    return f"{zlib.crc32(data):08x}"


def start(client, account: Account, size: int, name: str = "data.bin", **extra):
    return client.post(DIRECT, json={"name": name, "size": size, **extra}, headers=account.headers)


def started(client, account: Account, size: int, name: str = "data.bin", **extra) -> dict:
    response = start(client, account, size, name, **extra)
    assert response.status_code == 201, response.text
    return response.json()


def put(session_url: str, data: bytes, begin: int, total: int | str) -> httpx.Response:
    """One chunk, `data` from `begin`, to the session (as the clients send them)."""
    end = begin + len(data) - 1
    return httpx.put(
        session_url, content=data, headers={"Content-Range": f"bytes {begin}-{end}/{total}"}
    )


def received(session_url: str, total: int) -> int:
    """How many bytes the session holds (`bytes */N`, as a resuming client asks)."""
    answer = httpx.put(session_url, headers={"Content-Range": f"bytes */{total}"})
    if answer.status_code in (200, 201):
        return total
    assert answer.status_code == 308, answer.text
    got = answer.headers.get("Range")
    return int(got.rsplit("-", 1)[1]) + 1 if got else 0


def cut_off(session_url: str, data: bytes, begin: int, total: int) -> None:
    """A PUT whose client dies a third of the way through its body."""
    parts = urllib.parse.urlsplit(session_url)
    head = (
        f"PUT {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Length: {len(data)}\r\n"
        f"Content-Range: bytes {begin}-{begin + len(data) - 1}/{total}\r\n\r\n"
    )
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        sock.sendall(head.encode() + data[: len(data) // 3])


def send_all(session_url: str, data: bytes, begin: int = 0) -> None:
    for at in range(begin, len(data), CHUNK):
        answer = put(session_url, data[at : at + CHUNK], at, len(data))
        assert answer.status_code in (200, 201, 308), answer.text


def complete(client, account: Account, upload: dict, data: bytes):
    return client.post(
        f"{upload['url']}/complete", json={"crc32": crc32_of(data)}, headers=account.headers
    )


@pytest.fixture
def gcs_app(make_app, gcs_settings):
    return make_app(gcs_settings)


@pytest.fixture
def gcs_client(gcs_app):
    with gcs_app.test_client() as test_client:
        yield test_client


def reserved(app, account: Account) -> int:
    with runtime(app).sessions() as session:
        return quota.usage(session, uuid.UUID(account.id)).bytes_reserved


def download(client, account: Account, file_id: str) -> bytes:
    answer = client.get(f"/api/v1/files/{file_id}/content", headers=account.headers)
    assert answer.status_code == 200, answer.text
    with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
        return archive.read(archive.namelist()[0])


# --- discovery -----------------------------------------------------------------------------


def test_offered_with_gcs_and_not_with_local(gcs_client, local_client, alice):
    offer = gcs_client.get(DIRECT, headers=alice.headers).json()
    assert offer["enabled"] is True and offer["chunk_bytes"] % (256 * 1024) == 0
    assert local_client.get(DIRECT, headers=alice.headers).json()["enabled"] is False
    refused = start(local_client, alice, 10)
    assert refused.status_code == 404
    assert "tus" in refused.json()["detail"]


def test_turned_off_by_the_setting(make_app, tmp_path, database_url, gcs_emulator, alice):
    app = make_app(make_settings(tmp_path, database_url, "gcs", direct_uploads=False))
    with app.test_client() as client:
        assert client.get(DIRECT, headers=alice.headers).json()["enabled"] is False
        assert start(client, alice, 10).status_code == 404


def test_the_web_app_may_connect_to_the_storage_only_when_offered(
    gcs_client, make_app, tmp_path, database_url, gcs_emulator
):
    policy = gcs_client.get("/").headers["content-security-policy"]
    assert f"connect-src 'self' {gcs_emulator};" in policy
    app = make_app(make_settings(tmp_path, database_url, "gcs", direct_uploads=False))
    with app.test_client() as client:
        assert "connect-src 'self';" in client.get("/").headers["content-security-policy"]


# --- the whole way, through the worker --------------------------------------------------------


def test_direct_upload_becomes_a_ready_file(gcs_app, gcs_client, alice):
    data = payload(3 * CHUNK + 1234)
    upload = started(gcs_client, alice, len(data), "notes.txt", crc32c=crc32c_of(data))
    assert upload["session_url"].startswith("http://127.0.0.1:")
    assert reserved(gcs_app, alice) == len(data)
    send_all(upload["session_url"], data)
    answer = complete(gcs_client, alice, upload, data)
    assert answer.status_code == 201, answer.text
    file = answer.json()
    assert (file["id"], file["name"], file["status"]) == (upload["id"], "notes.txt", "pending")
    assert reserved(gcs_app, alice) == 0
    assert run_jobs(gcs_app) == ["ready"]
    assert download(gcs_client, alice, file["id"]) == data
    # The quarantine went; a second complete (a retry) answers the file.
    assert not [k for k in stored_keys(gcs_app, alice.id) if "direct" in k]
    again = complete(gcs_client, alice, upload, data)
    assert again.status_code == 200 and again.json()["id"] == file["id"]


def test_killed_client_resumes_where_the_session_stopped(gcs_app, gcs_client, alice):
    data = payload(6 * CHUNK + 77, seed=3)
    upload = started(gcs_client, alice, len(data))
    url = upload["session_url"]
    # The client dies after two chunks and half of a third (a PUT cut off: nothing of it).
    for at in (0, CHUNK):
        assert put(url, data[at : at + CHUNK], at, len(data)).status_code == 308
    cut_off(url, data[2 * CHUNK : 3 * CHUNK], 2 * CHUNK, len(data))
    early = complete(gcs_client, alice, upload, data)
    assert early.status_code == 409
    assert "bytes */" in early.json()["detail"]
    # A new process asks the session how far it got and sends the rest. (GCS keeps what
    # it received of a broken PUT in steps of 256 KiB; the emulator, all of it.)
    at = received(url, len(data))
    assert 2 * CHUNK <= at < 3 * CHUNK
    send_all(url, data, at)
    assert complete(gcs_client, alice, upload, data).status_code == 201
    assert run_jobs(gcs_app) == ["ready"]
    assert download(gcs_client, alice, upload["id"]) == data


# --- lies ----------------------------------------------------------------------------------


@pytest.mark.parametrize("extra", [4096, -4096], ids=["bigger", "smaller"])
def test_a_size_lie_removes_the_upload(gcs_app, gcs_client, alice, extra):
    declared = 2 * CHUNK
    data = payload(declared + extra)
    upload = started(gcs_client, alice, declared)
    # The emulator does not hold a session to its declared length (GCS does): it takes
    # whatever total the client's Content-Range names. The complete step's check holds.
    send_all(upload["session_url"], data)
    answer = complete(gcs_client, alice, upload, data)
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert f"({len(data)} bytes)" in detail and f"({declared} bytes)" in detail
    assert "removed" in detail
    assert reserved(gcs_app, alice) == 0
    assert not stored_keys(gcs_app, alice.id)
    assert complete(gcs_client, alice, upload, data).status_code == 404
    assert run_jobs(gcs_app) == []


def test_a_wrong_crc32c_removes_the_upload(gcs_app, gcs_client, alice):
    data = payload(CHUNK + 5)
    upload = started(gcs_client, alice, len(data), crc32c=crc32c_of(data + b"x"))
    send_all(upload["session_url"], data)
    answer = complete(gcs_client, alice, upload, data)
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith("The bytes received have CRC32C")
    assert reserved(gcs_app, alice) == 0


def test_a_wrong_crc32_fails_in_the_worker(gcs_app, gcs_client, alice):
    data = payload(CHUNK)
    upload = started(gcs_client, alice, len(data))
    send_all(upload["session_url"], data)
    answer = gcs_client.post(
        f"{upload['url']}/complete", json={"crc32": "00000000"}, headers=alice.headers
    )
    assert answer.status_code == 201
    assert run_jobs(gcs_app) != ["ready"]
    with runtime(gcs_app).sessions() as session:
        file = session.get(File, uuid.UUID(upload["id"]))
        assert file is not None and file.status != FileStatus.READY


# --- the name, the quota, the protocols -------------------------------------------------------


def test_name_and_size_checks_are_those_of_tus(gcs_client, alice, gcs_settings):
    upload = started(gcs_client, alice, 10, "same.txt")
    clash = start(gcs_client, alice, 10, "same.txt")
    assert clash.status_code == 409
    big = start(gcs_client, alice, gcs_settings.max_upload_bytes + 1)
    assert big.status_code == 413
    assert "GiB" in big.json()["detail"]
    renamed = started(gcs_client, alice, 10, "same.txt", on_conflict="rename")
    assert renamed["name"] == "same (1).txt"
    # tus cannot write a direct upload.
    patched = gcs_client.patch(
        f"/api/v1/uploads/{upload['id']}",
        content=b"0123456789",
        headers={
            **alice.headers,
            "Tus-Resumable": "1.0.0",
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
        },
    )
    assert patched.status_code == 409
    assert "session URL" in patched.json()["detail"]


def test_cancel_ends_the_session_and_frees_the_reservation(gcs_app, gcs_client, alice, bob):
    data = payload(2 * CHUNK)
    upload = started(gcs_client, alice, len(data))
    put(upload["session_url"], data[:CHUNK], 0, len(data))
    cancel = f"{upload['url']}/cancel"
    wrong = gcs_client.post(
        cancel, json={"session_url": "http://127.0.0.1:9/x"}, headers=alice.headers
    )
    assert wrong.status_code == 400
    assert gcs_client.post(cancel, json={}, headers=bob.headers).status_code == 404
    done = gcs_client.post(
        cancel, json={"session_url": upload["session_url"]}, headers=alice.headers
    )
    assert done.status_code == 204, done.text
    assert reserved(gcs_app, alice) == 0
    assert complete(gcs_client, alice, upload, data).status_code == 404


def test_an_expired_upload_is_swept_and_its_reservation_released(gcs_app, gcs_client, alice):
    data = payload(CHUNK)
    upload = started(gcs_client, alice, len(data))
    send_all(upload["session_url"], data)  # finished, but never completed
    rt = runtime(gcs_app)
    assert stored_keys(gcs_app, alice.id)
    with rt.sessions() as session:
        past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        session.execute(
            update(Upload).where(Upload.id == uuid.UUID(upload["id"])).values(expires_at=past)
        )
        session.commit()
        assert resumable_uploads.expire(session, rt.storage) >= 1
        assert session.scalar(select(Upload).where(Upload.id == uuid.UUID(upload["id"]))) is None
    assert reserved(gcs_app, alice) == 0
    assert not stored_keys(gcs_app, alice.id)
    assert complete(gcs_client, alice, upload, data).status_code == 404


def test_the_session_url_is_never_logged(gcs_app, gcs_client, alice, caplog):
    caplog.set_level(logging.DEBUG)
    data = payload(CHUNK)
    upload = started(gcs_client, alice, len(data))
    send_all(upload["session_url"], data)
    complete(gcs_client, alice, upload, data)
    other = started(gcs_client, alice, len(data), "other.bin")
    gcs_client.post(
        f"{other['url']}/cancel", json={"session_url": other["session_url"]}, headers=alice.headers
    )
    secrets = [u.split("upload_id=")[1] for u in (upload["session_url"], other["session_url"])]
    # What the server logged (the test's own httpx client logs the URLs it PUTs to).
    logged = "\n".join(
        r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))
    )
    assert "DELETE" in logged or "POST" in logged  # the storage calls were logged, at DEBUG
    assert not any(secret in logged for secret in secrets)
    with runtime(gcs_app).sessions() as session:
        stored = session.scalar(
            select(Upload.session_sha256).where(Upload.id == uuid.UUID(other["id"]))
        )
    assert stored is None  # cancelled: the row (with only a hash) is gone too


# --- races (a real server, sessions that commit) ----------------------------------------------


@pytest.fixture(scope="module")
def live_server(engine, tmp_path_factory, database_url, gcs_emulator, redis_url):
    settings = make_settings(
        tmp_path_factory.mktemp("direct"), database_url, "gcs", quota_bytes=10 * CHUNK
    )
    with serve_live(engine, settings) as server:
        yield server, settings


@pytest.fixture
def live(live_server):
    server, settings = live_server
    with httpx.Client(base_url=server.url, timeout=30) as http:
        view = Live(server.url, http, server.app, server.counter, settings)
        try:
            yield view
        finally:
            view.remove_accounts()


def test_twenty_starts_race_for_the_quota(live):
    carol = live.account()
    # Quota: 10 chunks. Twenty starts of 3 chunks each: exactly three fit.
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        answers = list(
            pool.map(
                lambda i: start(live.http, carol, 3 * CHUNK, f"f{i}.bin").status_code, range(20)
            )
        )
    assert sorted(answers) == [201] * 3 + [413] * 17
    with live.rt.sessions() as session:
        usage = quota.usage(session, uuid.UUID(carol.id))
    assert usage.bytes_reserved == 9 * CHUNK
