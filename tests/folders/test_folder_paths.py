"""POST /folder-paths: a path's folders made as `mkdir -p` makes them (the web app's for a
dropped folder's empty subfolders, which no file's path names)."""

from __future__ import annotations

from tests.handlers.test_multi_links import folder, put
from tests.helpers import assert_problem


def _make(client, account, path, parent=None):
    body = {"path": path, **({"parent_id": parent} if parent else {})}
    return client.post("/api/v1/folder-paths", headers=account.headers, json=body)


def _names(client, account, folder_id=None) -> dict[str, str]:
    params = {"folder_id": folder_id} if folder_id else {}
    got = client.get("/api/v1/entries", headers=account.headers, params=params).json()
    return {item["name"]: item["id"] for item in got["items"]}


def test_a_path_makes_each_missing_folder_once(local_client, alice):
    trip = folder(local_client, alice, "trip")
    made = _make(local_client, alice, "day 3/empty/deeper", trip)
    assert made.status_code == 201, made.text
    deeper = made.json()
    assert deeper["name"] == "deeper" and made.headers["Location"].endswith(deeper["id"])
    day3 = _names(local_client, alice, trip)["day 3"]
    empty = _names(local_client, alice, day3)["empty"]
    assert _names(local_client, alice, empty) == {"deeper": deeper["id"]}
    # Again: the same folder, nothing new.
    again = _make(local_client, alice, "day 3/empty/deeper", trip)
    assert again.status_code == 200 and again.json()["id"] == deeper["id"]
    assert _make(local_client, alice, "day 3/other", trip).status_code == 201
    assert set(_names(local_client, alice, day3)) == {"empty", "other"}
    # At the root without a parent.
    assert _make(local_client, alice, "top").json()["parent_id"] is None


def test_a_path_is_refused_in_plain_sentences(local_client, alice, bob):
    put(local_client, alice, "notes", b"a file")
    clash = assert_problem(_make(local_client, alice, "notes/inner"), 409)
    assert "notes" in clash["detail"]
    for path in ("../up", "/", "a/" * 33 + "b"):
        assert assert_problem(_make(local_client, alice, path), 400)["detail"].endswith(".")
    theirs = folder(local_client, bob, "theirs")
    assert_problem(_make(local_client, alice, "x", theirs), 404)
    assert _names(local_client, alice).keys() == {"notes"}


def test_entries_by_exact_name_find_one_entry_in_one_request(local_client, alice):
    trip = folder(local_client, alice, "trip")
    for name in ("b", "a b", "ab", "Ab"):
        folder(local_client, alice, name, trip)
    cafe = put(local_client, alice, "caf\u00e9.txt", b"coffee", trip)

    def named(name: str) -> dict:
        got = local_client.get(
            "/api/v1/entries",
            headers=alice.headers,
            params={"folder_id": trip, "name": name, "limit": 1},
        )
        assert got.status_code == 200, got.text
        return got.json()

    found = named("ab")
    assert [(i["kind"], i["name"]) for i in found["items"]] == [("folder", "ab")]
    assert (found["total"], found["next_cursor"]) == (1, None)
    decomposed = named("cafe\u0301.txt")  # the other spelling of the same name
    assert [i["id"] for i in decomposed["items"]] == [cafe]
    assert named("AB")["items"] == [] and named("AB")["total"] == 0
    assert named("a\0b")["items"] == []  # no name holds NUL
    assert assert_problem(
        local_client.get("/api/v1/entries", headers=alice.headers, params={"name": ""}), 400
    )["detail"].endswith(".")
