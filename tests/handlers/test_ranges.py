"""Range, conditional and HEAD requests on downloads (ZIP and original, STORED and DEFLATED).

Parsing the Range header on its own is tested in tests/http/test_ranges.py.
"""

from __future__ import annotations

import os

import pytest

from tests.helpers import run_jobs, upload

TEXT = b"".join(b"line %06d of a log that deflates\n" % i for i in range(40000))  # DEFLATED
NOISE = os.urandom(300_000)  # STORED: random bytes do not shrink


class ReadyFiles(dict):
    """File ids by name, each file uploaded and compressed when a test first asks for it."""

    CONTENTS = {"log.txt": TEXT, "noise.bin": NOISE}

    def __init__(self, app, client, account):
        super().__init__()
        self.app, self.client, self.account = app, client, account

    def __missing__(self, name: str) -> str:
        created = upload(self.client, self.account, self.CONTENTS[name], filename=name)
        assert created.status_code == 202, created.text
        assert run_jobs(self.app) == ["ready"]
        file_id = created.json()["id"]
        body = self.client.get(f"/api/v1/files/{file_id}", headers=self.account.headers).json()
        assert body["status"] == "ready", body
        self[name] = file_id
        return file_id


@pytest.fixture
def files(app, client, alice):
    """A ready text file and a ready random file for this backend: (client, account, ids).

    Each is uploaded on first use: a test pays only for the file it reads.
    """
    return client, alice, ReadyFiles(app, client, alice)


CASES = [("log.txt", TEXT), ("noise.bin", NOISE)]


def get(files, name, *, original=True, method="GET", **headers):
    client, account, ids = files
    params = {"format": "original"} if original else {}
    return client.request(
        method,
        f"/api/v1/files/{ids[name]}/content",
        params=params,
        headers={**account.headers, **headers},
    )


@pytest.mark.parametrize(("name", "content"), CASES)
@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("bytes=0-0", lambda c: (0, c[:1])),
        ("bytes=-1", lambda c: (len(c) - 1, c[-1:])),
        ("bytes=-1000", lambda c: (len(c) - 1000, c[-1000:])),
        ("bytes=1000-", lambda c: (1000, c[1000:])),
        ("bytes=123456-130000", lambda c: (123456, c[123456:130001])),
        ("bytes=5-999999999", lambda c: (5, c[5:])),
        ("bytes=-999999999", lambda c: (0, c)),
    ],
)
def test_single_ranges_of_the_original(files, name, content, spec, expected):
    start, body = expected(content)
    response = get(files, name, Range=spec)
    assert response.status_code == 206, response.text
    assert response.content == body
    assert (
        response.headers["Content-Range"] == f"bytes {start}-{start + len(body) - 1}/{len(content)}"
    )
    assert response.headers["Content-Length"] == str(len(body))
    assert response.headers["Accept-Ranges"] == "bytes"


def test_ranges_of_the_zip(files):
    whole = get(files, "log.txt", original=False)
    assert whole.status_code == 200
    assert whole.headers["Accept-Ranges"] == "bytes"
    zipped = whole.content
    part = get(files, "log.txt", original=False, Range="bytes=10-99")
    assert part.status_code == 206
    assert part.content == zipped[10:100]
    assert part.headers["Content-Range"] == f"bytes 10-99/{len(zipped)}"
    tail = get(files, "log.txt", original=False, Range="bytes=-22")
    assert tail.content == zipped[-22:]  # the end-of-central-directory record
    assert tail.content.startswith(b"PK\x05\x06")


@pytest.mark.parametrize("original", [True, False])
def test_past_the_end_is_416(files, original):
    size = int(get(files, "log.txt", original=original, method="HEAD").headers["Content-Length"])
    for spec in (f"bytes={size}-", f"bytes={size + 10}-{size + 20}", "bytes=-0"):
        response = get(files, "log.txt", original=original, Range=spec)
        assert response.status_code == 416, spec
        assert response.headers["Content-Range"] == f"bytes */{size}"
        assert response.headers["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize("spec", ["bytes=0-1,5-6", "items=0-5", "bytes=9-3", "garbage"])
def test_ranges_we_do_not_serve_get_the_whole(files, spec):
    response = get(files, "log.txt", Range=spec)
    assert response.status_code == 200
    assert response.content == TEXT


def test_if_range_with_a_stale_etag_sends_everything(files):
    etag = get(files, "log.txt", method="HEAD").headers["ETag"]
    fresh = get(files, "log.txt", Range="bytes=0-9", **{"If-Range": etag})
    assert fresh.status_code == 206
    assert fresh.content == TEXT[:10]
    stale = get(files, "log.txt", Range="bytes=0-9", **{"If-Range": '"stale"'})
    assert stale.status_code == 200
    assert stale.content == TEXT
    dated = get(
        files, "log.txt", Range="bytes=0-9", **{"If-Range": "Wed, 21 Oct 2015 07:28:00 GMT"}
    )
    assert dated.status_code == 200


@pytest.mark.parametrize("original", [True, False])
def test_if_none_match_is_304(files, original):
    etag = get(files, "noise.bin", original=original, method="HEAD").headers["ETag"]
    for offered in (etag, f'"other", {etag}', f"W/{etag}", "*"):
        response = get(files, "noise.bin", original=original, **{"If-None-Match": offered})
        assert response.status_code == 304, offered
        assert response.content == b""
        assert response.headers["ETag"] == etag
    assert get(files, "noise.bin", original=original, **{"If-None-Match": '"x"'}).status_code == 200


@pytest.mark.parametrize(("name", "content"), CASES)
def test_head_has_the_headers_and_no_body(files, name, content):
    response = get(files, name, method="HEAD")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["Content-Length"] == str(len(content))
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["ETag"]
    assert response.headers["Content-Disposition"].startswith("attachment")
    ranged = get(files, name, method="HEAD", Range="bytes=-10")
    assert ranged.status_code == 206
    assert ranged.content == b""
    assert (
        ranged.headers["Content-Range"]
        == f"bytes {len(content) - 10}-{len(content) - 1}/{len(content)}"
    )


def test_head_for_someone_else_is_404(files, client, bob):
    _, _, ids = files
    stranger = bob
    response = client.head(f"/api/v1/files/{ids['log.txt']}/content", headers=stranger.headers)
    assert response.status_code == 404
