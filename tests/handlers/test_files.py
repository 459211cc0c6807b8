"""The /upload_files and /files contract: upload, list, get, rename, delete, download."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import io
import json
import uuid
import zipfile
from urllib.parse import unquote

import pytest
import sqlalchemy as sa
import yaml

from app.handlers import files as handlers
from app.http.multipart import MAX_FIELD_BYTES
from app.models import User
from tests.factories import FileFactory
from tests.helpers import (
    FILE_FIELDS,
    ROOT,
    assert_problem,
    run_jobs,
    runtime,
    spooled_files,
    stored_keys,
    upload,
)

FILES = "/api/v1/files"
UPLOAD = "/api/v1/upload_files"
MAX_UPLOAD = 4096
QUOTA = 1000
BOUNDARY = "instashare-test-boundary"


@pytest.fixture
def limited_app(make_app, settings):
    """The backend's app with a small body limit and a small quota."""
    return make_app(dataclasses.replace(settings, max_upload_bytes=MAX_UPLOAD, quota_bytes=QUOTA))


@pytest.fixture
def limited(limited_app):
    with limited_app.test_client() as test_client:
        yield test_client


def _settings(app):
    return runtime(app).settings


def _files(client, account, **params):
    response = client.get(FILES, headers=account.headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def assert_nothing_stored(app, client, account):
    """After a refused upload: no object in the user's folder, no spool file, no row."""
    assert stored_keys(app, account.id) == []
    assert spooled_files(_settings(app)) == []
    assert _files(client, account)["total"] == 0


def multipart(*parts: tuple[str, str | None, bytes], boundary: str = BOUNDARY) -> bytes:
    """A multipart/form-data body from (field, filename, bytes) parts."""
    out = bytearray()
    for field, filename, data in parts:
        disposition = f'form-data; name="{field}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out)


MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


# Upload


def test_upload_answers_202_with_the_pending_file(app, client, make_account):
    account = make_account()
    content = b"some bytes\n" * 100
    response = upload(client, account, content, filename="notes.txt")
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == FILE_FIELDS
    assert response.headers["Location"] == f"{FILES}/{body['id']}"
    assert response.headers["ETag"]
    assert body["name"] == "notes.txt"
    assert body["status"] == "pending"
    assert body["size"] == len(content)
    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    # The client said application/octet-stream; the name says better.
    assert body["content_type"] == "text/plain"
    assert body["compressed_size"] is None
    assert body["processed_at"] is None
    assert body["error"] is None
    created = dt.datetime.fromisoformat(body["created_at"])
    assert abs((dt.datetime.now(dt.UTC) - created).total_seconds()) < 60
    # What Location names is the file, with the same ETag.
    got = client.get(response.headers["Location"], headers=account.headers)
    assert got.json() == body
    assert got.headers["ETag"] == response.headers["ETag"]
    # The bytes wait in the user's own folder; the spool file is gone.
    keys = stored_keys(app, account.id)
    assert len(keys) == 1 and body["id"] in keys[0], keys
    assert spooled_files(_settings(app)) == []


def test_upload_keeps_the_clients_specific_content_type(local_client, alice):
    response = local_client.post(
        UPLOAD,
        headers=alice.headers,
        files={"file": ("picture", b"\x89PNG\r\n\x1a\n", "image/png")},
    )
    assert response.status_code == 202, response.text
    assert response.json()["content_type"] == "image/png"


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\dir\\x.txt", "x.txt"),
        ("/abs/path/report.pdf", "report.pdf"),
        ("dir\\sub/mixed.txt", "mixed.txt"),
        ("  spaced.txt ", "spaced.txt"),
        ("résumé 📄.txt", "résumé 📄.txt"),
        ("..", "upload"),
    ],
)
def test_default_name_is_the_sanitised_client_filename(
    local_client, make_account, filename, expected
):
    account = make_account()
    response = upload(local_client, account, b"data", filename=filename)
    assert response.status_code == 202, response.text
    assert response.json()["name"] == expected
    assert [f["name"] for f in _files(local_client, account)["items"]] == [expected]


def test_upload_takes_an_explicit_name(local_client, alice):
    name = "chosen name é.md"
    response = upload(local_client, alice, b"data", filename="ignored.txt", name=name)
    assert response.status_code == 202, response.text
    assert response.json()["name"] == name
    assert response.json()["content_type"] == "text/markdown"


def test_upload_takes_a_255_character_name(local_client, alice):
    name = "x" * 255
    response = upload(local_client, alice, b"data", name=name)
    assert response.status_code == 202, response.text
    assert response.json()["name"] == name


def test_upload_refuses_a_name_already_taken(app, client, make_account):
    account = make_account()
    first = upload(client, account, b"one", filename="same.txt")
    assert first.status_code == 202
    assert_problem(upload(client, account, b"two", filename="same.txt"), 409)
    assert_problem(upload(client, account, b"three", filename="other.txt", name="same.txt"), 409)
    listing = _files(client, account)
    assert listing["total"] == 1
    assert listing["items"][0]["sha256"] == hashlib.sha256(b"one").hexdigest()
    assert stored_keys(app, account.id) == [f"tmp/{account.id}/uploads/{first.json()['id']}"]
    assert spooled_files(_settings(app)) == []


