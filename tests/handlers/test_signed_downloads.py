"""Signed downloads: with a signing key, a file's ZIP is answered with a 302 to a V4 signed
URL once the API decided the download (owner, grant, share link with its limit); the
signature is checked here with the key's public half, and the emulator serves the bytes."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import urllib.parse
import zipfile

import httpx
import pytest
from google.auth import crypt

from tests.helpers import assert_problem, make_settings, upload_ready
from tests.signing import SIGNER, service_account_key

CONTENT = b"signed bytes, " * 5000


@pytest.fixture(scope="module")
def key_pair(tmp_path_factory):
    return service_account_key(tmp_path_factory.mktemp("signing"))


@pytest.fixture
def signing_app(make_app, key_pair, tmp_path_factory, database_url, gcs_emulator):
    settings = make_settings(
        tmp_path_factory.mktemp("signed"), database_url, "gcs", gcs_signing_key=str(key_pair[0])
    )
    return make_app(settings)


@pytest.fixture
def signing_client(signing_app):
    # A redirect is what is tested: the test client must not follow it (into the app).
    with signing_app.test_client(follow_redirects=False) as client:
        yield client


@pytest.fixture
def ready(signing_client, signing_app, alice) -> str:
    return upload_ready(signing_client, signing_app, alice, CONTENT, "report.txt")


def verify(location: str, public_pem: bytes) -> dict[str, str]:
    """Check a V4 signed URL's signature as GCS would (the emulator does not); its query."""
    url = urllib.parse.urlsplit(location)
    pairs = urllib.parse.parse_qsl(url.query, keep_blank_values=True)
    query = dict(pairs)
    signature = query.pop("X-Goog-Signature")
    canonical_query = "&".join(
        f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
        for k, v in sorted((k, v) for k, v in pairs if k != "X-Goog-Signature")
    )
    assert query["X-Goog-SignedHeaders"] == "host"
    canonical = "\n".join(
        ["GET", url.path, canonical_query, f"host:{url.netloc}", "", "host", "UNSIGNED-PAYLOAD"]
    )
    scope = query["X-Goog-Credential"].split("/", 1)[1]
    to_sign = "\n".join(
        [
            "GOOG4-RSA-SHA256",
            query["X-Goog-Date"],
            scope,
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    verifier = crypt.RSAVerifier.from_string(public_pem)
    assert verifier.verify(to_sign.encode(), bytes.fromhex(signature)), "bad signature"
    assert verifier.verify((to_sign + "x").encode(), bytes.fromhex(signature)) is False
    return query


def followed(location: str, public_pem: bytes) -> bytes:
    """The bytes behind a signed URL, after checking it: a short-lived GET of one ZIP."""
    query = verify(location, public_pem)
    assert query["X-Goog-Credential"].startswith(SIGNER + "/")
    assert int(query["X-Goog-Expires"]) == 60
    issued = dt.datetime.strptime(query["X-Goog-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    assert abs((dt.datetime.now(dt.UTC) - issued).total_seconds()) < 60
    assert "report.txt" in query["response-content-disposition"]
    assert query["response-content-type"] == "application/zip"
    answer = httpx.get(location)
    assert answer.status_code == 200, answer.text
    with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
        assert archive.read("report.txt") == CONTENT
    return answer.content


def test_owner_download_redirects_to_a_signed_url(signing_client, alice, ready, key_pair):
    answer = signing_client.get(f"/api/v1/files/{ready}/content", headers=alice.headers)
    assert answer.status_code == 302, answer.text
    assert answer.headers["Cache-Control"] == "private, no-store"
    followed(answer.headers["Location"], key_pair[1])
    # HEAD, and the original (cut out of its ZIP), still answer here.
    head = signing_client.head(f"/api/v1/files/{ready}/content", headers=alice.headers)
    assert head.status_code == 200
    original = signing_client.get(
        f"/api/v1/files/{ready}/content?format=original", headers=alice.headers
    )
    assert original.status_code == 200 and original.content == CONTENT


def test_a_renamed_file_streams_its_rewritten_zip(signing_client, alice, ready):
    renamed = signing_client.patch(
        f"/api/v1/files/{ready}", json={"name": "renamed.txt"}, headers=alice.headers
    )
    assert renamed.status_code == 200, renamed.text
    answer = signing_client.get(f"/api/v1/files/{ready}/content", headers=alice.headers)
    assert answer.status_code == 200
    with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
        assert archive.namelist() == ["renamed.txt"]


def test_grant_redirects_to_a_signed_url(signing_client, alice, ready, key_pair):
    made = signing_client.post(
        f"/api/v1/files/{ready}/download-grants", json={}, headers=alice.headers
    )
    assert made.status_code == 201, made.text
    path = "/api/v1/downloads/" + made.json()["url"].rsplit("/downloads/", 1)[1]
    answer = signing_client.get(path)
    assert answer.status_code == 302
    followed(answer.headers["Location"], key_pair[1])


def test_share_link_redirects_count_and_the_limit_holds(signing_client, alice, ready, key_pair):
    made = signing_client.post(
        f"/api/v1/files/{ready}/shares", json={"max_downloads": 2}, headers=alice.headers
    )
    assert made.status_code == 201, made.text
    path = "/s/" + made.json()["url"].rsplit("/s/", 1)[1] + "/content"
    for _ in range(2):
        answer = signing_client.get(path)
        assert answer.status_code == 302
        followed(answer.headers["Location"], key_pair[1])
    assert_problem(signing_client.get(path), 410)
    listed = signing_client.get(f"/api/v1/files/{ready}/shares", headers=alice.headers).json()
    assert listed["items"][0]["downloads"] == 2


def test_without_a_key_downloads_stream(make_app, tmp_path, database_url, gcs_emulator, alice):
    app = make_app(make_settings(tmp_path, database_url, "gcs"))
    with app.test_client() as client:
        file_id = upload_ready(client, app, alice, CONTENT, "report.txt")
        answer = client.get(f"/api/v1/files/{file_id}/content", headers=alice.headers)
        assert answer.status_code == 200
