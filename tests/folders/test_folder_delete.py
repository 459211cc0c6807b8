"""Deleting a folder: everything under it goes, rows at once, objects after; and tus uploads
bound for folders (made when they complete, cancelled when their folder goes).

Each test runs on both storage backends (the `client` and `app` fixtures follow `backend`).
"""

from __future__ import annotations

import base64
import uuid

from sqlalchemy import func, select

from app.models import PendingDeletion
from app.services import folders
from tests.helpers import assert_problem, run_jobs, runtime, stored_keys, upload

API = "/api/v1"
TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {"Content-Type": "application/offset+octet-stream"}


def mkdir(client, account, name: str, parent: str | None = None) -> str:
    made = client.post(
        f"{API}/folders", json={"name": name, "parent_id": parent}, headers=account.headers
    )
    assert made.status_code == 201, made.text
    return made.json()["id"]


def put(client, account, name: str, content: bytes, folder: str | None = None) -> str:
    form = {"folder_id": folder} if folder else {}
    made = upload(client, account, content, filename=name, **form)
    assert made.status_code == 202, made.text
    return made.json()["id"]


def usage(client, account) -> dict:
    return client.get(f"{API}/users/me", headers=account.headers).json()["usage"]


def totals(client, account) -> dict[str | None, int]:
    """`total` of GET /files, by status filter: the counters the triggers keep."""
    out: dict[str | None, int] = {}
    for status in (None, "pending", "processing", "ready", "failed"):
        params = {"limit": 1, **({"status": status} if status else {})}
        out[status] = client.get(f"{API}/files", params=params, headers=account.headers).json()[
            "total"
        ]
    return out


def tus_metadata(**pairs: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in pairs.items())


def tus_create(client, account, length: int, **pairs: str):
    return client.post(
        f"{API}/uploads",
        headers={
            **account.headers,
            **TUS,
            "Upload-Length": str(length),
            "Upload-Metadata": tus_metadata(**pairs),
        },
    )


def tus_patch(client, account, url: str, offset: int, data: bytes):
    return client.patch(
        url,
        headers={**account.headers, **TUS, **OCTETS, "Upload-Offset": str(offset)},
        content=data,
    )


def test_a_folder_goes_with_everything_under_it_and_the_quota_frees_at_once(
    app, client, alice, session
):
    keep = put(client, alice, "keep.txt", b"k" * 100)
    top = mkdir(client, alice, "top")
    middle = mkdir(client, alice, "middle", top)
    bottom = mkdir(client, alice, "bottom", middle)
    for n, folder in enumerate([top, middle, bottom, bottom]):
        put(client, alice, f"f{n}.txt", b"data " * (n + 1) * 50, folder)
    assert run_jobs(app) == ["ready"] * 5
    put(client, alice, "pending.txt", b"p" * 30, middle)  # its job not run: still pending
    # A resumable upload on its way into the tree, half sent: its bytes reserved.
    started = tus_create(client, alice, 1000, filename="big.bin", folderId=middle)
    assert started.status_code == 201, started.text
    url = started.headers["Location"]
    assert tus_patch(client, alice, url, 0, b"u" * 400).status_code == 204
    assert usage(client, alice)["bytes_reserved"] == 1000
    assert totals(client, alice) == {
        None: 6,
        "pending": 1,
        "processing": 0,
        "ready": 5,
        "failed": 0,
    }

    deleted = client.delete(f"{API}/folders/{top}", headers=alice.headers)
    assert deleted.status_code == 204, deleted.text
    assert "content-type" not in deleted.headers and deleted.content == b""

    # Rows and counters at once.
    assert usage(client, alice) == {
        "file_count": 1,
        "bytes_stored": 100,
        "bytes_reserved": 0,
        "quota_bytes": usage(client, alice)["quota_bytes"],
    }
    assert totals(client, alice) == {
        None: 1,
        "pending": 0,
        "processing": 0,
        "ready": 1,
        "failed": 0,
    }
    for folder in (top, middle, bottom):
        assert_problem(client.get(f"{API}/folders/{folder}", headers=alice.headers), 404)
    entries = client.get(f"{API}/entries", headers=alice.headers).json()
    assert [e["id"] for e in entries["items"]] == [keep]
    # The upload went with it: its next PATCH finds nothing.
    assert_problem(tus_patch(client, alice, url, 400, b"u" * 600), 404)
    # Objects: a small folder's go right after the commit; nothing is left but keep.txt's.
    run_jobs(app)
    assert stored_keys(app, alice.id) == [f"{alice.id}/{keep}.zip"]
    assert session.scalar(select(func.count()).select_from(PendingDeletion)) == 0


