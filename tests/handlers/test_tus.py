"""Resumable uploads over tus 1.0: a real tus client against a real server, and every error.

Most tests speak the protocol in-process, inside the test's transaction (`client`, `app`).
The real tus client, a body cut off on the wire, and the races between requests need a real
server on separate database connections: `live` serves an app whose requests and jobs
commit for real, on fresh accounts that are removed when the test ends.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import io
import random
import socket
import uuid
import zipfile
import zlib

import pytest
import sqlalchemy as sa
from tusclient.client import TusClient

from app.errors import AppError, Conflict
from app.models import File, Upload, UploadPart
from app.queue.celery import make_celery
from app.services import resumable_uploads
from app.settings import Settings
from app.storage.local import LocalStorage
from tests.helpers import (
    GCS_BUCKET,
    Account,
    run_jobs,
    runtime,
    stored_keys,
    upload,
    wait_until,
)

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {"Content-Type": "application/offset+octet-stream"}
ORIGIN = "https://app.example"


def payload(size: int, seed: int = 1) -> bytes:
    """Mildly compressible bytes, so the worker deflates them."""
    rng = random.Random(seed)
    words = [bytes(rng.choices(b"abcdefghij", k=rng.randint(1, 9))) for _ in range(512)]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(words) + b" "
    return bytes(out[:size])


def metadata(filename: str, **extra: str) -> str:
    pairs = {"filename": filename, **extra}
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in pairs.items())


def create(client, account: Account, length: int, filename: str = "data.bin", **headers):
    return client.post(
        "/api/v1/uploads",
        headers={
            **account.headers,
            **TUS,
            "Upload-Length": str(length),
            "Upload-Metadata": metadata(filename),
            **headers,
        },
    )


def created(client, account: Account, length: int, filename: str = "data.bin") -> str:
    response = create(client, account, length, filename)
    assert response.status_code == 201, response.text
    return response.headers["Location"]


def patch(client, account: Account, url: str, offset: int, data: bytes, **headers):
    return client.patch(
        url,
        headers={**account.headers, **TUS, **OCTETS, "Upload-Offset": str(offset), **headers},
        content=data,
    )


def head(client, account: Account, url: str):
    return client.head(url, headers={**account.headers, **TUS})


def sha1_header(data: bytes) -> str:
    return "sha1 " + base64.b64encode(hashlib.sha1(data, usedforsecurity=False).digest()).decode()


def writing(rt, session, storage=None) -> resumable_uploads.Context:
    """What a handler gives the service to write with, on `rt` (another `storage` if given)."""
    limits = resumable_uploads.Limits.of(rt.settings)
    return resumable_uploads.Context(session, storage or rt.storage, rt.jobs, limits)


def in_place(storage) -> bool:
    """Whether the backend appends every PATCH to one object (local) rather than storing parts."""
    return isinstance(storage, LocalStorage)


def parts_in_storage(storage, account: Account, url: str) -> list[str]:
    upload_id = url.rsplit("/", 1)[1]
    return list(storage.list(f"tmp/{account.id}/uploads/{upload_id}.parts/"))


def tus_client(base_url: str, account: Account) -> TusClient:
    return TusClient(f"{base_url}/api/v1/uploads", headers=account.headers)


def ready_file(app, client, account: Account, file_id: str) -> dict:
    """Run the compression job the finished upload sent; the file, ready."""
    assert run_jobs(app) == ["ready"]
    body = client.get(f"/api/v1/files/{file_id}", headers=account.headers).json()
    assert body["status"] == "ready", body
    return body


def download_original(client, account: Account, file_id: str) -> bytes:
    response = client.get(
        f"/api/v1/files/{file_id}/content", params={"format": "original"}, headers=account.headers
    )
    assert response.status_code == 200, response.text
    return response.content


def test_tuspy_round_trip_becomes_a_ready_file(live, carol, tmp_path):
    content = payload(3 * 1024 * 1024 + 12345)
    source = tmp_path / "notes.txt"
    source.write_bytes(content)
    uploader = tus_client(live.url, carol).uploader(
        str(source), chunk_size=1024 * 1024, metadata={"filename": "notes.txt"},
        upload_checksum=True,
    )  # fmt: skip
    uploader.upload()
    file_id = uploader.url.rsplit("/", 1)[1]

    body = ready_file(live.app, live.http, carol, file_id)
    assert body["status"] == "ready", body
    assert body["name"] == "notes.txt"
    assert body["content_type"] == "text/plain"
    assert body["size"] == len(content)
    assert body["sha256"] == hashlib.sha256(content).hexdigest()  # filled in by the worker
    zipped = live.http.get(f"/api/v1/files/{file_id}/content", headers=carol.headers)
    with zipfile.ZipFile(io.BytesIO(zipped.content)) as archive:
        assert archive.namelist() == ["notes.txt"]
        assert archive.read("notes.txt") == content
    # The finished upload still answers HEAD, at full length; its parts are gone.
    done = head(live.http, carol, uploader.url)
    assert done.status_code == 200
    assert done.headers["Upload-Offset"] == done.headers["Upload-Length"] == str(len(content))


def test_interrupted_upload_resumes_with_a_new_client(live, carol, tmp_path):
    content = payload(2 * 1024 * 1024 + 777, seed=7)
    source = tmp_path / "big.log"
    source.write_bytes(content)
    first = tus_client(live.url, carol).uploader(
        str(source), chunk_size=512 * 1024, metadata={"filename": "big.log"}
    )
    first.upload(stop_at=1024 * 1024)  # "the connection dropped" halfway
    url = first.url
    assert head(live.http, carol, url).headers["Upload-Offset"] == str(1024 * 1024)

    # A new client, knowing only the URL, asks where to resume and finishes.
    second = tus_client(live.url, carol).uploader(str(source), url=url, chunk_size=300 * 1024)
    assert second.offset == 1024 * 1024
    second.upload()

    file_id = url.rsplit("/", 1)[1]
    body = ready_file(live.app, live.http, carol, file_id)
    assert body["status"] == "ready", body
    assert download_original(live.http, carol, file_id) == content


def test_body_cut_off_midway_keeps_what_arrived(live, carol):
    content = payload(1024 * 1024, seed=3)
    url = created(live.http, carol, len(content), "cut.txt")
    port = int(live.url.rsplit(":", 1)[1])
    sent = 300 * 1024
    request = (
        f"PATCH {url} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {carol.token}\r\nTus-Resumable: 1.0.0\r\n"
        f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
        f"Content-Length: {len(content)}\r\n\r\n"
    ).encode()
    before = live.counter.delivered
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(request + content[:sent])
        # The server reads what was sent before the line drops.
        wait_until(
            lambda: live.counter.delivered - before >= sent, 30, what="the server reading the body"
        )
    offset = wait_until(
        lambda: int(head(live.http, carol, url).headers["Upload-Offset"]),
        30,
        what="the cut-off PATCH recording its bytes",
    )
    assert 0 < offset <= sent
    assert len(parts_in_storage(live.storage, carol, url)) == 1

    resumed = tus_client(live.url, carol).uploader(
        file_stream=io.BytesIO(content), url=f"{live.url}{url}", chunk_size=256 * 1024
    )
    assert resumed.offset == offset
    resumed.upload()
    file_id = url.rsplit("/", 1)[1]
    body = ready_file(live.app, live.http, carol, file_id)
    assert body["status"] == "ready", body
    assert download_original(live.http, carol, file_id) == content
    assert parts_in_storage(live.storage, carol, url) == []


# --- the protocol, request by request (in-process) ---------------------------------------


def test_options_lists_what_the_server_supports(client, settings):
    response = client.options("/api/v1/uploads")  # no token, no Tus-Resumable needed
    assert response.status_code == 204
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert response.headers["Tus-Version"] == "1.0.0"
    extensions = set(response.headers["Tus-Extension"].split(","))
    assert {"creation", "creation-with-upload", "termination", "checksum", "expiration"} <= (
        extensions
    )
    assert int(response.headers["Tus-Max-Size"]) == settings.max_upload_bytes
    assert "sha1" in response.headers["Tus-Checksum-Algorithm"].split(",")


def test_create_head_patch_delete_cycle(client, alice, storage):
    response = create(client, alice, 10, "ten.txt")
    assert response.status_code == 201
    url = response.headers["Location"]
    assert url.startswith("/api/v1/uploads/")
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert response.headers["Upload-Offset"] == "0"
    assert response.headers["Upload-Expires"].endswith("GMT")

    state = head(client, alice, url)
    assert state.status_code == 200
    assert state.headers["Upload-Offset"] == "0"
    assert state.headers["Upload-Length"] == "10"
    assert state.headers["Cache-Control"] == "no-store"
    assert state.content == b""

    first = patch(client, alice, url, 0, b"01234")
    assert first.status_code == 204, first.text
    assert first.headers["Upload-Offset"] == "5"
    assert first.headers["Tus-Resumable"] == "1.0.0"
    assert "Upload-Expires" in first.headers
    assert len(parts_in_storage(storage, alice, url)) == 1
    assert (
        client.get("/api/v1/users/me", headers=alice.headers).json()["usage"]["bytes_reserved"]
        == 10
    )

    gone = client.delete(url, headers={**alice.headers, **TUS})
    assert gone.status_code == 204
    assert gone.headers["Tus-Resumable"] == "1.0.0"
    assert parts_in_storage(storage, alice, url) == []
    assert head(client, alice, url).status_code == 404
    assert patch(client, alice, url, 5, b"56789").status_code == 404
    assert (
        client.get("/api/v1/users/me", headers=alice.headers).json()["usage"]["bytes_reserved"] == 0
    )


def test_last_patch_makes_a_pending_file(client, alice, storage):
    url = created(client, alice, 6, "six.txt")
    assert patch(client, alice, url, 0, b"abc").status_code == 204
    last = patch(client, alice, url, 3, b"def")
    assert last.status_code == 204
    assert last.headers["Upload-Offset"] == "6"
    file_id = url.rsplit("/", 1)[1]
    body = client.get(f"/api/v1/files/{file_id}", headers=alice.headers).json()
    assert body["status"] in {"pending", "processing", "ready"}
    assert body["name"] == "six.txt"
    assert body["size"] == 6
    assert parts_in_storage(storage, alice, url) == []
    assert storage.exists(f"tmp/{alice.id}/uploads/{file_id}") or body["status"] != "pending"


def test_a_small_file_in_a_folder_path_costs_a_few_statements(client, alice, engine, storage):
    """Every file of a folder upload pays for these: the creation's checks are one look
    (the caller, then the quota, the path's folders and the name together), the last PATCH
    a handful. A check done one query at a time again (per folder, per table) fails this.
    """
    path = {"relativePath": "trip/day 1/a.txt"}
    first = create(client, alice, 3, "a.txt", **{"Upload-Metadata": metadata("a.txt", **path)})
    assert patch(client, alice, first.headers["Location"], 0, b"abc").status_code == 204
    sent: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        if not statement.startswith(("SAVEPOINT", "RELEASE", "ROLLBACK TO")):
            sent.append(statement.split(None, 1)[0] + " " + statement.split("FROM", 1)[-1][:40])

    path = {"relativePath": "trip/day 1/b.txt"}
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        second = create(client, alice, 3, "b.txt", **{"Upload-Metadata": metadata("b.txt", **path)})
        assert second.status_code == 201, second.text
        created_with = len(sent)
        assert patch(client, alice, second.headers["Location"], 0, b"def").status_code == 204
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    # The caller; the look; the reservation; the row.
    assert created_with == 4, sent
    # The caller; the row (and once more under the body's lock, in place); the owner's
    # counters (the lock); the folder and the name; the row goes, the file comes, the
    # parts are recorded for removal (the earlier parts read back, in a part store); the
    # record goes once they are removed.
    assert len(sent) - created_with == 9, sent[created_with:]
    listed = client.get("/api/v1/entries", headers=alice.headers, params={"limit": 10}).json()
    assert [e["name"] for e in listed["items"]] == ["trip"]  # the one folder, made once


def test_a_finished_upload_leaves_no_parts_folder_and_no_upload_row(client, alice, app, storage):
    url = created(client, alice, 6, "done.txt")
    assert patch(client, alice, url, 0, b"abc").status_code == 204
    assert patch(client, alice, url, 3, b"def").status_code == 204
    upload_id = uuid.UUID(url.rsplit("/", 1)[1])
    with runtime(app).sessions() as session:
        assert session.get(Upload, upload_id) is None
        assert session.get(File, upload_id) is not None
    # Nothing of the upload is left: no part object, and on disk no empty folder either.
    assert list(storage.list(f"tmp/{alice.id}/uploads/{upload_id}.parts/")) == []
    settings = runtime(app).settings
    if settings.storage_backend == "local":
        folder = settings.storage_root / "tmp" / alice.id / "uploads"
        assert sorted(p.name for p in folder.iterdir()) == [str(upload_id)]  # the staged file
    # It still answers as a finished upload: HEAD at full length, PATCH 409, DELETE a no-op.
    done = head(client, alice, url)
    assert done.status_code == 200
    assert done.headers["Upload-Offset"] == done.headers["Upload-Length"] == "6"
    assert "Upload-Expires" not in done.headers
    assert patch(client, alice, url, 6, b"x").status_code == 409
    assert client.delete(url, headers={**alice.headers, **TUS}).status_code == 204
    assert client.get(f"/api/v1/files/{upload_id}", headers=alice.headers).status_code == 200


def test_the_final_compose_is_retried_after_a_503_and_a_429(
    make_app, gcs_settings, alice, proxied_storage, fault_proxy
):
    app = make_app(gcs_settings)
    rt = runtime(app)
    direct, rt.storage = rt.storage, proxied_storage  # this app's GCS requests, proxied
    try:
        with app.test_client() as client:
            parts = [payload(3000, seed=i) for i in range(70)]  # three intermediates, then one
            url = created(client, alice, sum(map(len, parts)), "seventy.log")
            offset = 0
            for part in parts[:-1]:
                assert patch(client, alice, url, offset, part).status_code == 204
                offset += len(part)
            # The first intermediate's compose gets a 503; the final one a 429 (the second
            # rule counts the requests the first let through: the retry, two more, the final).
            fault_proxy.fail("POST", r"/compose", status=503, nth=1)
            fault_proxy.fail("POST", r"/compose", status=429, nth=4)
            last = patch(client, alice, url, offset, parts[-1])
            assert last.status_code == 204, last.text
            assert last.headers["Upload-Offset"] == str(offset + len(parts[-1]))
            # 4 composes, 2 of them sent twice; the intermediates were under the parts.
            upload_id = url.rsplit("/", 1)[1]
            staged = f"tmp/{alice.id}/uploads/{upload_id}"
            targets = [c.path for c in fault_proxy.requests("POST", r"/compose")]
            assert len(targets) == 6
            assert [t.startswith("/storage/v1/b/") for t in targets] == [True] * 6
            steps = [t.split("/o/", 1)[1].removesuffix("/compose") for t in targets]
            assert steps[0] == steps[1] and steps[4] == steps[5] == staged, steps
            assert all(s.startswith(f"{staged}.parts/compose-") for s in steps[:4]), steps
            assert list(direct.list(f"tmp/{alice.id}/uploads/{upload_id}.parts/")) == []
            rt.storage = direct
            assert original_bytes(app, client, alice, url) == b"".join(parts)
    finally:
        rt.storage = direct


def test_an_upload_begun_before_the_temporary_prefix_finishes_and_leaves_nothing(
    local_client, local_app, alice
):
    url = created(local_client, alice, 6, "old.txt")
    assert patch(local_client, alice, url, 0, b"abc").status_code == 204
    # As the version before `tmp/` left it: the bytes so far in the owner's folder.
    root = runtime(local_app).settings.storage_root
    upload_id = url.rsplit("/", 1)[1]
    old = root / alice.id / "uploads" / f"{upload_id}.parts"
    old.mkdir(parents=True)
    (root / "tmp" / alice.id / "uploads" / f"{upload_id}.parts" / "data").rename(old / "data")
    assert patch(local_client, alice, url, 3, b"def").status_code == 204
    assert original_bytes(local_app, local_client, alice, url) == b"abcdef"
    # Only the archive is left, and no folder of the upload's.
    assert stored_keys(local_app, alice.id) == [f"{alice.id}/{upload_id}.zip"]
    assert not old.exists()


def test_creation_with_upload(client, alice):
    data = b"all at once"
    response = client.post(
        "/api/v1/uploads",
        headers={
            **alice.headers, **TUS, **OCTETS,
            "Upload-Length": str(len(data)), "Upload-Metadata": metadata("once.txt"),
        },
        content=data,
    )  # fmt: skip
    assert response.status_code == 201, response.text
    assert response.headers["Upload-Offset"] == str(len(data))
    file_id = response.headers["Location"].rsplit("/", 1)[1]
    file = client.get(f"/api/v1/files/{file_id}", headers=alice.headers).json()
    assert file["name"] == "once.txt"
    assert file["size"] == len(data)


def test_creation_with_upload_partial_and_bad_checksum(client, alice, storage):
    response = client.post(
        "/api/v1/uploads",
        headers={
            **alice.headers, **TUS, **OCTETS, "Upload-Length": "100",
            "Upload-Metadata": metadata("part.txt"), "Upload-Checksum": sha1_header(b"other"),
        },
        content=b"first bytes",
    )  # fmt: skip
    assert response.status_code == 460
    # Nothing half-made: no upload holds the name or the quota.
    assert (
        client.get("/api/v1/users/me", headers=alice.headers).json()["usage"]["bytes_reserved"] == 0
    )
    assert created(client, alice, 100, "part.txt")
    assert list(storage.list(f"tmp/{alice.id}/uploads/")) == []


def test_empty_upload_is_a_file_at_once(client, alice):
    response = create(client, alice, 0, "empty.txt")
    assert response.status_code == 201
    file_id = response.headers["Location"].rsplit("/", 1)[1]
    file = client.get(f"/api/v1/files/{file_id}", headers=alice.headers).json()
    assert file["size"] == 0
    assert file["name"] == "empty.txt"


def test_offset_mismatch_is_409(client, alice):
    url = created(client, alice, 10)
    assert patch(client, alice, url, 0, b"12345").status_code == 204
    stale = patch(client, alice, url, 0, b"12345")
    assert stale.status_code == 409
    assert stale.headers["Content-Type"] == "application/problem+json"
    assert stale.headers["Tus-Resumable"] == "1.0.0"
    assert patch(client, alice, url, 7, b"123").status_code == 409
    assert head(client, alice, url).headers["Upload-Offset"] == "5"


@pytest.mark.parametrize("content_type", ["application/octet-stream", "text/plain", None], ids=str)
def test_patch_needs_offset_octet_stream(client, alice, content_type):
    url = created(client, alice, 10)
    headers = {**alice.headers, **TUS, "Upload-Offset": "0"}
    if content_type:
        headers["Content-Type"] = content_type
    response = client.patch(url, headers=headers, content=b"12345")
    assert response.status_code == 415
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert head(client, alice, url).headers["Upload-Offset"] == "0"


@pytest.mark.parametrize("version", [None, "0.2.2", "2.0.0"])
def test_missing_or_unsupported_tus_version_is_412(client, alice, version):
    url = created(client, alice, 10)
    headers = {**alice.headers, **OCTETS, "Upload-Offset": "0"}
    if version:
        headers["Tus-Resumable"] = version
    for response in (
        client.patch(url, headers=headers, content=b"12345"),
        client.head(url, headers=headers),
        client.delete(url, headers=headers),
        client.post("/api/v1/uploads", headers={**headers, "Upload-Length": "5"}),
    ):
        assert response.status_code == 412
        assert response.headers["Tus-Version"] == "1.0.0"
        assert response.headers["Tus-Resumable"] == "1.0.0"
    assert head(client, alice, url).headers["Upload-Offset"] == "0"


def test_checksum_mismatch_is_460_and_the_chunk_is_discarded(client, alice, storage):
    url = created(client, alice, 10)
    bad = patch(client, alice, url, 0, b"12345", **{"Upload-Checksum": sha1_header(b"54321")})
    assert bad.status_code == 460
    assert bad.headers["Content-Type"] == "application/problem+json"
    assert head(client, alice, url).headers["Upload-Offset"] == "0"
    assert parts_in_storage(storage, alice, url) == []
    for algorithm, digest in (
        ("sha1", hashlib.sha1(b"12345", usedforsecurity=False).digest()),
        ("md5", hashlib.md5(b"12345", usedforsecurity=False).digest()),
        ("sha256", hashlib.sha256(b"12345").digest()),
    ):
        url = created(client, alice, 10, f"{algorithm}.bin")
        checksum = f"{algorithm} {base64.b64encode(digest).decode()}"
        good = patch(client, alice, url, 0, b"12345", **{"Upload-Checksum": checksum})
        assert good.status_code == 204, good.text
        assert good.headers["Upload-Offset"] == "5"


@pytest.mark.parametrize("checksum", ["crc32 AAAAAA==", "sha1 not-base64!", "sha1 AAAA"])
def test_unsupported_or_malformed_checksum_is_400(client, alice, checksum):
    url = created(client, alice, 10)
    response = patch(client, alice, url, 0, b"12345", **{"Upload-Checksum": checksum})
    assert response.status_code == 400
    assert head(client, alice, url).headers["Upload-Offset"] == "0"


def test_body_past_the_length_is_413(client, alice, storage):
    url = created(client, alice, 4)
    response = patch(client, alice, url, 0, b"12345")
    assert response.status_code == 413
    assert response.json()["limit"] == "file"
    assert head(client, alice, url).headers["Upload-Offset"] == "0"
    assert parts_in_storage(storage, alice, url) == []


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ({"Upload-Metadata": ""}, "filename"),
        ({"Upload-Metadata": "filename !!!notbase64"}, "base64"),
        ({"Upload-Metadata": "filename a b"}, "malformed"),
        ({"Upload-Length": "-1"}, ""),
        ({"Upload-Length": "ten"}, ""),
    ],
)
def test_bad_creation_headers_are_400(client, alice, headers, fragment):
    response = create(client, alice, 10, **headers)
    assert response.status_code == 400
    assert fragment in response.json()["detail"]


def test_missing_upload_length_is_400(client, alice):
    response = client.post(
        "/api/v1/uploads",
        headers={**alice.headers, **TUS, "Upload-Metadata": metadata("a.txt")},
    )
    assert response.status_code == 400


def test_names_clash_with_files_and_other_uploads(client, alice):
    assert upload(client, alice, b"x", filename="taken.txt").status_code == 202
    assert create(client, alice, 5, "taken.txt").status_code == 409
    created(client, alice, 5, "reserved.txt")
    assert create(client, alice, 5, "reserved.txt").status_code == 409
    # A multipart upload may not take a name an unfinished upload will need.
    assert upload(client, alice, b"x", filename="reserved.txt").status_code == 409


def test_uploads_are_private(client, alice, bob):
    url = created(client, alice, 10)
    assert head(client, bob, url).status_code == 404
    assert patch(client, bob, url, 0, b"12345").status_code == 404
    assert client.delete(url, headers={**bob.headers, **TUS}).status_code == 404
    assert head(client, alice, url).headers["Upload-Offset"] == "0"
    no_token = client.head(url, headers=TUS)
    assert no_token.status_code == 401


@pytest.mark.parametrize("upload_id", ["not-a-uuid", "123", "00000000-0000-0000-0000-00000000000g"])
def test_an_upload_id_that_is_not_a_uuid_is_400(client, alice, upload_id):
    url = f"/api/v1/uploads/{upload_id}"
    assert head(client, alice, url).status_code == 400
    assert patch(client, alice, url, 0, b"12345").status_code == 400
    deleted = client.delete(url, headers={**alice.headers, **TUS})
    assert deleted.status_code == 400
    assert deleted.headers["Content-Type"] == "application/problem+json"


def test_unknown_tus_method_is_405_not_412(client, alice):
    response = client.request("PUT", "/api/v1/uploads", headers=alice.headers)
    assert response.status_code == 405


def test_method_override(client, alice):
    url = created(client, alice, 5)
    response = client.post(
        url,
        headers={
            **alice.headers, **TUS, **OCTETS,
            "Upload-Offset": "0", "X-HTTP-Method-Override": "PATCH",
        },
        content=b"12345",
    )  # fmt: skip
    assert response.status_code == 204
    assert response.headers["Upload-Offset"] == "5"


def test_expired_uploads_are_removed_with_their_parts(client, alice, app, storage):
    url = created(client, alice, 10, "old.txt")
    assert patch(client, alice, url, 0, b"12345").status_code == 204
    upload_id = uuid.UUID(url.rsplit("/", 1)[1])
    assert parts_in_storage(storage, alice, url)
    sessions = runtime(app).sessions
    with sessions() as session:
        row = session.get(Upload, upload_id)
        row.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        session.commit()
    # Expired is gone for the client at once, even before the sweep.
    assert head(client, alice, url).status_code == 404
    with sessions() as session:
        assert resumable_uploads.expire(session, storage) >= 1
        assert session.get(Upload, upload_id) is None
        assert session.query(UploadPart).filter_by(upload_id=upload_id).count() == 0
    assert parts_in_storage(storage, alice, url) == []
    # The name and the quota are free again.
    assert created(client, alice, 10, "old.txt")


def test_expiry_task_is_scheduled(backend, tmp_path):
    # Settings of their own: building the Celery app contacts no broker and no database.
    settings = Settings.from_env(
        {},
        data_dir=tmp_path,
        storage_backend=backend,
        gcs_bucket=GCS_BUCKET,
        broker_url="redis://broker.invalid/0",
    )
    celery = make_celery(settings)
    schedule = {entry["task"] for entry in celery.conf.beat_schedule.values()}
    assert "worker.tasks.expire_uploads" in schedule
    assert "worker.tasks.finish_deletions" in schedule
    import worker.tasks

    assert worker.tasks.expire_uploads.name == "worker.tasks.expire_uploads"
    assert worker.tasks.finish_deletions.name == "worker.tasks.finish_deletions"


def original_bytes(app, client, account: Account, url: str) -> bytes:
    """The finished upload's bytes, as its compression job stored them."""
    file_id = url.rsplit("/", 1)[1]
    done = ready_file(app, client, account, file_id)
    assert done["status"] == "ready", done
    response = client.get(
        f"/api/v1/files/{file_id}/content?format=original", headers=account.headers
    )
    assert response.status_code == 200
    return response.content


def test_racing_patch_loses_with_409_and_leaves_no_part(live, carol):
    """Two PATCHes at one offset: the second gets 409 and the stored bytes are the first's.

    With part objects (GCS), the offset check in the UPDATE decides: "another node" records
    offset 0-1 while this PATCH streams. In place (local storage), the second PATCH finds
    the data object held by the first and gets 409 at once. Each writer has a connection
    of its own and commits for real (the live server's sessions).
    """
    url = created(live.http, carol, 4, "race.txt")
    upload_id = uuid.UUID(url.rsplit("/", 1)[1])
    rt = runtime(live.app)

    def begin_append(session, length):
        chunk = resumable_uploads.Chunk(0, length)
        return resumable_uploads.begin_append(
            writing(rt, session), uuid.UUID(carol.id), upload_id, chunk
        )

    with rt.sessions() as session:
        part = begin_append(session, 2)  # streams b"ab"; meanwhile another writer tries offset 0
        with rt.sessions() as other:
            if in_place(live.storage):
                with pytest.raises(Conflict, match="Another request is writing"):
                    begin_append(other, 1)
            else:
                other.execute(
                    Upload.__table__.update()
                    .where(Upload.id == upload_id)
                    .values(offset=Upload.offset + 1)
                )
                other.commit()
        part.write([b"ab"])
        if in_place(live.storage):
            assert part.finish().offset == 2
            assert head(live.http, carol, url).headers["Upload-Offset"] == "2"
            assert patch(live.http, carol, url, 2, b"cd").status_code == 204
            assert original_bytes(live.app, live.http, carol, url) == b"abcd"
        else:
            with pytest.raises(Conflict):
                part.finish()
            assert parts_in_storage(live.storage, carol, url) == []
            assert head(live.http, carol, url).headers["Upload-Offset"] == "1"


def test_bytes_a_crashed_patch_never_recorded_are_cut_off(client, alice, app, storage):
    """A PATCH that died after writing but before recording leaves bytes past the offset."""
    url = created(client, alice, 6, "crash.txt")
    assert patch(client, alice, url, 0, b"abc").status_code == 204
    if in_place(storage):
        upload_id = uuid.UUID(url.rsplit("/", 1)[1])
        with runtime(app).sessions() as session:
            key = session.get(Upload, upload_id).data_key
        with open(storage._path(key), "ab") as data:  # what the dead PATCH left
            data.write(b"JUNK")
    assert patch(client, alice, url, 3, b"def").status_code == 204
    assert parts_in_storage(storage, alice, url) == []
    assert original_bytes(app, client, alice, url) == b"abcdef"


def test_a_patch_that_finds_its_upload_terminated_is_404_and_leaves_nothing(live, carol):
    """The termination lands after the PATCH's first look and before it holds the object."""
    url = created(live.http, carol, 6, "gone.txt")
    upload_id = uuid.UUID(url.rsplit("/", 1)[1])
    rt = runtime(live.app)

    class TerminatedMeanwhile:
        """The real storage, but a termination happens just before a chunk is opened."""

        def __getattr__(self, name):
            return getattr(live.storage, name)

        def upload_chunk(self, *args, **kwargs):
            with rt.sessions() as other:
                resumable_uploads.terminate(other, live.storage, uuid.UUID(carol.id), upload_id)
            return live.storage.upload_chunk(*args, **kwargs)

    with rt.sessions() as session, pytest.raises(AppError) as raised:
        ctx = resumable_uploads.Context(
            session, TerminatedMeanwhile(), rt.jobs, resumable_uploads.Limits.of(rt.settings)
        )
        part = resumable_uploads.begin_append(
            ctx, uuid.UUID(carol.id), upload_id, resumable_uploads.Chunk(0, 3)
        )
        part.write([b"abc"])
        part.finish()
    assert raised.value.status in {404, 409}
    assert head(live.http, carol, url).status_code == 404
    assert parts_in_storage(live.storage, carol, url) == []


# --- limits and CORS, on an app with small limits ----------------------------------------


@pytest.fixture
def small(make_app, local_settings):
    small_app = make_app(
        dataclasses.replace(
            local_settings, quota_bytes=1000, max_upload_bytes=600, cors_origins=(ORIGIN,)
        )
    )
    with small_app.test_client() as test_client:
        yield test_client


def test_file_and_quota_limits_are_413(small, make_account):
    dave = make_account()
    too_big = create(small, dave, 601)
    assert too_big.status_code == 413
    assert too_big.json()["limit"] == "file"
    created(small, dave, 600, "a.bin")  # reserves 600 of 1000
    over = create(small, dave, 500, "b.bin")
    assert over.status_code == 413
    assert over.json()["limit"] == "quota"
    assert created(small, dave, 400, "c.bin")


def test_cors_preflight_and_exposed_headers(small, make_account):
    preflight = small.options(
        "/api/v1/uploads",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,tus-resumable,upload-length,"
            "upload-metadata,content-type,upload-offset,upload-checksum",
        },
    )
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    allowed = preflight.headers["Access-Control-Allow-Headers"].lower()
    for name in ("tus-resumable", "upload-length", "upload-metadata", "upload-offset"):
        assert name in allowed
    dave = make_account()
    response = create(small, dave, 10, Origin=ORIGIN)
    assert response.status_code == 201
    exposed = response.headers["Access-Control-Expose-Headers"].lower()
    for name in ("location", "upload-offset", "upload-length", "tus-resumable", "upload-expires"):
        assert name in exposed
    foreign = small.options(
        "/api/v1/uploads",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "Access-Control-Allow-Origin" not in foreign.headers


def test_finished_file_row_and_crc(client, alice, app):
    data = b"0123456789" * 1000
    url = created(client, alice, len(data), "crc.txt")
    offset = 0
    for size in (1, 4095, 5000, 904):
        assert patch(client, alice, url, offset, data[offset : offset + size]).status_code == 204
        offset += size
    with runtime(app).sessions() as session:
        file = session.get(File, uuid.UUID(url.rsplit("/", 1)[1]))
        assert file.crc32 == zlib.crc32(data)
        assert file.size == len(data)


@pytest.mark.parametrize(
    "filetype",
    [
        pytest.param("text/plain\r\nX-Injected: 1", id="crlf"),
        pytest.param("text/plain\x00", id="nul"),
        pytest.param("tëxt/plain", id="non-ascii"),
        pytest.param("text/" + "x" * 300, id="too-long"),
    ],
)
def test_a_declared_filetype_that_is_no_media_type_is_replaced_by_a_guess(
    app, client, alice, filetype
):
    data = b"plain words\n"
    response = client.post(
        "/api/v1/uploads",
        headers={
            **alice.headers,
            **TUS,
            "Upload-Length": str(len(data)),
            "Upload-Metadata": metadata("words.txt", filetype=filetype),
        },
    )
    assert response.status_code == 201, response.text
    url = response.headers["Location"]
    assert patch(client, alice, url, 0, data).status_code == 204
    file_id = url.rsplit("/", 1)[1]
    assert ready_file(app, client, alice, file_id)["content_type"] == "text/plain"
    original = client.get(
        f"/api/v1/files/{file_id}/content", params={"format": "original"}, headers=alice.headers
    )
    assert original.status_code == 200
    assert original.headers["content-type"].startswith("text/plain")
    assert "x-injected" not in original.headers
