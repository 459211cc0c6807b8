"""The owner's list says which files have a thumbnail (`has_preview`), so the web app shows
it in their rows and a type badge for the rest."""

from __future__ import annotations

from tests.handlers.test_link_inline import png
from tests.handlers.test_multi_links import folder, put
from tests.helpers import run_jobs


def test_the_file_json_says_whether_a_thumbnail_exists(local_client, local_app, alice):
    album = folder(local_client, alice, "album")
    cover = put(local_client, alice, "cover.png", png(), album)
    notes = put(local_client, alice, "notes.txt", b"track list\n", album)
    broken = put(local_client, alice, "broken.png", b"\x89PNG not really", album)
    pending = local_client.get(f"/api/v1/files/{cover}", headers=alice.headers).json()
    assert pending["status"] == "pending" and pending["has_preview"] is False
    assert run_jobs(local_app) == ["ready"] * 3

    def shown(path: str, **params) -> dict[str, bool]:
        got = local_client.get(path, headers=alice.headers, params=params)
        assert got.status_code == 200, got.text
        return {item["name"]: item["has_preview"] for item in got.json()["items"]}

    expected = {"cover.png": True, "notes.txt": False, "broken.png": False}
    assert shown("/api/v1/entries", folder_id=album) == expected
    assert shown("/api/v1/files") == expected
    assert shown("/api/v1/files", folder_id=album, status="ready") == expected
    for file_id, has in ((cover, True), (notes, False), (broken, False)):
        one = local_client.get(f"/api/v1/files/{file_id}", headers=alice.headers).json()
        assert one["has_preview"] is has
        thumb = local_client.get(f"/api/v1/files/{file_id}/preview", headers=alice.headers)
        assert thumb.status_code == (200 if has else 404)