def test_a_large_folder_leaves_its_objects_to_a_worker_job(app, client, alice, monkeypatch):
    monkeypatch.setattr(folders, "INLINE_FILES", 2)  # "large": more files than this
    box = mkdir(client, alice, "box")
    ids = [put(client, alice, f"{n}.txt", b"x" * 10, box) for n in range(4)]
    assert run_jobs(app) == ["ready"] * 4
    assert len(stored_keys(app, alice.id)) == 4

    assert client.delete(f"{API}/folders/{box}", headers=alice.headers).status_code == 204
    # The rows went at once; the objects wait for the job the delete sent.
    assert usage(client, alice)["file_count"] == 0
    for file_id in ids:
        assert_problem(client.get(f"{API}/files/{file_id}", headers=alice.headers), 404)
    assert len(stored_keys(app, alice.id)) == 4
    assert runtime(app).jobs.drains == 1
    run_jobs(app)
    assert stored_keys(app, alice.id) == []


def test_tus_uploads_land_in_the_folders_of_their_relative_path(app, client, alice):
    base = mkdir(client, alice, "trip")
    urls = []
    for name in ("a.jpg", "b.jpg"):
        made = tus_create(
            client,
            alice,
            5,
            folderId=base,
            relativePath=f"photos/2024/{name}",
            filetype="image/jpeg",
        )
        assert made.status_code == 201, made.text
        urls.append(made.headers["Location"])
    # The folders are made when an upload completes, not before.
    assert (
        client.get(f"{API}/entries", params={"folder_id": base}, headers=alice.headers).json()[
            "total"
        ]
        == 0
    )
    for url in urls:
        assert tus_patch(client, alice, url, 0, b"12345").status_code == 204
    photos = client.get(f"{API}/entries", params={"folder_id": base}, headers=alice.headers).json()
    assert [e["name"] for e in photos["items"]] == ["photos"]
    year = client.get(
        f"{API}/entries", params={"folder_id": photos["items"][0]["id"]}, headers=alice.headers
    ).json()["items"]
    assert [e["name"] for e in year] == ["2024"]
    files = client.get(
        f"{API}/entries", params={"folder_id": year[0]["id"]}, headers=alice.headers
    ).json()["items"]
    assert [(e["kind"], e["name"]) for e in files] == [("file", "a.jpg"), ("file", "b.jpg")]
    assert {e["id"] for e in files} == {u.rsplit("/", 1)[1] for u in urls}
    # `filename` names the file when given; the path gives the folders.
    made = tus_create(client, alice, 0, filename="named.txt", relativePath="docs/other.txt")
    assert made.status_code == 201, made.text
    file = client.get(
        f"{API}/files/{made.headers['Location'].rsplit('/', 1)[1]}", headers=alice.headers
    )
    assert file.json()["name"] == "named.txt" and file.json()["folder_id"] is not None


def test_tus_creation_checks_the_folder_and_the_path(client, alice):
    nowhere = str(uuid.uuid4())
    assert_problem(tus_create(client, alice, 5, filename="a", folderId=nowhere), 404)
    assert (
        "folder's id"
        in assert_problem(tus_create(client, alice, 5, filename="a", folderId="nope"), 400)[
            "detail"
        ]
    )
    assert_problem(tus_create(client, alice, 5, relativePath="../x"), 400)
    put(client, alice, "photos", b"x")
    refused = tus_create(client, alice, 5, relativePath="photos/a.jpg")
    assert (
        "is where the upload's folder 'photos' would go" in assert_problem(refused, 409)["detail"]
    )
    # The same name on its way to the same folder twice: the second waits its turn.
    box = mkdir(client, alice, "box")
    assert tus_create(client, alice, 5, filename="same", folderId=box).status_code == 201
    assert_problem(tus_create(client, alice, 5, filename="same", folderId=box), 409)
    assert tus_create(client, alice, 5, filename="same").status_code == 201  # another folder
    assert usage(client, alice)["bytes_reserved"] == 10


def test_an_upload_whose_path_was_blocked_meanwhile_is_cancelled_at_its_end(app, client, alice):
    made = tus_create(client, alice, 10, relativePath="later/x.bin")
    url = made.headers["Location"]
    assert tus_patch(client, alice, url, 0, b"12345").status_code == 204
    put(client, alice, "later", b"in the way")  # a file takes the folder's name meanwhile
    refused = tus_patch(client, alice, url, 5, b"67890")
    assert assert_problem(refused, 409)["detail"] == (
        "A file named 'later' is where the upload's folder 'later' would go. "
        "The upload was cancelled and its bytes removed."
    )
    assert usage(client, alice)["bytes_reserved"] == 0
    assert client.head(url, headers={**alice.headers, **TUS}).status_code == 404
    run_jobs(app)
    assert [k for k in stored_keys(app, alice.id) if "/uploads/" in k] == []
