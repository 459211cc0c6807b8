"""Downloads while storage is down: a 503 the client can retry, before any byte is sent.

The app's storage talks to the GCS emulator through the fault proxy (tests/faultproxy.py)
and gives up after 3 s (`proxied_app`); the library's default would retry for 120 s, longer
than the API's 60 s idle cut-off, and the download would end as a 200 cut short.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.helpers import assert_problem, upload, upload_ready

CONTENT = b"a line of text that the download will not get to\n" * 2000
DEADLINE = 3.0  # proxied_app's


@pytest.mark.parametrize("query", ["", "?format=original"])
def test_storage_answering_503_is_a_503_with_retry_after(proxied_app, fault_proxy, alice, query):
    with proxied_app.test_client() as client:
        file_id = upload_ready(client, proxied_app, alice, CONTENT, "notes.txt")
        fault_proxy.fail("GET", r"/o/", status=503, times=None)
        started = time.monotonic()
        answer = client.get(f"/api/v1/files/{file_id}/content{query}", headers=alice.headers)
        took = time.monotonic() - started

    body = assert_problem(answer, 503)
    assert body["title"] == "Storage Unavailable"
    assert body["detail"] == "The storage did not answer; retry in a moment."
    assert int(answer.headers["Retry-After"]) > 0
    assert fault_proxy.requests("GET", r"/o/"), "storage was never asked"
    assert took < DEADLINE + 10, f"the 503 took {took:.1f}s"


@pytest.mark.parametrize("query", ["", "?format=original"])
def test_stalled_storage_is_a_503_within_the_deadline(proxied_app, fault_proxy, alice, query):
    with proxied_app.test_client() as client:
        file_id = upload_ready(client, proxied_app, alice, CONTENT, "notes.txt")
        fault_proxy.stall("GET", r"/o/", seconds=120, times=None)
        started = time.monotonic()
        try:
            answer = client.get(f"/api/v1/files/{file_id}/content{query}", headers=alice.headers)
        finally:
            took = time.monotonic() - started
            fault_proxy.release()

    body = assert_problem(answer, 503)
    assert answer.headers["Retry-After"]
    assert body["title"] == "Storage Unavailable"
    # The deadline, one request's timeout past it at worst, and a loaded machine's margin.
    assert took < DEADLINE + 10, f"the 503 took {took:.1f}s"


def test_storage_back_again_serves_the_download(proxied_app, fault_proxy, alice):
    with proxied_app.test_client() as client:
        file_id = upload_ready(client, proxied_app, alice, CONTENT, "notes.txt")
        outage = fault_proxy.fail("GET", r"/o/", status=503, times=None)
        url = f"/api/v1/files/{file_id}/content?format=original"
        assert client.get(url, headers=alice.headers).status_code == 503
        fault_proxy.remove(outage)
        answer = client.get(url, headers=alice.headers)

    assert answer.status_code == 200
    assert answer.content == CONTENT


def test_an_upload_while_storage_is_down_is_a_plain_503_with_retry_after(
    proxied_app, fault_proxy, alice
):
    fault_proxy.fail("POST", r"/upload/", status=503, times=None)
    with proxied_app.test_client() as client:
        answer = upload(client, alice, CONTENT, "notes.txt")
        listed = client.get("/api/v1/files", headers=alice.headers).json()

    body = assert_problem(answer, 503)
    assert body["detail"] == (
        "The upload could not be stored: the storage failed or did not answer; retry in a moment."
    )
    assert int(answer.headers["Retry-After"]) > 0
    assert listed["items"] == []


def test_a_stall_after_the_first_bytes_ends_the_download_short_within_the_deadline(
    proxied_app, fault_proxy, alice
):
    """Too late for a 503: the body ends short (its Content-Length says so), and soon."""
    content = os.urandom(9 * 1024 * 1024)  # an archive of two 8 MiB reads
    with proxied_app.test_client() as client:
        file_id = upload_ready(client, proxied_app, alice, content, "big.bin")
        fault_proxy.clear()
        # The header's read and the first 8 MiB pass; the second read of the body stalls.
        fault_proxy.stall("GET", r"alt=media", seconds=120, nth=3, times=None)
        started = time.monotonic()
        try:
            answer = client.get(f"/api/v1/files/{file_id}/content", headers=alice.headers)
        finally:
            took = time.monotonic() - started
            fault_proxy.release()

    assert answer.status_code == 200
    assert 0 < len(answer.content) < int(answer.headers["Content-Length"])
    # Not the library's 120 s, nor the 60 s idle cut-off: the deadline, and a margin.
    assert took < DEADLINE + 10, f"the download took {took:.1f}s to end"
