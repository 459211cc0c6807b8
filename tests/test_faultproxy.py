"""The fault proxy itself: it passes the real client's traffic through, and does as scripted.

The other tests trust it to show what the emulator cannot (tests/faultproxy.py); these
check that it forwards resumable sessions whole and that each fault reaches the client.
"""

from __future__ import annotations

import os
import time

import pytest
import requests
from google.api_core import exceptions as gexc

from app.storage.gcs import GCS_CHUNK_SIZE

BIG = os.urandom(GCS_CHUNK_SIZE + 512 * 1024)  # over 8 MiB: a resumable session, two PUTs


def test_a_write_over_8_mib_goes_through_a_resumable_session(proxied_storage, fault_proxy):
    with proxied_storage.writer("proxy-tests/big.bin", "application/octet-stream") as sink:
        sink.write(BIG)

    assert b"".join(proxied_storage.iter_chunks("proxy-tests/big.bin")) == BIG
    started = fault_proxy.requests("POST", r"uploadType=resumable")
    assert len(started) == 1
    puts = fault_proxy.requests("PUT", r"upload_id=")
    assert [p.headers["content-range"] for p in puts] == [
        f"bytes 0-{GCS_CHUNK_SIZE - 1}/*",
        f"bytes {GCS_CHUNK_SIZE}-{len(BIG) - 1}/{len(BIG)}",
    ]


def test_a_scripted_503_reaches_the_client_and_the_next_request_passes(
    proxied_storage, fault_proxy
):
    with proxied_storage.writer("proxy-tests/small.txt", "text/plain") as sink:
        sink.write(b"hello")
    fault_proxy.fail("GET", r"/o/proxy-tests/small\.txt\?", status=503, nth=1, times=1)

    # The library retries a 503 on a read: the second GET goes through.
    assert proxied_storage.size("proxy-tests/small.txt") == 5
    gets = fault_proxy.requests("GET", r"/o/proxy-tests/small\.txt\?")
    assert len(gets) == 2


def test_a_429_on_every_request_outlasts_a_short_deadline(proxied_storage, fault_proxy):
    fault_proxy.fail("GET", r"/o/proxy-tests/", status=429, times=None)
    blob = proxied_storage.bucket.blob("proxy-tests/any")
    with pytest.raises(gexc.TooManyRequests):
        blob.reload(retry=None)


def test_a_reset_mid_response_cuts_the_download(proxied_storage, fault_proxy):
    with proxied_storage.writer("proxy-tests/cut.bin", "application/octet-stream") as sink:
        sink.write(BIG[: 1024 * 1024])
    fault_proxy.reset("GET", r"alt=media", during="response", after_bytes=64 * 1024)

    bucket = proxied_storage.bucket.name
    url = f"{fault_proxy.url}/download/storage/v1/b/{bucket}/o/proxy-tests%2Fcut.bin?alt=media"
    received = bytearray()
    with (
        pytest.raises(requests.exceptions.RequestException),
        requests.get(url, stream=True, timeout=10) as response,
    ):
        assert response.status_code == 200
        for piece in response.iter_content(16 * 1024):
            received += piece
    assert 0 < len(received) < 1024 * 1024


def test_a_stall_holds_the_request_until_released(proxied_storage, fault_proxy):
    fault_proxy.stall("GET", r"/o/proxy-tests/held", seconds=30)
    url = f"{fault_proxy.url}/storage/v1/b/{proxied_storage.bucket.name}/o/proxy-tests%2Fheld"
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(url, timeout=1)
    assert time.monotonic() - started < 10
    fault_proxy.release()
    assert requests.get(url, timeout=10).status_code == 404


def test_a_reset_mid_request_is_retried_by_the_client(proxied_storage, fault_proxy):
    # The first chunk's PUT is cut off after 1 MiB of its body, before the emulator saw it.
    cut = fault_proxy.reset("PUT", r"upload_id=", during="request", after_bytes=1024 * 1024)
    with proxied_storage.writer("proxy-tests/resent.bin", "application/octet-stream") as sink:
        sink.write(BIG)

    assert cut.acted == 1
    assert b"".join(proxied_storage.iter_chunks("proxy-tests/resent.bin")) == BIG
    # The cut chunk was sent again (the library may first ask the session where it stood).
    assert len(fault_proxy.requests("PUT", r"upload_id=")) >= 3
