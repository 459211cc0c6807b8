"""The owner's own ZIP of files and folders (POST /api/v1/download-grants, then the grant's
URL): made as a link's Download all is, through a grant a browser follows."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import pytest

from app.services import grants
from tests.handlers.test_multi_links import (
    RELEASE,
    a_release,
    folder,
    link,
    path_of,
    put,
    unzipped,
)
from tests.helpers import Account, assert_problem, run_jobs, wait_until

BASE = "http://testserver"
LETTER = b"Dear all,\n" * 2_000


def _items(*items: tuple[str, str]) -> list[dict]:
    return [{"kind": kind, "id": item_id} for kind, item_id in items]


def _grant(client, account, *items, **body):
    return client.post(
        "/api/v1/download-grants", headers=account.headers, json={"items": _items(*items), **body}
    )


def _path(made) -> str:
    assert made.status_code == 201, made.text
    url = made.json()["url"]
    assert url.startswith(BASE + "/api/v1/downloads/") and made.headers["Location"] == url
    return url[len(BASE) :]


def test_the_owner_downloads_a_folder_and_files_as_one_zip(
    local_client, local_app, alice, tmp_path
):
    ids = a_release(local_client, local_app, alice)
    letter = put(local_client, alice, "letter.txt", LETTER)
    run_jobs(local_app)
    pending = put(local_client, alice, "later.txt", b"not yet")  # its job is not run
    items = [("folder", ids["release"]), ("file", letter), ("file", pending)]

    made = _grant(local_client, alice, *items)
    path = _path(made)
    assert made.headers["Cache-Control"] == "no-store"
    body = made.json()
    assert (body["name"], body["ready_count"], body["pending_count"]) == ("3 items.zip", 4, 1)

    got = local_client.get(path)  # no Authorization header at all
    assert got.status_code == 200, got.text
    assert got.headers["Content-Type"] == "application/zip"
    assert got.headers["Content-Length"] == str(len(got.content))
    assert got.headers["Cache-Control"] == "private, no-store"
    assert 'filename="3 items.zip"' in got.headers["Content-Disposition"]
    # The folder's nested structure as entry paths (its empty docs/ too); the file not
    # ready is left out.
    assert unzipped(got.content, tmp_path) == {**RELEASE, "letter.txt": LETTER}

    # The same members give the same bytes as a link's Download all of the same items.
    share = link(local_client, alice, *items)
    assert local_client.get(path_of(share) + "/archive").content == got.content
    assert local_client.get(path).content == got.content

    # An interrupted download resumes, byte for byte; a changed selection starts over.
    etag = got.headers["ETag"]
    first = local_client.get(path, headers={"Range": "bytes=0-9999"})
    assert first.status_code == 206 and first.content == got.content[:10_000]
    rest = local_client.get(path, headers={"Range": "bytes=10000-", "If-Range": etag})
    assert rest.status_code == 206 and first.content + rest.content == got.content
    head = local_client.head(path)
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(got.content))
    run_jobs(local_app)  # later.txt is ready now: the same grant's ZIP holds it
    stale = local_client.get(path, headers={"Range": "bytes=10000-", "If-Range": etag})
    assert stale.status_code == 200 and stale.headers["ETag"] != etag
    assert unzipped(stale.content, tmp_path)["later.txt"] == b"not yet"


def test_one_folder_is_named_after_it(local_client, local_app, alice, tmp_path):
    ids = a_release(local_client, local_app, alice)
    made = _grant(local_client, alice, ("folder", ids["bin"]))
    assert made.json()["name"] == "bin.zip"
    got = local_client.get(_path(made))
    assert 'filename="bin.zip"' in got.headers["Content-Disposition"]
    assert unzipped(got.content, tmp_path) == {
        "bin/": b"/",
        "bin/tool": RELEASE["release/bin/tool"],
    }


def test_another_accounts_files_and_folders_are_not_found(local_client, local_app, alice, bob):
    mine = put(local_client, alice, "mine.txt", b"mine")
    theirs_file = put(local_client, bob, "theirs.txt", b"theirs")
    theirs_folder = folder(local_client, bob, "theirs")
    run_jobs(local_app)
    for items in (
        [("file", theirs_file)],
        [("folder", theirs_folder)],
        [("file", mine), ("file", theirs_file)],
        [("file", mine), ("folder", str(uuid.uuid4()))],
    ):
        refused = assert_problem(_grant(local_client, alice, *items), 404)
        assert items[-1][1] in refused["detail"]
    # A file id given as a folder's is no folder of yours either.
    assert_problem(_grant(local_client, alice, ("folder", mine)), 404)
    assert_problem(local_client.post("/api/v1/download-grants", json={"items": []}), 401)


def test_an_empty_or_oversized_selection_is_refused_with_a_sentence(local_client, alice):
    empty = assert_problem(_grant(local_client, alice), 400)
    assert empty["detail"] == "A ZIP needs at least one file or folder: the items are empty."
    missing = local_client.post("/api/v1/download-grants", headers=alice.headers, json={})
    assert assert_problem(missing, 400)["detail"].endswith(".")
    many = [("file", str(uuid.uuid4())) for _ in range(251)]
    too_many = assert_problem(_grant(local_client, alice, *many), 400)
    assert "250" in too_many["detail"]
    twice = str(uuid.uuid4())
    doubled = assert_problem(_grant(local_client, alice, ("file", twice), ("file", twice)), 400)
    assert "twice" in doubled["detail"]


def test_a_selection_with_nothing_ready_yet_is_not_ready(local_client, alice):
    pending = put(local_client, alice, "later.txt", b"not yet")
    refused = assert_problem(_grant(local_client, alice, ("file", pending)), 409)
    assert refused["detail"].endswith(".")


def test_an_empty_folder_is_a_zip_of_that_folder(local_client, alice, tmp_path):
    empty = folder(local_client, alice, "empty")
    got = local_client.get(_path(_grant(local_client, alice, ("folder", empty))))
    assert got.status_code == 200
    assert unzipped(got.content, tmp_path) == {"empty/": b"/"}


def test_a_selection_grant_expires(make_app, local_settings, alice):
    app = make_app(dataclasses.replace(local_settings, download_grant_seconds=1))
    with app.test_client() as client:
        letter = put(client, alice, "letter.txt", LETTER)
        run_jobs(app)
        made = _grant(client, alice, ("file", letter))
        path = _path(made)
        expires = dt.datetime.fromisoformat(made.json()["expires_at"])
        assert expires - dt.datetime.now(dt.UTC) <= dt.timedelta(seconds=1)
        wait_until(lambda: dt.datetime.now(dt.UTC) >= expires, 5, what="the grant expiring")
        assert assert_problem(client.get(path), 410)["reason"] == "expired"


def test_logout_ends_a_selection_grant_and_deleted_items_leave_it(
    local_client, local_app, tmp_path
):
    ada = Account.register(local_client)
    ids = a_release(local_client, local_app, ada)
    path = _path(_grant(local_client, ada, ("folder", ids["bin"]), ("file", ids["README"])))
    assert (
        local_client.delete(f"/api/v1/files/{ids['README']}", headers=ada.headers).status_code
        == 204
    )
    assert set(unzipped(local_client.get(path).content, tmp_path)) == {"bin/", "bin/tool"}
    assert local_client.post("/api/v1/users/logout", headers=ada.headers).status_code == 204
    assert assert_problem(local_client.get(path), 410)["reason"] == "revoked"


def test_a_selection_grant_says_exactly_its_items(local_settings):
    secret = local_settings.secret_key
    items = (("folder", uuid.uuid4()), ("file", uuid.uuid4()))
    grant = grants.Grant("selection", uuid.uuid4(), False, 1_000, 3, "jti", items)
    token = grants.encode(secret, grant)
    assert grants.decode(secret, token, now=999) == grant
    assert len(token) < 6144
    widest = dataclasses.replace(grant, items=items[:1] * grants.MAX_ITEMS)
    assert len(grants.encode(secret, widest)) <= 6144  # the spec's bound on a grant
    # The items are under the MAC: one fewer is no grant at all.
    shorter = grants.encode(secret, dataclasses.replace(grant, items=items[:1]))
    assert shorter != token
    with pytest.raises(grants.NotFound):
        grants.decode(secret, token[:-24] + shorter[-24:], now=999)