def test_names_are_per_user(local_client, alice, make_account):
    name = "shared.txt"
    assert upload(local_client, alice, b"a", name=name).status_code == 202
    assert upload(local_client, make_account(), b"b", name=name).status_code == 202


INVALID_NAMES = [
    "",
    ".",
    "..",
    "a/b",
    "/",
    "a\\b",
    "nul\x00byte",
    "tab\there",
    "line\nbreak",
    "bell\x07",
    "del\x7f",
    "c1\x85",
    "x" * 256,
]


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_upload_refuses_an_invalid_explicit_name(local_app, local_client, make_account, name):
    account = make_account()
    assert_problem(upload(local_client, account, b"data", name=name), 400)
    assert_nothing_stored(local_app, local_client, account)


def test_upload_refuses_two_files(app, client, make_account):
    account = make_account()
    response = client.post(
        UPLOAD,
        headers=account.headers,
        files=[("file", ("a.txt", b"aaa")), ("file", ("b.txt", b"bbb"))],
    )
    assert_problem(response, 400)
    assert_nothing_stored(app, client, account)


def test_upload_refuses_a_form_without_a_file(local_app, local_client, make_account):
    account = make_account()
    response = local_client.post(UPLOAD, headers=account.headers, files={"name": (None, b"x.txt")})
    assert_problem(response, 400)
    assert_nothing_stored(local_app, local_client, account)


def test_upload_refuses_an_unknown_form_field(local_app, local_client, make_account):
    account = make_account()
    assert_problem(upload(local_client, account, b"data", owner="someone-else"), 400)
    assert_nothing_stored(local_app, local_client, account)


@pytest.mark.parametrize(
    ("parts", "got"),
    [
        ([("data", "numbers.txt", b"1\n2\n3\n")], "data"),  # curl -F data=@numbers.txt
        ([("data", None, b"7" * (MAX_FIELD_BYTES + 1))], "data"),  # curl -F data=<big.txt
        ([("upload", None, b"small")], "upload"),
        ([("name", "numbers.txt", b"1\n2\n3\n")], "name"),  # curl -F name=@numbers.txt
        ([("name", None, b"n.txt"), ("data", "numbers.txt", b"1\n")], "data"),
    ],
)
def test_a_file_in_the_wrong_field_is_told_where_it_goes(
    local_app, local_client, make_account, parts, got
):
    account = make_account()
    response = local_client.post(
        UPLOAD, headers={**account.headers, **MULTIPART}, content=multipart(*parts)
    )
    body = assert_problem(response, 400)
    assert body["detail"] == f"Put the file in the form field 'file' (got '{got}')."
    assert_nothing_stored(local_app, local_client, account)


def test_an_unknown_field_beside_the_file_is_named(local_app, local_client, make_account):
    account = make_account()
    response = upload(local_client, account, b"data", owner="someone-else")
    assert assert_problem(response, 400)["detail"] == "Unknown form fields: owner."


def test_upload_refuses_a_part_without_a_field_name(local_app, local_client, make_account):
    account = make_account()
    body = (
        f"--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\nxyz\r\n--{BOUNDARY}--\r\n"
    ).encode()
    response = local_client.post(UPLOAD, headers={**account.headers, **MULTIPART}, content=body)
    assert_problem(response, 400)
    assert_nothing_stored(local_app, local_client, account)


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"file": "aGVsbG8="}', "application/json"),
        (b"hello", "application/octet-stream"),
        (b"file=hello", "application/x-www-form-urlencoded"),
    ],
)
def test_upload_must_be_multipart(local_app, local_client, alice, content, content_type):
    before = stored_keys(local_app, alice.id)
    response = local_client.post(
        UPLOAD, headers={**alice.headers, "Content-Type": content_type}, content=content
    )
    assert_problem(response, 415)
    assert stored_keys(local_app, alice.id) == before


def test_multipart_without_a_boundary_is_refused(local_app, local_client, make_account):
    account = make_account()
    response = local_client.post(
        UPLOAD,
        headers={**account.headers, "Content-Type": "multipart/form-data"},
        content=multipart(("file", "a.txt", b"abc")),
    )
    assert_problem(response, 400)
    assert_nothing_stored(local_app, local_client, account)


def test_upload_over_the_size_limit_is_refused_by_its_content_length(
    limited_app, limited, make_account
):
    account = make_account()
    response = upload(limited, account, b"x" * (MAX_UPLOAD + 1))
    assert int(response.request.headers["content-length"]) > MAX_UPLOAD
    assert assert_problem(response, 413)["limit"] == "body"
    assert_nothing_stored(limited_app, limited, account)


