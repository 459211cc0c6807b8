"""A new file whose name is taken (issue 23, item 1): refused by default in one sentence,
or, as the client asks (`on_conflict`, tus `onConflict`), renamed by the server or put in
the old file's place in one transaction."""

from __future__ import annotations

import dataclasses
import threading

import httpx
import pytest

from tests.handlers.test_tus import OCTETS, TUS, metadata
from tests.helpers import Account, assert_problem, run_jobs, upload

MIB = 1024 * 1024


def names(client, account: Account) -> list[str]:
    listed = client.get("/api/v1/files?limit=100", headers=account.headers)
    assert listed.status_code == 200, listed.text
    return sorted(file["name"] for file in listed.json()["items"])


def tus_create(client, account: Account, length: int, filename: str, **extra: str):
    return client.post(
        "/api/v1/uploads",
        headers={
            **account.headers,
            **TUS,
            "Upload-Length": str(length),
            "Upload-Metadata": metadata(filename, **extra),
        },
    )


def tus_finish(client, account: Account, location: str, data: bytes) -> None:
    done = client.patch(
        location,
        headers={**account.headers, **TUS, **OCTETS, "Upload-Offset": "0"},
        content=data,
    )
    assert done.status_code == 204, done.text


def test_a_taken_name_is_refused_in_one_plain_sentence(client, alice):
    assert upload(client, alice, b"old", filename="big-50MB.bin").status_code == 202
    for refused in (
        upload(client, alice, b"new", filename="big-50MB.bin"),
        tus_create(client, alice, 3, "big-50MB.bin"),
    ):
        body = assert_problem(refused, 409)
        assert body["detail"] == "You already have a file named 'big-50MB.bin'."
        assert body["taken_by"] == "file"
    assert names(client, alice) == ["big-50MB.bin"]


def test_rename_keeps_both_with_the_next_free_number(client, alice):
    for content in (b"one", b"two", b"three"):
        answer = upload(client, alice, content, filename="photo.jpg", on_conflict="rename")
        assert answer.status_code == 202, answer.text
    assert names(client, alice) == ["photo (1).jpg", "photo (2).jpg", "photo.jpg"]
    # Over tus too: an unfinished upload's name counts as taken, so it is skipped.
    first = tus_create(client, alice, 3, "photo.jpg", onConflict="rename")
    second = tus_create(client, alice, 3, "photo.jpg", onConflict="rename")
    assert first.status_code == second.status_code == 201
    tus_finish(client, alice, second.headers["Location"], b"222")
    tus_finish(client, alice, first.headers["Location"], b"111")
    assert names(client, alice) == [
        "photo (1).jpg",
        "photo (2).jpg",
        "photo (3).jpg",
        "photo (4).jpg",
        "photo.jpg",
    ]
    created = client.get(
        f"/api/v1/files/{second.headers['Location'].rsplit('/', 1)[1]}", headers=alice.headers
    )
    assert created.json()["name"] == "photo (4).jpg"


def test_multipart_replace_puts_the_new_file_in_the_old_ones_place(client, app, alice):
    old = upload(client, alice, b"the old bytes", filename="report.pdf").json()["id"]
    run_jobs(app)
    new = upload(client, alice, b"new", filename="report.pdf", on_conflict="replace")
    assert new.status_code == 202, new.text
    assert new.json()["name"] == "report.pdf"
    assert names(client, alice) == ["report.pdf"]
    assert client.get(f"/api/v1/files/{old}", headers=alice.headers).status_code == 404
    usage = client.get("/api/v1/users/me", headers=alice.headers).json()["usage"]
    assert (usage["file_count"], usage["bytes_stored"]) == (1, 3)


