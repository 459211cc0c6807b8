"""Folders over HTTP: make, read, rename, move, delete; names per folder; file moves.

In the test's transaction (rolled back at its end), on local storage: what storage does
is in test_folder_delete.py; races, on committed rows, in test_races.py.
"""

from __future__ import annotations

import unicodedata
import uuid

import pytest

from tests.helpers import assert_problem, upload

API = "/api/v1"


@pytest.fixture
def client(local_client):
    return local_client


def mkdir(client, account, name: str, parent: str | None = None, status: int = 201) -> dict:
    body = {"name": name} if parent is None else {"name": name, "parent_id": parent}
    made = client.post(f"{API}/folders", json=body, headers=account.headers)
    assert made.status_code == status, made.text
    return made.json()


def patch_folder(client, account, folder_id: str, **body):
    return client.patch(f"{API}/folders/{folder_id}", json=body, headers=account.headers)


def put_file(client, account, filename: str, folder: str | None = None, **form) -> dict:
    if folder is not None:
        form["folder_id"] = folder
    made = upload(client, account, b"x", filename=filename, **form)
    assert made.status_code == 202, made.text
    return made.json()


def test_a_folder_is_made_read_renamed_and_moved(client, alice):
    photos = mkdir(client, alice, "photos")
    assert set(photos) == {"id", "name", "parent_id", "created_at", "updated_at"}
    assert photos["name"] == "photos" and photos["parent_id"] is None
    year = mkdir(client, alice, "2024", photos["id"])
    day = mkdir(client, alice, "05-17", year["id"])

    read = client.get(f"{API}/folders/{day['id']}", headers=alice.headers)
    assert read.status_code == 200, read.text
    assert read.json()["ancestors"] == [
        {"id": photos["id"], "name": "photos"},
        {"id": year["id"], "name": "2024"},
    ]
    assert read.json()["parent_id"] == year["id"]
    etag = read.headers["ETag"]

    renamed = patch_folder(client, alice, year["id"], name="Year 2024")
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "Year 2024"
    # Moved to the root: its ancestors are gone, its contents come along.
    moved = client.patch(
        f"{API}/folders/{day['id']}",
        json={"parent_id": None},
        headers={**alice.headers, "If-Match": etag},
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["parent_id"] is None
    assert client.get(f"{API}/folders/{day['id']}", headers=alice.headers).json()["ancestors"] == []
    stale = client.patch(
        f"{API}/folders/{day['id']}",
        json={"name": "again"},
        headers={**alice.headers, "If-Match": etag},
    )
    assert_problem(stale, 412)
    made = client.post(f"{API}/folders", json={"name": "x"}, headers=alice.headers)
    assert made.headers["Location"] == f"{API}/folders/{made.json()['id']}"


@pytest.mark.parametrize(
    "target",
    ["itself", "child", "grandchild"],
)
def test_a_folder_cannot_move_into_itself_or_below_it(client, alice, target):
    top = mkdir(client, alice, "top")
    child = mkdir(client, alice, "child", top["id"])
    grandchild = mkdir(client, alice, "grandchild", child["id"])
    into = {"itself": top, "child": child, "grandchild": grandchild}[target]
    refused = patch_folder(client, alice, top["id"], parent_id=into["id"])
    body = assert_problem(refused, 409)
    assert body["detail"] == "A folder cannot be moved into itself or into a folder inside it."
    # Nothing moved.
    assert (
        client.get(f"{API}/folders/{top['id']}", headers=alice.headers).json()["parent_id"] is None
    )
    # Sideways and up are fine.
    other = mkdir(client, alice, "other")
    assert patch_folder(client, alice, grandchild["id"], parent_id=other["id"]).status_code == 200
    assert patch_folder(client, alice, top["id"], parent_id=other["id"]).status_code == 200


def test_names_are_unique_per_folder_across_files_and_folders(client, alice):
    docs = mkdir(client, alice, "docs")
    # The same name in two folders is fine, for folders and files alike.
    mkdir(client, alice, "notes")
    mkdir(client, alice, "notes", docs["id"])
    put_file(client, alice, "a.txt")
    put_file(client, alice, "a.txt", docs["id"])

    # Folder against folder, folder against file, file against folder.
    clash = assert_problem(
        client.post(f"{API}/folders", json={"name": "notes"}, headers=alice.headers), 409
    )
    assert clash["detail"] == "You already have a folder named 'notes' in that folder."
    clash = assert_problem(
        client.post(f"{API}/folders", json={"name": "a.txt"}, headers=alice.headers), 409
    )
    assert clash["detail"] == "You already have a file named 'a.txt'."
    refused = upload(client, alice, b"x", filename="notes")
    assert "folder named 'notes'" in assert_problem(refused, 409)["detail"]
    refused = upload(client, alice, b"x", filename="notes", folder_id=docs["id"])
    assert_problem(refused, 409)

    # The NFC rule holds per folder: a decomposed spelling is the same name.
    mkdir(client, alice, "café", docs["id"])
    decomposed = unicodedata.normalize("NFD", "café")
    assert decomposed != "café"
    assert_problem(
        client.post(
            f"{API}/folders",
            json={"name": decomposed, "parent_id": docs["id"]},
            headers=alice.headers,
        ),
        409,
    )
    assert_problem(upload(client, alice, b"x", filename=decomposed, folder_id=docs["id"]), 409)
    mkdir(client, alice, decomposed)  # elsewhere it is free, and stored in NFC
    names = [e["name"] for e in entries(client, alice)["items"]]
    assert names.count("café") == 1

    # Renames and moves meet the same rule.
    other = mkdir(client, alice, "other", docs["id"])
    assert_problem(patch_folder(client, alice, other["id"], name="notes"), 409)
    assert_problem(patch_folder(client, alice, other["id"], name="a.txt"), 409)
    root_notes = next(e for e in entries(client, alice)["items"] if e["name"] == "notes")
    assert_problem(patch_folder(client, alice, root_notes["id"], parent_id=docs["id"]), 409)


def test_bad_names_and_unknown_folders(client, alice, bob):
    refused = client.post(f"{API}/folders", json={"name": "a/b"}, headers=alice.headers)
    assert_problem(refused, 400)
    refused = client.post(f"{API}/folders", json={"name": "trailing."}, headers=alice.headers)
    assert "end with a dot" in assert_problem(refused, 400)["detail"]
    nowhere = str(uuid.uuid4())
    refused = client.post(
        f"{API}/folders", json={"name": "x", "parent_id": nowhere}, headers=alice.headers
    )
    assert assert_problem(refused, 404)["detail"] == f"There is no folder {nowhere}."
    # Bob's folders are as absent to Alice as folders that never were.
    bobs = mkdir(client, bob, "private")
    for response in (
        client.get(f"{API}/folders/{bobs['id']}", headers=alice.headers),
        patch_folder(client, alice, bobs["id"], name="mine"),
        client.delete(f"{API}/folders/{bobs['id']}", headers=alice.headers),
        client.get(f"{API}/entries", params={"folder_id": bobs["id"]}, headers=alice.headers),
        client.get(f"{API}/files", params={"folder_id": bobs["id"]}, headers=alice.headers),
        client.post(
            f"{API}/folders", json={"name": "x", "parent_id": bobs["id"]}, headers=alice.headers
        ),
        upload(client, alice, b"x", filename="x", folder_id=bobs["id"]),
    ):
        assert_problem(response, 404)
    alices = mkdir(client, alice, "mine")
    assert_problem(patch_folder(client, alice, alices["id"], parent_id=bobs["id"]), 404)
    empty = client.patch(f"{API}/folders/{alices['id']}", json={}, headers=alice.headers)
    assert_problem(empty, 400)


# --- listing -----------------------------------------------------------------------------


def entries(client, account, folder: str | None = None, **query) -> dict:
    params = {"limit": 100, **query}
    if folder is not None:
        params["folder_id"] = folder
    page = client.get(f"{API}/entries", params=params, headers=account.headers)
    assert page.status_code == 200, page.text
    return page.json()


def walk(client, account, folder: str | None, sort: str, limit: int) -> tuple[list[dict], set]:
    """Every entry of a folder, page by page; and the totals the pages reported."""
    items, totals, cursor = [], set(), None
    while True:
        query = {"sort": sort, "limit": limit, **({"cursor": cursor} if cursor else {})}
        page = entries(client, account, folder, **query)
        assert len(page["items"]) <= limit
        items += page["items"]
        totals.add(page["total"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items, totals


@pytest.mark.parametrize("limit", [1, 3, 4, 100])
@pytest.mark.parametrize("sort", ["name", "-name", "created_at", "-created_at"])
def test_a_folder_lists_its_folders_then_its_files_in_every_order(client, alice, sort, limit):
    box = mkdir(client, alice, "box")
    made = [mkdir(client, alice, name, box["id"]) for name in ("b-dir", "a-dir", "c-dir")]
    files = [put_file(client, alice, name, box["id"]) for name in ("z.txt", "m.txt", "0.txt", "y")]
    put_file(client, alice, "elsewhere.txt")  # at the root: not in the box
    mkdir(client, alice, "inner", made[0]["id"])  # one level down: not listed

    items, totals = walk(client, alice, box["id"], sort, limit)
    assert totals == {7}
    kinds = [e["kind"] for e in items]
    assert kinds == ["folder"] * 3 + ["file"] * 4
    key = sort.removeprefix("-")
    for group, expected in ((items[:3], made), (items[3:], files)):
        want = sorted(expected, key=lambda e: (e[key], e["id"]), reverse=sort.startswith("-"))
        assert [e["id"] for e in group] == [e["id"] for e in want]
    assert set(items[3]) == {"kind", "shared", *files[0]}  # a File, its kind, and its mark
    assert all(e["folder_id"] == box["id"] for e in items[3:])

    page = entries(client, alice, box["id"])
    assert page["folder"]["id"] == box["id"] and page["ancestors"] == []
    inner = entries(client, alice, made[0]["id"])
    assert inner["ancestors"] == [{"id": box["id"], "name": "box"}]
    assert inner["total"] == 1 and inner["items"][0]["name"] == "inner"
    root = entries(client, alice)
    assert root["folder"] is None and root["ancestors"] == []
    assert {e["name"] for e in root["items"]} == {"box", "elsewhere.txt"}
    assert entries(client, alice, "root")["items"] == root["items"]


def test_an_empty_folder_and_a_bad_cursor(client, alice):
    empty = mkdir(client, alice, "empty")
    page = entries(client, alice, empty["id"])
    assert (page["items"], page["total"], page["next_cursor"]) == ([], 0, None)
    mkdir(client, alice, "one", empty["id"])
    mkdir(client, alice, "two", empty["id"])
    first = entries(client, alice, empty["id"], limit=1)
    other_sort = client.get(
        f"{API}/entries",
        params={"folder_id": empty["id"], "cursor": first["next_cursor"], "sort": "-name"},
        headers=alice.headers,
    )
    assert "start again" in assert_problem(other_sort, 400)["detail"]
    garbage = client.get(f"{API}/entries", params={"cursor": "bm90IGpzb24"}, headers=alice.headers)
    assert_problem(garbage, 400)


def test_get_files_lists_every_folder_or_one(client, alice):
    docs = mkdir(client, alice, "docs")
    sub = mkdir(client, alice, "sub", docs["id"])
    # The same name in three folders: the name order pages through all of them.
    at_root = put_file(client, alice, "same.txt")
    in_docs = put_file(client, alice, "same.txt", docs["id"])
    in_sub = put_file(client, alice, "same.txt", sub["id"])
    other = put_file(client, alice, "other.txt", docs["id"])

    def listing(**query) -> tuple[list[str], int]:
        ids, cursor, total = [], None, None
        while True:
            params = {"limit": 1, **query, **({"cursor": cursor} if cursor else {})}
            page = client.get(f"{API}/files", params=params, headers=alice.headers)
            assert page.status_code == 200, page.text
            ids += [f["id"] for f in page.json()["items"]]
            total = page.json()["total"]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                return ids, total

    everything = {at_root["id"], in_docs["id"], in_sub["id"], other["id"]}
    for sort in ("name", "-name", "created_at", "-created_at"):
        ids, total = listing(sort=sort)
        assert sorted(ids) == sorted(everything) and total == 4
    ids, total = listing(folder_id=docs["id"], sort="name")
    assert ids == [other["id"], in_docs["id"]] and total == 2
    ids, total = listing(folder_id="root")
    assert ids == [at_root["id"]] and total == 1
    ids, total = listing(folder_id=docs["id"], status="ready")
    assert (ids, total) == ([], 0)
    listed = client.get(f"{API}/files", headers=alice.headers).json()["items"]
    assert {f["folder_id"] for f in listed} == {None, docs["id"], sub["id"]}


def test_a_file_moves_between_folders(client, alice):
    docs = mkdir(client, alice, "docs")
    file = put_file(client, alice, "report.pdf")
    moved = client.patch(
        f"{API}/files/{file['id']}", json={"folder_id": docs["id"]}, headers=alice.headers
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["folder_id"] == docs["id"] and moved.json()["name"] == "report.pdf"
    assert [e["id"] for e in entries(client, alice, docs["id"])["items"]] == [file["id"]]
    # Moved and renamed at once, back to the root.
    back = client.patch(
        f"{API}/files/{file['id']}",
        json={"folder_id": None, "name": "final.pdf"},
        headers={**alice.headers, "If-Match": moved.headers["ETag"]},
    )
    assert back.status_code == 200, back.text
    assert (back.json()["folder_id"], back.json()["name"]) == (None, "final.pdf")
    # Into a folder holding the name (a file, or a folder), into nowhere.
    put_file(client, alice, "final.pdf", docs["id"])
    refused = client.patch(
        f"{API}/files/{file['id']}", json={"folder_id": docs["id"]}, headers=alice.headers
    )
    assert assert_problem(refused, 409)["detail"] == "You already have a file named 'final.pdf'."
    mkdir(client, alice, "plans")
    refused = client.patch(
        f"{API}/files/{file['id']}", json={"name": "plans"}, headers=alice.headers
    )
    assert "folder named 'plans'" in assert_problem(refused, 409)["detail"]
    nowhere = str(uuid.uuid4())
    refused = client.patch(
        f"{API}/files/{file['id']}", json={"folder_id": nowhere}, headers=alice.headers
    )
    assert_problem(refused, 404)
    assert_problem(client.patch(f"{API}/files/{file['id']}", json={}, headers=alice.headers), 400)


# --- uploads with a relative path --------------------------------------------------------


def test_a_multipart_upload_makes_the_folders_of_its_relative_path(client, alice):
    base = mkdir(client, alice, "trip")
    first = put_file(client, alice, "ignored.jpg", base["id"], relative_path="photos/2024/a.jpg")
    assert first["name"] == "a.jpg"
    second = put_file(client, alice, "b.jpg", base["id"], relative_path="photos/2024/b.jpg")
    named = put_file(
        client, alice, "c.jpg", base["id"], relative_path="photos/c.jpg", name="renamed.jpg"
    )
    assert named["name"] == "renamed.jpg"
    photos = entries(client, alice, base["id"])["items"]
    assert [(e["kind"], e["name"]) for e in photos] == [("folder", "photos")]
    inside = entries(client, alice, photos[0]["id"])["items"]
    assert [(e["kind"], e["name"]) for e in inside] == [("folder", "2024"), ("file", "renamed.jpg")]
    year = entries(client, alice, inside[0]["id"])
    assert [e["id"] for e in year["items"]] == [first["id"], second["id"]]
    assert [a["name"] for a in year["ancestors"]] == ["trip", "photos"]
    # At the root without a folder_id; a Windows path's separators count too.
    win = put_file(client, alice, "x", relative_path="dir\\sub\\w.txt")
    folder = client.get(f"{API}/folders/{win['folder_id']}", headers=alice.headers).json()
    assert folder["name"] == "sub" and [a["name"] for a in folder["ancestors"]] == ["dir"]


@pytest.mark.parametrize(
    ("path", "detail"),
    [
        ("../escape.txt", "'..'"),
        ("a/../b.txt", "'..'"),
        ("bad\u202edir/x.txt", "relative path"),
        ("/".join(["d"] * 33) + "/x", "at most 32 folders"),
    ],
)
def test_a_bad_relative_path_is_refused(client, alice, path, detail):
    refused = upload(client, alice, b"x", filename="x.txt", relative_path=path)
    assert detail in assert_problem(refused, 400)["detail"]
    assert entries(client, alice)["total"] == 0


def test_a_file_in_the_way_of_a_relative_path_is_a_conflict(client, alice):
    put_file(client, alice, "photos")
    refused = upload(client, alice, b"x", filename="a.jpg", relative_path="photos/a.jpg")
    body = assert_problem(refused, 409)
    assert body["detail"] == "A file named 'photos' is where the upload's folder 'photos' would go."
    assert entries(client, alice)["total"] == 1