def _chunked(body: bytes, size: int):
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_chunked_upload_over_the_size_limit_is_refused(limited_app, limited, make_account):
    account = make_account()
    body = multipart(("file", "big.bin", b"x" * (MAX_UPLOAD * 2)))
    response = limited.post(
        UPLOAD, headers={**account.headers, **MULTIPART}, content=_chunked(body, 512)
    )
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert assert_problem(response, 413)["limit"] == "body"
    assert_nothing_stored(limited_app, limited, account)


def test_chunked_upload_under_the_limit_is_accepted(limited, make_account):
    account = make_account()
    content = b"y" * 700
    body = multipart(("file", "small.bin", content))
    response = limited.post(
        UPLOAD, headers={**account.headers, **MULTIPART}, content=_chunked(body, 100)
    )
    assert response.status_code == 202, response.text
    assert response.json()["size"] == len(content)
    assert response.json()["sha256"] == hashlib.sha256(content).hexdigest()


# The closing delimiter is "\r\n--BOUNDARY--\r\n": cut 3 leaves "--BOUNDARY-", cut 40 ends
# inside the file's bytes. (Cutting only the final CRLF leaves a complete body.)
@pytest.mark.parametrize("cut", [3, 40, 1500])
def test_a_body_cut_before_its_closing_boundary_is_refused(app, client, make_account, cut):
    account = make_account()
    body = multipart(("file", "cut.bin", b"z" * 2000))
    response = client.post(
        UPLOAD, headers={**account.headers, **MULTIPART}, content=body[: len(body) - cut]
    )
    assert_problem(response, 400)
    assert_nothing_stored(app, client, account)


def test_an_empty_file_is_accepted(app, client, make_account):
    account = make_account()
    response = upload(client, account, b"", filename="empty.txt")
    assert response.status_code == 202, response.text
    assert response.json()["size"] == 0
    assert response.json()["sha256"] == hashlib.sha256(b"").hexdigest()
    assert len(stored_keys(app, account.id)) == 1


def test_upload_without_a_token_is_refused_and_spools_nothing(local_app, local_client):
    response = local_client.post(UPLOAD, files={"file": ("a.txt", b"abc")})
    assert_problem(response, 401)
    assert spooled_files(_settings(local_app)) == []


# Quota


def test_upload_over_the_quota_is_refused(limited_app, limited, make_account):
    account = make_account()
    first = upload(limited, account, b"a" * 600, filename="first.bin")
    assert first.status_code == 202, first.text
    keys = stored_keys(limited_app, account.id)
    body = assert_problem(upload(limited, account, b"b" * 401, filename="second.bin"), 413)
    assert body["limit"] == "quota"
    assert stored_keys(limited_app, account.id) == keys
    assert spooled_files(_settings(limited_app)) == []
    assert _files(limited, account)["total"] == 1
    # What is left of the quota is still usable.
    assert upload(limited, account, b"c" * 400, filename="third.bin").status_code == 202


def test_a_single_file_over_the_quota_is_refused(limited_app, limited, make_account):
    account = make_account()
    body = assert_problem(upload(limited, account, b"q" * (QUOTA + 1)), 413)
    assert body["limit"] == "quota"
    assert_nothing_stored(limited_app, limited, account)


# List

NAMES = ["n4.txt", "n1.txt", "n6.txt", "n0.txt", "n3.txt", "n5.txt", "n2.txt"]
TOTAL = len(NAMES)


def _upload_named(client, account, names):
    ids = {}
    for name in names:
        response = upload(client, account, name.encode(), filename=name)
        assert response.status_code == 202, response.text
        ids[name] = response.json()["id"]
    return ids


@pytest.fixture
def seven(session, alice):
    """Alice with seven files (as rows) created in the order of NAMES; {name: id}.

    Each file's bytes are its name, as if uploaded: size and sha256 say so.
    """
    owner = session.get(User, uuid.UUID(alice.id))
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    ids = {}
    for n, name in enumerate(NAMES):
        created = start + dt.timedelta(seconds=n)
        file = FileFactory(
            owner=owner,
            name=name,
            size=len(name),
            sha256=hashlib.sha256(name.encode()).hexdigest(),
            created_at=created,
            updated_at=created,
        )
        ids[name] = str(file.id)
    return alice, ids


def _walk(client, account, **params) -> list[dict]:
    """Every item of every page, following next_cursor."""
    items, cursor = [], None
    for _ in range(TOTAL + 1):
        page = _files(client, account, **params, **({"cursor": cursor} if cursor else {}))
        assert page["total"] == TOTAL
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            assert len(page["items"]) <= params["limit"]
            return items
        assert len(page["items"]) == params["limit"]
    raise AssertionError("next_cursor never ran out")


def test_list_items_have_every_documented_field(local_client, seven):
    account, ids = seven
    page = _files(local_client, account)
    assert page["total"] == TOTAL
    assert page["next_cursor"] is None
    assert {item["id"] for item in page["items"]} == set(ids.values())
    for item in page["items"]:
        assert set(item) == FILE_FIELDS
        assert item["id"] == ids[item["name"]]
        assert item["size"] == len(item["name"])
        assert item["sha256"] == hashlib.sha256(item["name"].encode()).hexdigest()


