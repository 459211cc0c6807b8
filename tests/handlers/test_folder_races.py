"""Folders under concurrency, on a live server committing for real (local storage).

Uploads of one new folder arriving at once must make ONE folder; two moves that would
make a cycle between them must not both succeed; a file and a folder racing for one name
must not both get it.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

API = "/api/v1"
TUS = {"Tus-Resumable": "1.0.0"}
UPLOADS = 16


@pytest.fixture(scope="module")
def settings(local_settings):
    """One backend is enough: what races here is rows, not objects."""
    return local_settings


def at_once(calls: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    """Run the calls in threads released together; their responses, in order."""
    start = threading.Barrier(len(calls))

    def run(call):
        start.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def entries(live, account, folder: str | None = None) -> dict:
    params = {"limit": 100, **({"folder_id": folder} if folder else {})}
    page = live.http.get(f"{API}/entries", params=params, headers=account.headers)
    assert page.status_code == 200, page.text
    return page.json()


def only_folder(live, account, parent: str | None, name: str) -> str:
    found = [e for e in entries(live, account, parent)["items"] if e["name"] == name]
    assert [e["kind"] for e in found] == ["folder"], found
    return found[0]["id"]


def test_multipart_uploads_into_one_new_folder_make_one_folder(live, carol):
    def send(n: int) -> Callable[[], httpx.Response]:
        return lambda: live.http.post(
            f"{API}/upload_files",
            headers=carol.headers,
            files={"file": (f"f{n}.txt", b"x" * n, "text/plain")},
            data={"relative_path": f"new/deeper/f{n}.txt"},
        )

    responses = at_once([send(n) for n in range(UPLOADS)])
    assert [r.status_code for r in responses] == [202] * UPLOADS, [r.text for r in responses]
    new = only_folder(live, carol, None, "new")
    deeper = only_folder(live, carol, new, "deeper")
    assert entries(live, carol, new)["total"] == 1
    inside = entries(live, carol, deeper)
    assert sorted(e["name"] for e in inside["items"]) == sorted(f"f{n}.txt" for n in range(UPLOADS))
    assert {r.json()["folder_id"] for r in responses} == {deeper}


def test_tus_uploads_completing_at_once_make_one_folder(live, carol):
    urls = []
    for n in range(UPLOADS):
        meta = f"relativePath {base64.b64encode(f'album/{n}.bin'.encode()).decode()}"
        made = live.http.post(
            f"{API}/uploads",
            headers={**carol.headers, **TUS, "Upload-Length": "4", "Upload-Metadata": meta},
        )
        assert made.status_code == 201, made.text
        urls.append(made.headers["Location"])

    def finish(url: str) -> Callable[[], httpx.Response]:
        return lambda: live.http.patch(
            url,
            headers={
                **carol.headers,
                **TUS,
                "Content-Type": "application/offset+octet-stream",
                "Upload-Offset": "0",
            },
            content=b"data",
        )

    responses = at_once([finish(url) for url in urls])
    assert [r.status_code for r in responses] == [204] * UPLOADS, [r.text for r in responses]
    album = only_folder(live, carol, None, "album")
    assert entries(live, carol, album)["total"] == UPLOADS


def test_crossing_moves_never_make_a_cycle(live, carol):
    def mkdir(name: str) -> str:
        made = live.http.post(f"{API}/folders", json={"name": name}, headers=carol.headers)
        assert made.status_code == 201, made.text
        return made.json()["id"]

    def move(folder: str, into: str | None) -> Callable[[], httpx.Response]:
        return lambda: live.http.patch(
            f"{API}/folders/{folder}", json={"parent_id": into}, headers=carol.headers
        )

    for round_ in range(8):
        a, b = mkdir(f"a{round_}"), mkdir(f"b{round_}")
        # Each alone is allowed; together they would put a in b and b in a.
        first, second = at_once([move(a, b), move(b, a)])
        assert sorted([first.status_code, second.status_code]) == [200, 409], (
            first.text,
            second.text,
        )
        loser = second if second.status_code == 409 else first
        assert loser.json()["detail"] == (
            "A folder cannot be moved into itself or into a folder inside it."
        )
        # One sits in the other, and the other at the root: the breadcrumbs end.
        for folder in (a, b):
            got = live.http.get(f"{API}/folders/{folder}", headers=carol.headers)
            assert got.status_code == 200, got.text
            assert len(got.json()["ancestors"]) <= 1


def test_a_file_and_a_folder_racing_for_one_name_do_not_both_get_it(live, carol):
    def make_folder(name: str) -> Callable[[], httpx.Response]:
        return lambda: live.http.post(f"{API}/folders", json={"name": name}, headers=carol.headers)

    def make_file(name: str) -> Callable[[], httpx.Response]:
        return lambda: live.http.post(
            f"{API}/upload_files",
            headers=carol.headers,
            files={"file": (name, b"x", "text/plain")},
        )

    for round_ in range(8):
        name = f"contested-{round_}"
        folder, file = at_once([make_folder(name), make_file(name)])
        assert sorted([folder.status_code, file.status_code]) in ([201, 409], [202, 409]), (
            folder.text,
            file.text,
        )
        holders = [e for e in entries(live, carol)["items"] if e["name"] == name]
        assert len(holders) == 1, holders
