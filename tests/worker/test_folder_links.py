"""A folder link with a real Celery worker: what the worker stores and records at `ready` is
all Download all needs, files it finishes later join the link, and a stranger downloads
the whole folder (both storage backends; the worker on a database and a broker of its own).
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterator

import pytest

from tests.helpers import (
    upload,
    wait_until,
)
from tests.worker.support import LiveWorker, live_worker, unzip_test

LOG = b"".join(
    b"2026-12-07T10:%02d:%02dZ INFO req=%08x GET /api/v1/files/%d 200\n"
    % (i // 60 % 60, i % 60, i * 2654435761 % 2**32, i % 9973)
    for i in range(400_000)
)  # ~24 MiB: deflated in parallel blocks (over 16 MiB)


@pytest.fixture
def live(settings, tmp_path) -> Iterator[LiveWorker]:
    with live_worker(settings, tmp_path, "instashare_folder_links", concurrency=2) as running:
        yield running


def _ready_count(live: LiveWorker, path: str, wanted: int) -> dict:
    seen: dict = {}

    def reached() -> bool:
        seen.update(live.client.get(path).json())
        return seen["ready_count"] == wanted

    wait_until(reached, 120, 0.1, what=f"{wanted} files ready (see {live.worker.log_path})")
    return seen


@pytest.mark.parametrize("serves", ["zip", "original"])
def test_a_stranger_downloads_a_folder_the_worker_prepared(live, tmp_path, serves):
    client, owner = live.client, live.account
    made = client.post("/api/v1/folders", headers=owner.headers, json={"name": "site"})
    assert made.status_code == 201, made.text
    site = made.json()["id"]
    contents = {
        "site/access.log": LOG,
        "site/img/logo.bin": os.urandom(300_000),
        "site/empty.txt": b"",
    }
    for path, content in contents.items():
        relative = path.removeprefix("site/")
        sent = upload(
            client, owner, content, relative.rsplit("/", 1)[-1], folder_id=site,
            relative_path=relative,
        )  # fmt: skip
        assert sent.status_code == 202, sent.text
    shared = client.post(
        "/api/v1/shares",
        headers=owner.headers,
        json={"items": [{"kind": "folder", "id": site}], "serves": serves},
    )
    assert shared.status_code == 201, shared.text
    path = "/s/" + shared.json()["url"].rsplit("/s/", 1)[1]
    listed = _ready_count(live, path, 3)
    assert [e["path"] for e in listed["entries"]] == sorted(contents)

    got = client.get(path + "/archive")
    assert got.status_code == 200 and len(got.content) == listed["archive"]["size"]
    (tmp_path / "site.zip").write_bytes(got.content)
    unzip_test(tmp_path / "site.zip")
    with zipfile.ZipFile(io.BytesIO(got.content)) as archive:
        for member, content in contents.items():
            assert archive.read(member) == content

    # The link is live: a file the worker finishes later joins it, under a new ETag.
    later = upload(client, owner, b"late\n" * 1000, "late.txt", folder_id=site)
    assert later.status_code == 202, later.text
    _ready_count(live, path, 4)
    again = client.get(path + "/archive", headers={"If-Range": got.headers["ETag"],
                                                   "Range": "bytes=10-"})  # fmt: skip
    assert again.status_code == 200 and again.headers["ETag"] != got.headers["ETag"]
    with zipfile.ZipFile(io.BytesIO(again.content)) as archive:
        assert archive.read("site/late.txt") == b"late\n" * 1000
        assert archive.read("site/access.log") == LOG