@pytest.mark.parametrize("sort", ["name", "-name", "created_at", "-created_at"])
@pytest.mark.parametrize("limit", [1, 3, 7])
def test_pages_cover_every_file_once_in_order(local_client, seven, sort, limit):
    account, ids = seven
    got = [item["id"] for item in _walk(local_client, account, sort=sort, limit=limit)]
    assert len(got) == len(set(got)) == TOTAL
    if sort.lstrip("-") == "name":
        expected = [ids[name] for name in sorted(NAMES)]
    else:
        expected = [ids[name] for name in NAMES]  # the upload order
    assert got == (expected[::-1] if sort.startswith("-") else expected)


def test_default_order_is_newest_first(local_client, seven):
    account, ids = seven
    page = _files(local_client, account)
    assert [i["id"] for i in page["items"]] == [ids[n] for n in NAMES[::-1]]
    created = [dt.datetime.fromisoformat(i["created_at"]) for i in page["items"]]
    assert created == sorted(created, reverse=True)


def test_list_filters_by_status(local_client, make_account):
    account = make_account()
    ids = _upload_named(local_client, account, ["s1.txt", "s2.txt", "s3.txt"])
    pending = _files(local_client, account, status="pending", limit=2)
    assert pending["total"] == 3
    assert len(pending["items"]) == 2
    rest = _files(local_client, account, status="pending", limit=2, cursor=pending["next_cursor"])
    assert {i["id"] for i in pending["items"] + rest["items"]} == set(ids.values())
    for status in ("processing", "ready", "failed"):
        page = _files(local_client, account, status=status)
        assert page == {"items": [], "next_cursor": None, "total": 0}
    assert_problem(local_client.get(FILES, headers=account.headers, params={"status": "done"}), 400)


def test_list_of_a_new_account_is_empty(local_client, make_account):
    account = make_account()
    assert _files(local_client, account) == {"items": [], "next_cursor": None, "total": 0}


def _totals(client, account) -> dict[str, int]:
    """The `total` of a listing without a filter ("all") and with each status filter."""
    totals = {"all": _files(client, account, limit=1)["total"]}
    for status in ("pending", "processing", "ready", "failed"):
        totals[status] = _files(client, account, limit=1, status=status)["total"]
    return totals


def _counted(pending=0, processing=0, ready=0, failed=0) -> dict[str, int]:
    counts = {"pending": pending, "processing": processing, "ready": ready, "failed": failed}
    return {"all": sum(counts.values()), **counts}


def test_totals_follow_uploads_processing_failures_renames_and_deletes(
    local_app, local_client, make_account
):
    account = make_account()
    ids = _upload_named(local_client, account, ["a.txt", "b.txt", "c.txt"])
    tus = local_client.post(
        "/api/v1/uploads",
        headers={**account.headers, "Tus-Resumable": "1.0.0", "Upload-Length": "0",
                 "Upload-Metadata": "filename " + base64.b64encode(b"d.txt").decode()},
    )  # fmt: skip
    assert tus.status_code == 201, tus.text
    assert _totals(local_client, account) == _counted(pending=4)

    # c's staged bytes vanish: its job fails; the others become ready.
    runtime(local_app).storage.delete(f"tmp/{account.id}/uploads/{ids['c.txt']}")
    assert sorted(run_jobs(local_app)) == ["failed", "ready", "ready", "ready"]
    assert _totals(local_client, account) == _counted(ready=3, failed=1)

    renamed = local_client.patch(
        f"{FILES}/{ids['a.txt']}", headers=account.headers, json={"name": "a2.txt"}
    )
    assert renamed.status_code == 200, renamed.text
    assert _totals(local_client, account) == _counted(ready=3, failed=1)

    for name in ("b.txt", "c.txt"):
        gone = local_client.delete(f"{FILES}/{ids[name]}", headers=account.headers)
        assert gone.status_code == 204
    assert _totals(local_client, account) == _counted(ready=2)
    # The total is the same on every page, and the pages hold that many files.
    first = _files(local_client, account, limit=1)
    rest = _files(local_client, account, limit=1, cursor=first["next_cursor"])
    assert first["total"] == rest["total"] == 2
    assert rest["next_cursor"] is None


def test_the_listing_takes_the_specs_defaults():
    # GET /files is served without Flask (so without Connexion filling in defaults).
    spec = yaml.safe_load((ROOT / "swagger" / "openapi.yaml").read_text())
    parameters = spec["paths"]["/files"]["get"]["parameters"]
    defaults = {
        p["name"]: str(p["schema"]["default"])
        for p in parameters
        if "default" in p.get("schema", {})
    }
    assert defaults == handlers.LIST_DEFAULTS


