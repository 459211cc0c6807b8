"""GET /uploads (issue 23, item 2): the caller's unfinished resumable uploads, so that one
cut short by a reload or a closed tab can be seen, resumed or discarded."""

from __future__ import annotations

from tests.handlers.test_name_conflicts import tus_create, tus_finish
from tests.handlers.test_tus import OCTETS, TUS
from tests.helpers import assert_problem


def listed(client, account, **params):
    answer = client.get("/api/v1/uploads", headers=account.headers, params=params)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Cache-Control"] == "no-store"
    return answer.json()


def test_unfinished_uploads_are_listed_with_how_far_they_got(client, alice, bob):
    folder = client.post("/api/v1/folders", headers=alice.headers, json={"name": "trip"}).json()
    half = tus_create(client, alice, 50, "camera roll.mov", folderId=folder["id"])
    assert half.status_code == 201
    sent = client.patch(
        half.headers["Location"],
        headers={**alice.headers, **TUS, **OCTETS, "Upload-Offset": "0"},
        content=b"x" * 23,
    )
    assert sent.status_code == 204
    done = tus_create(client, alice, 3, "done.txt")
    tus_finish(client, alice, done.headers["Location"], b"abc")
    nested = tus_create(client, alice, 7, "a.jpg", relativePath="photos/2024/a.jpg")

    body = listed(client, alice)
    assert body["total"] == 2
    newest, oldest = body["items"]
    assert (newest["name"], newest["relative_dir"], newest["offset"]) == ("a.jpg", "photos/2024", 0)
    assert newest["url"] == nested.headers["Location"]
    assert {k: oldest[k] for k in ("name", "folder_id", "length", "offset", "url")} == {
        "name": "camera roll.mov",
        "folder_id": folder["id"],
        "length": 50,
        "offset": 23,
        "url": half.headers["Location"],
    }
    assert oldest["expires_at"] > oldest["created_at"]
    assert listed(client, bob) == {"items": [], "total": 0}
    assert [u["name"] for u in listed(client, alice, limit=1)["items"]] == ["a.jpg"]

    # Discarded (tus termination): it goes from the list and from the usage.
    gone = client.delete(half.headers["Location"], headers={**alice.headers, **TUS})
    assert gone.status_code == 204
    assert [u["name"] for u in listed(client, alice)["items"]] == ["a.jpg"]
    usage = client.get("/api/v1/users/me", headers=alice.headers).json()["usage"]
    assert usage["bytes_reserved"] == 7


def test_the_list_needs_a_token_and_a_sane_limit(client, alice):
    assert_problem(client.get("/api/v1/uploads"), 401)
    detail = assert_problem(
        client.get("/api/v1/uploads", headers=alice.headers, params={"limit": 0}), 400
    )["detail"]
    assert detail == "The limit query parameter must be at least 1."