def test_a_tus_replace_leaves_the_old_file_until_its_last_byte_lands(client, app, alice):
    old = upload(client, alice, b"the old bytes", filename="report.pdf").json()["id"]
    run_jobs(app)
    started = tus_create(client, alice, 6, "report.pdf", onConflict="replace")
    assert started.status_code == 201, started.text
    location = started.headers["Location"]
    half = client.patch(
        location, headers={**alice.headers, **TUS, **OCTETS, "Upload-Offset": "0"}, content=b"new"
    )
    assert half.status_code == 204
    # Half-way, the old file is still there, whole.
    assert client.get(f"/api/v1/files/{old}", headers=alice.headers).status_code == 200
    last = client.patch(
        location, headers={**alice.headers, **TUS, **OCTETS, "Upload-Offset": "3"}, content=b"!!!"
    )
    assert last.status_code == 204, last.text
    assert names(client, alice) == ["report.pdf"]
    assert client.get(f"/api/v1/files/{old}", headers=alice.headers).status_code == 404
    new_id = location.rsplit("/", 1)[1]
    assert client.get(f"/api/v1/files/{new_id}", headers=alice.headers).json()["size"] == 6


def test_replace_does_not_replace_a_folder_or_an_upload_on_its_way(client, alice):
    folder = client.post("/api/v1/folders", headers=alice.headers, json={"name": "notes"})
    assert folder.status_code == 201, folder.text
    refused = upload(client, alice, b"x", filename="notes", on_conflict="replace")
    assert assert_problem(refused, 409)["taken_by"] == "folder"
    assert tus_create(client, alice, 3, "draft.txt").status_code == 201
    refused = upload(client, alice, b"x", filename="draft.txt", on_conflict="replace")
    body = assert_problem(refused, 409)
    assert body["taken_by"] == "upload"
    assert (
        body["detail"]
        == "An upload named 'draft.txt' is already on its way there; finish or discard it first."
    )


@pytest.mark.parametrize("field", ["sideways", "RENAME"])
def test_an_unknown_rule_is_400_in_words(client, alice, field):
    detail = assert_problem(upload(client, alice, b"x", on_conflict=field), 400)["detail"]
    assert (
        detail
        == "What to do with a taken name (on_conflict) must be one of: refuse, rename, replace."
    )
    detail = assert_problem(tus_create(client, alice, 1, "a.txt", onConflict=field), 400)["detail"]
    assert detail == "The onConflict of Upload-Metadata must be one of: refuse, rename, replace."


def test_uploads_of_one_name_at_once_each_get_a_name_of_their_own(live, carol):
    """Eight creations of `clip.mp4` racing on separate connections (a real server, each
    request its own transaction): the owner's lock hands out eight names, none twice."""
    answers: list[httpx.Response] = []
    start = threading.Barrier(8)

    def create() -> None:
        with httpx.Client(base_url=live.url, timeout=30) as http:
            start.wait()
            answers.append(
                http.post(
                    "/api/v1/uploads",
                    headers={
                        **carol.headers,
                        **TUS,
                        "Upload-Length": "5",
                        "Upload-Metadata": metadata("clip.mp4", onConflict="rename"),
                    },
                )
            )

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a.status_code for a in answers) == [201] * 8, [a.text for a in answers]
    listed = live.http.get("/api/v1/uploads", headers=carol.headers).json()["items"]
    expected = ["clip.mp4", *(f"clip ({n}).mp4" for n in range(1, 8))]
    assert sorted(u["name"] for u in listed) == sorted(expected)


def test_the_quota_and_the_size_limit_are_said_in_units(make_app, settings, make_account):
    """Not "This upload of 50000000 bytes would exceed your storage quota (0 of 20000000
    bytes used or reserved).." (issue 23, item 3)."""
    limited = dataclasses.replace(settings, quota_bytes=20 * MIB, max_upload_bytes=64 * MIB)
    account = make_account()
    with make_app(limited).test_client() as client:
        over = assert_problem(tus_create(client, account, 50 * MIB, "big.bin"), 413)
        assert over["detail"] == "50 MiB is more than the 20 MiB you have left."
        assert tus_create(client, account, 15 * MIB, "part.bin").status_code == 201
        over = assert_problem(tus_create(client, account, 5 * MIB + 1, "more.bin"), 413)
        assert over["detail"] == (
            "5.0 MiB (5,242,881 bytes) is more than the 5.0 MiB (5,242,880 bytes) you have left."
        )
        huge = assert_problem(tus_create(client, account, 65 * MIB, "huge.bin"), 413)
        assert huge["detail"] == "A file may be at most 64 MiB; this one is 65 MiB."