def test_the_default_listing_is_twenty_newest_first(local_client, make_account):
    account = make_account()
    _upload_named(local_client, account, [f"d{n:02d}.txt" for n in range(21)])
    page = _files(local_client, account)
    assert [i["name"] for i in page["items"]] == [f"d{n:02d}.txt" for n in range(20, 0, -1)]
    assert page["next_cursor"] is not None and page["total"] == 21


def test_a_page_is_one_statement_and_counts_no_rows(local_client, seven, engine):
    """The total comes from the owner's counters, in the statement that reads the page."""
    account, _ = seven
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        for status in (None, "pending"):
            page = _files(local_client, account, limit=3, **({"status": status} if status else {}))
            assert page["total"] == TOTAL
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    pages = [s for s in statements if "FROM files" in s]
    assert len(pages) == 2, statements
    assert not any("count(" in s.lower() for s in statements), statements


@pytest.mark.parametrize("limit", ["0", "101", "-1", "ten", "1.5", ""])
def test_list_refuses_a_limit_out_of_range(local_client, alice, limit):
    assert_problem(local_client.get(FILES, headers=alice.headers, params={"limit": limit}), 400)


def test_list_takes_limits_1_and_100(local_client, seven):
    account, _ = seven
    assert len(_files(local_client, account, limit=1)["items"]) == 1
    assert len(_files(local_client, account, limit=100)["items"]) == TOTAL


def _cursor(data) -> str:
    """A cursor in the service's own encoding (base64url JSON), holding `data`."""
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


SOME_ID = str(uuid.UUID(int=0))


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "!!!!",
        "x" * 1025,
        _cursor({}),
        _cursor(None),
        _cursor([1, 2]),
        _cursor({"s": "-created_at", "v": 1, "id": "x"}),
        _cursor({"s": "-created_at", "v": "yesterday", "id": SOME_ID}),
        _cursor({"s": "-created_at", "v": "2024-01-01T00:00:00+00:00", "id": "x"}),
        # A date with no time zone, which the database column refuses.
        _cursor({"s": "-created_at", "v": "2024-01-01T00:00:00", "id": SOME_ID}),
    ],
)
def test_list_refuses_a_garbage_cursor(local_client, alice, cursor):
    response = local_client.get(FILES, headers=alice.headers, params={"cursor": cursor})
    assert_problem(response, 400)


@pytest.mark.parametrize("value", [5, None, "nul\x00", "\ud800 lone surrogate"])
def test_list_refuses_a_name_cursor_with_a_bad_value(local_client, alice, value):
    cursor = _cursor({"s": "name", "v": value, "id": SOME_ID})
    response = local_client.get(
        FILES, headers=alice.headers, params={"sort": "name", "cursor": cursor}
    )
    assert_problem(response, 400)


def test_a_cursor_only_works_with_its_own_sort(local_client, seven):
    account, _ = seven
    cursor = _files(local_client, account, sort="name", limit=2)["next_cursor"]
    assert cursor
    assert len(_files(local_client, account, sort="name", limit=2, cursor=cursor)["items"]) == 2
    for other in ("-name", "created_at", "-created_at"):
        response = local_client.get(
            FILES, headers=account.headers, params={"sort": other, "limit": 2, "cursor": cursor}
        )
        assert_problem(response, 400)


@pytest.mark.parametrize(
    "params", [{"page": "2"}, {"offset": "0"}, {"sort": "size"}, {"sort": "+name"}]
)
def test_list_refuses_unknown_query_parameters_and_values(local_client, alice, params):
    assert_problem(local_client.get(FILES, headers=alice.headers, params=params), 400)


# One file


def test_get_file_answers_the_file_with_its_etag(local_client, alice):
    created = upload(local_client, alice, b"abc", filename="a.txt")
    response = local_client.get(f"{FILES}/{created.json()['id']}", headers=alice.headers)
    assert response.status_code == 200
    assert response.json() == created.json()
    assert response.headers["ETag"] == created.headers["ETag"]


@pytest.mark.parametrize("file_id", ["not-a-uuid", "123", "00000000-0000-0000-0000-00000000000g"])
def test_file_routes_refuse_an_id_that_is_not_a_uuid(local_client, alice, file_id):
    assert_problem(local_client.get(f"{FILES}/{file_id}", headers=alice.headers), 400)
    assert_problem(local_client.get(f"{FILES}/{file_id}/content", headers=alice.headers), 400)
    assert_problem(
        local_client.patch(f"{FILES}/{file_id}", headers=alice.headers, json={"name": "x.txt"}), 400
    )


@pytest.mark.parametrize("path", ["abc%0A", "%F0%9D%B1%AE%21%0A/content", "x%7F/content", "%00"])
@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE"])
def test_a_path_with_control_characters_is_404_not_500(local_client, alice, path, method):
    response = local_client.request(method, f"{FILES}/{path}", headers=alice.headers)
    assert response.status_code == 404
    if method != "HEAD":
        assert_problem(response, 404)


def test_get_unknown_file_is_404(local_client, alice):
    assert_problem(local_client.get(f"{FILES}/{uuid.uuid4()}", headers=alice.headers), 404)


