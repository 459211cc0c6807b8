"""A 1 GiB download from the web app streams to disk: the browser's memory stays flat."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from playwright.sync_api import expect

from tests.browser.conftest import sign_in
from tests.helpers import ROOT, Account, wait_until

MIB = 1024 * 1024
GIB = 1024 * MIB
PATCH_BYTES = 32 * MIB
# Far below the file's size. A download through a Blob (fetch, `response.blob()`, an object
# URL) holds the whole file in the browser before the first byte reaches disk: > 1 GiB here
# (1038 MiB measured with files.js patched so); following the grant URL grows it by ~6 MiB.
GROWTH_BOUND = 256 * MIB
SAMPLE_SECONDS = 0.1
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
FIGURES = ROOT / ".artifacts" / "big-download.json"


def pseudo_random_chunks(size: int, seed: int = 14) -> Iterator[bytes]:
    """`size` bytes that deflate cannot shrink, one PATCH at a time, cheap to make."""
    # One random block, numbered on each use: its repeats lie 32 MiB apart, far beyond
    # deflate's 32 KiB window, so the worker stores them as they are (and fast).
    block = random.Random(seed).randbytes(PATCH_BYTES)
    for number, start in enumerate(range(0, size, PATCH_BYTES)):
        yield (number.to_bytes(8, "big") + block[8:])[: size - start]


def tus_upload(site, account: Account, name: str, size: int) -> tuple[str, str]:
    """Upload `size` pseudo-random bytes over tus, never all in memory; (file id, sha256)."""
    digest = hashlib.sha256()
    metadata = "filename " + base64.b64encode(name.encode()).decode()
    tus = {**account.headers, "Tus-Resumable": "1.0.0"}
    with httpx.Client(base_url=site.url, timeout=120) as client:
        created = client.post(
            "/api/v1/uploads",
            headers={**tus, "Upload-Length": str(size), "Upload-Metadata": metadata},
        )
        assert created.status_code == 201, created.text
        url = created.headers["Location"]
        offset = 0
        for chunk in pseudo_random_chunks(size):
            sent = client.patch(
                url,
                headers={
                    **tus,
                    "Content-Type": "application/offset+octet-stream",
                    "Upload-Offset": str(offset),
                },
                content=chunk,
            )
            assert sent.status_code == 204, sent.text
            digest.update(chunk)
            offset += len(chunk)
    return url.rsplit("/", 1)[1], digest.hexdigest()


def browser_pids() -> list[int]:
    """This test process's Chromium processes (browser, zygotes, GPU, network, renderers)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue  # gone meanwhile
            # The name in parentheses may hold spaces; the parent's pid follows it.
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [os.getpid()]
    while todo:
        for pid in children.get(todo.pop(), []):
            todo.append(pid)
            try:
                if os.path.basename(os.readlink(f"/proc/{pid}/exe")) == "chromium":
                    found.append(pid)
            except OSError:
                continue
    return found


def browser_rss() -> int:
    """The summed resident memory of the browser's processes, in bytes."""
    total = 0
    for pid in browser_pids():
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_BYTES
        except OSError:
            continue  # a process that ended between the listing and the read
    return total


class MemorySampler:
    """Samples the browser's memory every SAMPLE_SECONDS in a thread; keeps the peak."""

    def __init__(self) -> None:
        self.baseline = browser_rss()
        self.peak = self.baseline
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="browser-rss", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self.peak = max(self.peak, browser_rss())
            self.samples += 1

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, browser_rss())

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def download_and_watch(page, client: httpx.Client, account: Account, file_id: str, sha256: str):
    """Wait for the file, download it in the app and check what reached the disk."""

    def ready() -> dict | None:
        body = client.get(f"/files/{file_id}").json()
        assert body["status"] in ("pending", "processing", "ready"), body
        return body if body["status"] == "ready" else None

    stored = wait_until(ready, 180, interval=0.5, what="the 1 GiB file to be ready")
    assert stored["size"] == GIB and stored["sha256"] == sha256

    sign_in(page, account)
    button = page.locator(f'#files-body tr[data-file-id="{file_id}"]').get_by_role(
        "button", name="Download the original of big-1gib.bin"
    )
    expect(button).to_be_enabled()
    assert browser_pids(), "no Chromium process found under this test process"

    started = time.monotonic()
    with MemorySampler() as memory:
        with page.expect_download() as download:
            button.click()
        saved = Path(download.value.path())  # returns once the last byte is on disk
    seconds = time.monotonic() - started

    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    figures = {
        "bytes": GIB,
        "seconds": round(seconds, 2),
        "MiB_per_second": round(GIB / MIB / seconds),
        "browser_rss_before_MiB": round(memory.baseline / MIB),
        "browser_rss_peak_growth_MiB": round(memory.growth / MIB, 1),
        "samples": memory.samples,
    }
    FIGURES.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print("1 GiB browser download:", json.dumps(figures))

    assert download.value.suggested_filename == "big-1gib.bin"
    assert saved.stat().st_size == GIB
    assert sha256_of(saved) == sha256
    assert memory.samples >= 5, "the download ended before memory could be watched"
    assert memory.growth < GROWTH_BOUND, (
        f"the browser grew by {memory.growth / MIB:.0f} MiB during a 1 GiB download"
    )


def test_a_1_gib_download_streams_to_disk_with_flat_browser_memory(page, site, account):
    file_id, sha256 = tus_upload(site, account, "big-1gib.bin", GIB)
    with httpx.Client(base_url=f"{site.url}/api/v1", headers=account.headers) as client:
        try:
            download_and_watch(page, client, account, file_id, sha256)
        finally:
            # A gigabyte left in the run's storage would outlive the run (pytest keeps the
            # last three runs' temporary directories).
            assert client.delete(f"/files/{file_id}").status_code == 204
