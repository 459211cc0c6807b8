"""One user's files are invisible to another: 404 (never 403) on every file route."""

from __future__ import annotations

import uuid

import pytest

from tests.helpers import assert_problem, run_jobs, upload

FILES = "/api/v1/files"


@pytest.fixture
def alices_file(app, client, alice) -> dict:
    """A ready file of Alice's: every route would answer her with 200."""
    created = upload(client, alice, b"alice's secret\n" * 100, filename="secret.txt")
    assert created.status_code == 202, created.text
    assert run_jobs(app) == ["ready"]
    body = client.get(f"{FILES}/{created.json()['id']}", headers=alice.headers).json()
    assert body["status"] == "ready", body
    return body


def _as_seen_by(client, account, file_id):
    response = client.get(f"{FILES}/{file_id}", headers=account.headers)
    return response.status_code, response.json(), response.headers.get("ETag")


def test_another_users_file_is_404_on_every_route(client, storage, alice, bob, alices_file):
    file_id = alices_file["id"]
    status, before, etag = _as_seen_by(client, alice, file_id)
    assert status == 200
    archive = f"{alice.id}/{file_id}.zip"
    assert archive in set(storage.list(f"{alice.id}/"))

    def send_for(what: str, target: str):
        url = f"{FILES}/{target}"
        rename = {"name": "mine now.txt"}
        return {
            "get": lambda: client.get(url, headers=bob.headers),
            "rename": lambda: client.patch(url, headers=bob.headers, json=rename),
            "rename with her ETag": lambda: client.patch(
                url, headers={**bob.headers, "If-Match": etag}, json=rename
            ),
            "delete": lambda: client.delete(url, headers=bob.headers),
            "zip": lambda: client.get(f"{url}/content", headers=bob.headers),
            "original": lambda: client.get(f"{url}/content?format=original", headers=bob.headers),
        }[what]()

    for what in ("get", "rename", "rename with her ETag", "delete", "zip", "original"):
        response = send_for(what, file_id)
        assert response.status_code == 404, (what, response.status_code, response.text)
        body = assert_problem(response, 404)
        # The very answer for a file that never existed: nothing tells them apart.
        never_id = str(uuid.uuid4())
        never = send_for(what, never_id)
        assert never.status_code == 404
        assert {**body, "detail": body["detail"].replace(file_id, "?")} == {
            **never.json(),
            "detail": never.json()["detail"].replace(never_id, "?"),
        }

    head = client.head(f"{FILES}/{file_id}/content", headers=bob.headers)
    assert head.status_code == 404
    assert head.content == b""

    # Alice's file is exactly as it was, and still hers to download.
    status, after, etag_after = _as_seen_by(client, alice, file_id)
    assert (status, after, etag_after) == (200, before, etag)
    assert archive in set(storage.list(f"{alice.id}/"))
    zipped = client.get(f"{FILES}/{file_id}/content", headers=alice.headers)
    assert zipped.status_code == 200
    assert zipped.headers["content-type"] == "application/zip"
    # Bob's own folder got nothing.
    assert list(storage.list(f"{bob.id}/")) == []


def test_another_users_files_never_show_in_a_list(client, alice, bob, alices_file):
    assert upload(client, alice, b"pending one", filename="second.txt").status_code == 202
    for params in ({}, {"status": "ready"}, {"status": "pending"}, {"sort": "name"}):
        page = client.get(FILES, headers=bob.headers, params=params)
        assert page.status_code == 200
        assert page.json() == {"items": [], "next_cursor": None, "total": 0}
    assert client.get(FILES, headers=alice.headers).json()["total"] == 2


def test_names_do_not_clash_across_users(client, alice, bob, alices_file):
    # Bob may use the name of Alice's file; each sees only their own.
    mine = upload(client, bob, b"bob's", filename=alices_file["name"])
    assert mine.status_code == 202, mine.text
    assert mine.json()["id"] != alices_file["id"]
    bobs = client.get(FILES, headers=bob.headers).json()["items"]
    assert [f["id"] for f in bobs] == [mine.json()["id"]]
    alices = client.get(FILES, headers=alice.headers).json()["items"]
    assert [f["id"] for f in alices] == [alices_file["id"]]