# Rename


@pytest.fixture
def two_files(local_client, alice):
    """Two of Alice's files, by their upload responses."""
    first = upload(local_client, alice, b"first", filename="first.txt")
    second = upload(local_client, alice, b"second", filename="second.txt")
    assert first.status_code == second.status_code == 202
    return first, second


def _rename(client, account, file_id, name, **headers):
    return client.patch(
        f"{FILES}/{file_id}", headers={**account.headers, **headers}, json={"name": name}
    )


def _get(client, account, file_id) -> dict:
    return client.get(f"{FILES}/{file_id}", headers=account.headers).json()


def test_rename_answers_the_renamed_file_with_a_new_etag(local_client, alice, two_files):
    first, _ = two_files
    file_id, old_name = first.json()["id"], first.json()["name"]
    new_name = "renamed é.txt"
    response = _rename(local_client, alice, file_id, new_name)
    assert response.status_code == 200, response.text
    assert response.json()["name"] == new_name
    assert response.json()["id"] == file_id
    assert response.headers["ETag"] != first.headers["ETag"]
    got = local_client.get(f"{FILES}/{file_id}", headers=alice.headers)
    assert got.json()["name"] == new_name
    assert got.headers["ETag"] == response.headers["ETag"]
    # The old name is free again.
    assert upload(local_client, alice, b"x", filename=old_name).status_code == 202


def test_rename_refuses_a_name_already_taken(local_client, alice, two_files):
    first, second = two_files
    assert_problem(_rename(local_client, alice, first.json()["id"], second.json()["name"]), 409)
    assert _get(local_client, alice, first.json()["id"]) == first.json()


def test_rename_to_its_own_name_changes_nothing(local_client, alice, two_files):
    first, _ = two_files
    response = _rename(local_client, alice, first.json()["id"], first.json()["name"])
    assert response.status_code == 200
    assert response.json() == first.json()
    assert response.headers["ETag"] == first.headers["ETag"]


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_rename_refuses_an_invalid_name(local_client, alice, two_files, name):
    first, _ = two_files
    assert_problem(_rename(local_client, alice, first.json()["id"], name), 400)
    assert _get(local_client, alice, first.json()["id"]) == first.json()


@pytest.mark.parametrize(
    "body", [{}, {"name": 5}, {"name": None}, {"name": "ok.txt", "status": "ready"}, []]
)
def test_rename_refuses_a_malformed_body(local_client, alice, two_files, body):
    first, _ = two_files
    response = local_client.patch(f"{FILES}/{first.json()['id']}", headers=alice.headers, json=body)
    assert_problem(response, 400)
    assert _get(local_client, alice, first.json()["id"]) == first.json()


def test_rename_with_a_body_that_is_not_utf8_is_400(local_client, alice, two_files):
    first, _ = two_files
    response = local_client.patch(
        f"{FILES}/{first.json()['id']}",
        headers={**alice.headers, "Content-Type": "application/json"},
        content=b'{"name": "caf\xe9.txt"}',
    )
    assert_problem(response, 400)
    assert _get(local_client, alice, first.json()["id"]) == first.json()


def test_rename_to_a_lone_surrogate_is_400(local_client, alice, two_files):
    # JSON can spell one; no database can store it.
    first, _ = two_files
    response = local_client.patch(
        f"{FILES}/{first.json()['id']}",
        headers={**alice.headers, "Content-Type": "application/json"},
        content=b'{"name": "half \\ud800 a character.txt"}',
    )
    assert_problem(response, 400)
    assert _get(local_client, alice, first.json()["id"]) == first.json()


def test_rename_with_a_stale_if_match_is_412_and_changes_nothing(local_client, alice, two_files):
    first, _ = two_files
    file_id, stale = first.json()["id"], first.headers["ETag"]
    current = _rename(local_client, alice, file_id, "one.txt")
    assert current.status_code == 200
    response = _rename(local_client, alice, file_id, "two.txt", **{"If-Match": stale})
    assert_problem(response, 412)
    got = local_client.get(f"{FILES}/{file_id}", headers=alice.headers)
    assert got.json() == current.json()
    assert got.headers["ETag"] == current.headers["ETag"]


def test_rename_with_the_current_if_match_succeeds(local_client, alice, two_files):
    first, _ = two_files
    file_id = first.json()["id"]
    etag = local_client.get(f"{FILES}/{file_id}", headers=alice.headers).headers["ETag"]
    name = "matched.txt"
    response = _rename(local_client, alice, file_id, name, **{"If-Match": etag})
    assert response.status_code == 200, response.text
    assert response.json()["name"] == name
    # The ETag just used is now stale.
    assert_problem(_rename(local_client, alice, file_id, "again.txt", **{"If-Match": etag}), 412)
    assert _get(local_client, alice, file_id)["name"] == name


def test_rename_unknown_file_is_404(local_client, alice):
    assert_problem(_rename(local_client, alice, uuid.uuid4(), "x.txt"), 404)


