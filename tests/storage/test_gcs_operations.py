"""What an upload, its job and its downloads cost in GCS requests, counted at the proxy.

The README's table ("GCS operations") is these numbers: every request the real client
sends passes the fault proxy (tests/faultproxy.py), which records it; each path is run
through the app (its handlers, services and the worker's job) on the emulator.
"""

from __future__ import annotations

import collections
import math
import random

from tests.faultproxy import FaultProxy
from tests.handlers.test_tus import created, patch
from tests.helpers import run_jobs, runtime, upload

MiB = 1024 * 1024
CHUNK = 8 * MiB  # the client's resumable chunk (app.storage.gcs.GCS_CHUNK_SIZE)


def requests_by_kind(proxy: FaultProxy) -> dict[str, int]:
    """The requests recorded since the last `clear()`, by the JSON API method they call."""
    kinds: collections.Counter = collections.Counter()
    for r in proxy.requests():
        if r.method == "POST" and r.param("uploadType") == "multipart":
            kind = "objects.insert"
        elif r.method == "POST" and r.param("uploadType") == "resumable":
            kind = "objects.insert (resumable session)"
        elif r.method == "PUT":
            kind = "session PUT"
        elif r.method == "POST" and r.path.endswith("/compose"):
            kind = "objects.compose"
        elif r.method == "GET" and r.param("alt") == "media":
            kind = "objects.get (media)"
        elif r.method == "GET" and r.path.endswith("/o"):
            kind = "objects.list"
        elif r.method == "GET" and "/o/" in r.path:
            kind = "objects.get (metadata)"
        elif r.method == "DELETE":
            kind = "objects.delete"
        else:
            kind = f"{r.method} {r.path}"  # anything else would be news
        kinds[kind] += 1
    return dict(kinds)


def text(size: int) -> bytes:
    """Log-like bytes that deflate to about a third."""
    rng = random.Random(size)
    words = [bytes(rng.choices(b"abcdefghij", k=rng.randint(1, 9))) for _ in range(512)]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(words) + b" "
    return bytes(out[:size])


def proxied_app(make_app, gcs_settings, proxied_storage):
    """The GCS app, its storage (the worker's too, run inline) reached through the proxy."""
    app = make_app(gcs_settings)
    rt = runtime(app)
    direct, rt.storage = rt.storage, proxied_storage
    return app, lambda: setattr(rt, "storage", direct)


def test_a_multipart_upload_its_job_downloads_and_delete(
    make_app, gcs_settings, alice, proxied_storage, fault_proxy
):
    app, restore = proxied_app(make_app, gcs_settings, proxied_storage)
    seen: dict[str, dict[int, dict[str, int]]] = collections.defaultdict(dict)
    try:
        with app.test_client() as client:
            for size in (1 * MiB, 20 * MiB):
                fault_proxy.clear()
                file_id = upload(client, alice, text(size), f"{size}.log").json()["id"]
                seen["upload"][size] = requests_by_kind(fault_proxy)
                fault_proxy.clear()
                assert run_jobs(app) == ["ready"]
                seen["job"][size] = requests_by_kind(fault_proxy)
                content = f"/api/v1/files/{file_id}/content"
                for name, query in (("zip", ""), ("original", "?format=original")):
                    fault_proxy.clear()
                    got = client.get(content + query, headers=alice.headers)
                    assert got.status_code == 200
                    seen[name][size] = requests_by_kind(fault_proxy)
                fault_proxy.clear()
                assert client.delete(f"/api/v1/files/{file_id}", headers=alice.headers).status_code
                seen["delete"][size] = requests_by_kind(fault_proxy)
    finally:
        restore()

    # Up to 8 MiB one request; above, a resumable session and a PUT per 8 MiB.
    assert seen["upload"] == {
        1 * MiB: {"objects.insert": 1},
        20 * MiB: {"objects.insert (resumable session)": 1, "session PUT": math.ceil(20 / 8)},
    }
    # The job: the staged upload's metadata and ranged reads (8 MiB each, plus the sample
    # and the reader's look-aheads), the archive written through a session (one PUT per
    # 8 MiB of ZIP; both ZIPs here are under 8 MiB), its size, its entry read back to
    # verify it, its generation (recorded with the lease), and the staged upload deleted.
    for size, reads in ((1 * MiB, 3 + 3), (20 * MiB, 8 + 3)):
        assert seen["job"][size] == {
            "objects.get (metadata)": 4,
            "objects.get (media)": reads,
            "objects.insert (resumable session)": 1,
            "session PUT": 1,
            "objects.delete": 1,
        }, size
    # A download of the ZIP: its first KiB (the entry's header and name, to splice a renamed
    # entry), then the bytes, one ranged GET per 8 MiB. Of the original (deflated): the
    # same first KiB, then one ranged GET per 4 MiB span of its seek index.
    for size in (1 * MiB, 20 * MiB):
        assert seen["zip"][size] == {"objects.get (media)": 1 + 1}, size
        spans = math.ceil(size / (4 * MiB))
        assert seen["original"][size] == {"objects.get (media)": 1 + spans}, size
        # The archive, and the staged key in case a crash left it (DELETE is free).
        assert seen["delete"][size] == {"objects.delete": 2}, size


def test_a_resumable_upload_with_chunk_size_c(
    make_app, gcs_settings, alice, proxied_storage, fault_proxy
):
    app, restore = proxied_app(make_app, gcs_settings, proxied_storage)
    chunk = 300_000
    try:
        with app.test_client() as client:
            for parts in (3, 40):
                data = text(parts * chunk)
                fault_proxy.clear()
                url = created(client, alice, len(data), f"{parts}.log")
                assert requests_by_kind(fault_proxy) == {}  # the row only
                for i in range(parts):
                    fault_proxy.clear()
                    body = data[i * chunk : (i + 1) * chunk]
                    assert patch(client, alice, url, i * chunk, body).status_code == 204
                    if i < parts - 1:
                        # Each PATCH: its part, through a session (a PUT per 8 MiB of body).
                        assert requests_by_kind(fault_proxy) == {
                            "objects.insert (resumable session)": 1,
                            "session PUT": 1,
                        }
                last = requests_by_kind(fault_proxy)
                # The last one also composes the parts (32 at a time: over 32, intermediates
                # then the final), lists the parts prefix, and deletes every part and
                # intermediate.
                intermediates = 0 if parts <= 32 else math.ceil(parts / 32)
                assert last == {
                    "objects.insert (resumable session)": 1,
                    "session PUT": 1,
                    "objects.compose": intermediates + 1,
                    "objects.list": 1,
                    "objects.delete": parts + intermediates,
                }, parts
                assert run_jobs(app) == ["ready"]
    finally:
        restore()