def test_rename_must_be_json(local_client, alice, two_files):
    first, _ = two_files
    response = local_client.patch(
        f"{FILES}/{first.json()['id']}",
        headers={**alice.headers, "Content-Type": "text/plain"},
        content=b'{"name": "x.txt"}',
    )
    assert_problem(response, 415)
    assert _get(local_client, alice, first.json()["id"]) == first.json()


# Delete


def test_delete_removes_the_file_and_its_stored_objects(app, client, make_account):
    account = make_account()
    first = upload(client, account, b"first", filename="first.txt").json()["id"]
    second = upload(client, account, b"second", filename="second.txt").json()["id"]
    assert any(first in key for key in stored_keys(app, account.id))
    response = client.delete(f"{FILES}/{first}", headers=account.headers)
    assert response.status_code == 204
    assert response.content == b""
    assert "Content-Type" not in response.headers  # no body, so no media type
    assert_problem(client.get(f"{FILES}/{first}", headers=account.headers), 404)
    assert not any(first in key for key in stored_keys(app, account.id))
    # The other file is untouched.
    assert any(second in key for key in stored_keys(app, account.id))
    assert [i["id"] for i in _files(client, account)["items"]] == [second]
    assert_problem(client.delete(f"{FILES}/{first}", headers=account.headers), 404)
    # Its name is free again.
    assert upload(client, account, b"again", filename="first.txt").status_code == 202


def test_delete_unknown_file_is_404(local_client, alice):
    assert_problem(local_client.delete(f"{FILES}/{uuid.uuid4()}", headers=alice.headers), 404)
    assert_problem(local_client.delete(f"{FILES}/not-a-uuid", headers=alice.headers), 400)


# Download


@pytest.mark.parametrize("query", ["", "?format=zip", "?format=original"])
def test_download_of_a_pending_file_is_409_with_retry_after(local_client, alice, query):
    file_id = upload(local_client, alice, b"abc", filename="p.txt").json()["id"]
    response = local_client.get(f"{FILES}/{file_id}/content{query}", headers=alice.headers)
    assert_problem(response, 409)
    assert int(response.headers["Retry-After"]) > 0


def test_download_refuses_an_unknown_format(local_client, alice):
    file_id = upload(local_client, alice, b"abc", filename="f.txt").json()["id"]
    response = local_client.get(f"{FILES}/{file_id}/content?format=tar", headers=alice.headers)
    assert_problem(response, 400)


def test_download_of_an_unknown_file_is_404(local_client, alice):
    assert_problem(local_client.get(f"{FILES}/{uuid.uuid4()}/content", headers=alice.headers), 404)


def _ready(app, client, account, content, name):
    """Upload `content` as `name` and run its job: the ready file's body."""
    created = upload(client, account, content, filename="ignored.bin", name=name)
    assert created.status_code == 202, created.text
    assert run_jobs(app) == ["ready"]
    body = client.get(f"{FILES}/{created.json()['id']}", headers=account.headers).json()
    assert body["status"] == "ready", body
    return body


def _disposition_filename(header: str) -> str:
    """The exact name from `filename*=UTF-8''...` (RFC 6266 / 8187)."""
    star = header.split("filename*=", 1)[1].split(";", 1)[0]
    charset, _, encoded = star.partition("''")
    assert charset == "UTF-8"
    return unquote(encoded, encoding="utf-8", errors="strict")


def test_ready_file_downloads_as_a_zip_named_after_it(app, client, alice):
    content = b"".join(b"row %d\n" % i for i in range(5000))
    body = _ready(app, client, alice, content, "report.txt")
    assert body["compressed_size"] > 0
    assert body["processed_at"] is not None
    response = client.get(f"{FILES}/{body['id']}/content", headers=alice.headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["Content-Disposition"] == (
        "attachment; filename=\"report.txt.zip\"; filename*=UTF-8''report.txt.zip"
    )
    assert response.headers["ETag"]
    assert int(response.headers["Content-Length"]) == len(response.content)
    assert len(response.content) == body["compressed_size"]
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.testzip() is None
        assert archive.namelist() == ["report.txt"]
        assert archive.read("report.txt") == content


def test_a_non_ascii_name_round_trips_through_content_disposition(app, client, alice):
    name = "résumé 📄.txt"
    content = "ça va? 👍\n".encode() * 100
    body = _ready(app, client, alice, content, name)
    response = client.get(f"{FILES}/{body['id']}/content", headers=alice.headers)
    assert response.status_code == 200
    disposition = response.headers["Content-Disposition"]
    assert disposition.isascii()
    assert disposition.startswith('attachment; filename="')
    assert _disposition_filename(disposition) == f"{name}.zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.read(archive.namelist()[0]) == content

    original = client.get(f"{FILES}/{body['id']}/content?format=original", headers=alice.headers)
    assert original.status_code == 200, original.text
    assert original.content == content
    assert original.headers["content-type"].startswith("text/plain")
    assert _disposition_filename(original.headers["Content-Disposition"]) == name


def test_original_format_returns_the_original_bytes(app, client, alice):
    content = bytes(range(256)) * 300
    body = _ready(app, client, alice, content, "blob.bin")
    response = client.get(f"{FILES}/{body['id']}/content?format=original", headers=alice.headers)
    assert response.status_code == 200
    assert response.content == content
    assert hashlib.sha256(response.content).hexdigest() == body["sha256"]
    assert response.headers["Content-Disposition"] == (
        "attachment; filename=\"blob.bin\"; filename*=UTF-8''blob.bin"
    )
    assert int(response.headers["Content-Length"]) == len(content)


def test_deleting_a_ready_file_removes_its_archive(app, client, storage, alice):
    body = _ready(app, client, alice, b"archive me\n" * 50, "gone.txt")
    assert f"{alice.id}/{body['id']}.zip" in set(storage.list(f"{alice.id}/"))
    assert client.delete(f"{FILES}/{body['id']}", headers=alice.headers).status_code == 204
    assert not any(body["id"] in key for key in storage.list(f"{alice.id}/"))
    assert_problem(client.get(f"{FILES}/{body['id']}/content", headers=alice.headers), 404)


def test_a_renamed_file_downloads_with_its_entry_renamed_too(app, client, alice):
    content = b"".join(b"line %d of the log\n" % i for i in range(20000))
    body = _ready(app, client, alice, content, "draft.txt")
    url = f"{FILES}/{body['id']}/content"
    before = client.get(url, headers=alice.headers)
    renamed = client.patch(
        f"{FILES}/{body['id']}", headers=alice.headers, json={"name": "final ✓.txt"}
    )
    assert renamed.status_code == 200
    after = client.get(url, headers=alice.headers)
    assert after.status_code == 200
    assert _disposition_filename(after.headers["Content-Disposition"]) == "final ✓.txt.zip"
    assert after.headers["ETag"] != before.headers["ETag"]
    assert int(after.headers["Content-Length"]) == len(after.content)
    with zipfile.ZipFile(io.BytesIO(after.content)) as archive:
        assert archive.testzip() is None
        assert archive.namelist() == ["final ✓.txt"]
        assert archive.read("final ✓.txt") == content
    # Ranges across the new header, the stored bytes and the new directory.
    size = len(after.content)
    for first, last in ((0, 9), (20, 60), (size - 100, size - 1), (5, size - 5)):
        part = client.get(url, headers={**alice.headers, "Range": f"bytes={first}-{last}"})
        assert part.status_code == 206
        assert part.content == after.content[first : last + 1]
    same = client.get(url, headers={**alice.headers, "If-None-Match": after.headers["ETag"]})
    assert same.status_code == 304


# --- what a client declares and what a download may do -----------------------------------

BAD_TYPES = [
    pytest.param("text/plain\x00evil", id="nul"),
    pytest.param("tëxt/plain", id="non-ascii"),
    pytest.param("text/" + "x" * 300, id="too-long"),
    pytest.param("not a media type", id="no-slash"),
]


@pytest.mark.parametrize("declared", BAD_TYPES)
def test_a_declared_content_type_that_is_no_media_type_is_replaced_by_a_guess(
    app, client, alice, declared
):
    body = multipart(("file", "notes.txt", b"some notes\n"))
    body = body.replace(
        b'filename="notes.txt"\r\n',
        b'filename="notes.txt"\r\nContent-Type: ' + declared.encode() + b"\r\n",
    )
    response = client.post(UPLOAD, headers={**alice.headers, **MULTIPART}, content=body)
    assert response.status_code == 202, response.text
    assert response.json()["content_type"] == "text/plain"  # guessed from the name
    assert run_jobs(app) == ["ready"]
    original = client.get(
        f"{FILES}/{response.json()['id']}/content?format=original", headers=alice.headers
    )
    assert original.status_code == 200
    assert original.headers["content-type"].startswith("text/plain")
    assert original.content == b"some notes\n"


def test_a_download_cannot_run_as_a_page_and_no_shared_cache_keeps_it(app, client, alice):
    page = b"<script>alert(document.cookie)</script>"
    created = client.post(
        UPLOAD, headers=alice.headers, files={"file": ("page.html", page, "text/html")}
    )
    assert created.status_code == 202, created.text
    assert run_jobs(app) == ["ready"]
    url = f"{FILES}/{created.json()['id']}/content"
    for response in (
        client.get(url, params={"format": "original"}, headers=alice.headers),
        client.head(url, params={"format": "original"}, headers=alice.headers),
        client.get(url, headers=alice.headers),
    ):
        assert response.status_code == 200
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["content-security-policy"] == "default-src 'none'; sandbox"
        assert response.headers["cache-control"] == "private"
    listing = client.get(FILES, headers=alice.headers)
    assert listing.headers["cache-control"] == "private"
    assert listing.headers["x-content-type-options"] == "nosniff"
