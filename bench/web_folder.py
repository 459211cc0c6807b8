"""The web app uploading a folder of many small files: files per second to uploaded and to
ready.

Run from the repository root:  python bench/web_folder.py [--files 1000] [--folders 10]
                                                          [--size 2000] [--flat]

Needs PostgreSQL at `127.0.0.1:5432` (user `postgres`, trust), `redis-server` and Debian's
`chromium` (driven by Playwright). Setup: a scratch database, a private redis-server, local
storage in a temp dir, `instashare-server serve --workers 2` in production mode and
`instashare-server worker --concurrency 2` (ready means compressed by the worker).

A folder `batch/` of `--files` files of `--size` bytes of text, spread over `--folders`
subfolders, is chosen with the app's folder picker (as a person choosing it with "Choose a
folder…"); the app sends each file over tus with its `relativePath`, several at once
(`--flat`: the same files chosen with the file picker, no folders made, for comparison). Times
are from choosing the folder to the upload item saying all were uploaded, and to the API
counting every file ready. The issue's target for the CLI is 50 files/s on this 2-core
machine; the same figure is printed for the web app, and the exit status is 1 only when an
upload failed or the structure came out wrong.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright
from support.client import register
from support.report import machine
from support.stack import API, arguments, scratch_main, start_service

TARGET_FILES_PER_S = 50


def make_folder(root: Path, files: int, folders: int, size: int) -> Path:
    batch = root / "batch"
    for n in range(files):
        path = batch / f"part-{n % folders:02d}" / f"file-{n:05d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text((f"line {n}\n" * (size // 6 + 1))[:size])
    return batch


def counted(http: httpx.Client, status: str | None = None) -> int:
    params = {"limit": 1, **({"status": status} if status else {})}
    response = http.get("/files", params=params)
    response.raise_for_status()
    return response.json()["total"]


def run(args, work: Path, procs, database_url: str) -> bool:
    service = start_service(procs, work, database_url, workers=2, worker=("--concurrency", "2"))
    base = service.base
    print(
        f"serve --workers 2, worker --concurrency 2, production mode, PostgreSQL, Redis, local "
        f"storage; {machine()}"
    )
    batch = make_folder(work, args.files, args.folders, args.size)
    _, _, token = register(base)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("bench/web_folder.py needs chromium (Debian: apt-get install chromium)")
    headers = {"Authorization": f"Bearer {token}"}
    with (
        httpx.Client(base_url=f"{base}{API}", headers=headers, timeout=30) as http,
        sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            context = browser.new_context(base_url=base, viewport={"width": 1440, "height": 900})
            context.add_init_script(f"sessionStorage.setItem('instashare.token', {token!r});")
            page = context.new_page()
            page.goto("/")
            page.locator("#app-view[data-loaded]").wait_for(timeout=30_000)
            page.evaluate("performance.setResourceTimingBufferSize(1000000)")
            started = time.monotonic()
            if args.flat:
                page.set_input_files("#picker", sorted(str(f) for f in batch.rglob("*.txt")))
            else:
                page.set_input_files("#folder-picker", str(batch))
            done = page.locator("#uploads .upload.group.done, #uploads .upload.group.failed")
            done.first.wait_for(state="attached", timeout=3_600_000)
            uploaded_s = time.monotonic() - started
            # What each request took as the browser saw it (Resource Timing; XHRs included).
            timings = page.evaluate(
                """() => performance.getEntriesByType('resource')
                    .filter((e) => ['xmlhttprequest', 'fetch'].includes(e.initiatorType))
                    .map((e) => [
                        new URL(e.name).pathname.replace(/[0-9a-f-]{36}/g, '{id}'), e.duration,
                    ])"""
            )
            if page.locator("#uploads .upload.failed").count():
                print(page.locator("#uploads .upload.failed").inner_text())
                return False
            while counted(http, "ready") + counted(http, "failed") < args.files:
                time.sleep(0.2)
            ready_s = time.monotonic() - started
            failed = counted(http, "failed")
            folders = http.get("/entries").json()["items"]
        finally:
            browser.close()
    print()
    where = "chosen as files (no folders)" if args.flat else f"in {args.folders} folders"
    print(f"{args.files} files of {args.size} B {where}, through the web app")
    print(f"  uploaded   {uploaded_s:7.1f} s   {args.files / uploaded_s:7.1f} files/s")
    print(
        f"  ready      {ready_s:7.1f} s   {args.files / ready_s:7.1f} files/s"
        f"   (the CLI's target: {TARGET_FILES_PER_S} files/s)"
    )
    print(f"  failed     {failed}")
    print("requests the page made while uploading, as the browser timed them (ms):")
    by_path: dict[str, list[float]] = {}
    for path, duration in timings:
        by_path.setdefault(path, []).append(duration)
    for path, durations in sorted(by_path.items(), key=lambda item: -len(item[1])):
        print(
            f"  {path:<32} {len(durations):6d}   median {statistics.median(durations):7.1f}"
            f"   max {max(durations):7.1f}"
        )
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return failed == 0 and [f["name"] for f in folders if f["kind"] == "folder"] == (
        [] if args.flat else ["batch"]
    )


def main() -> int:
    parser = arguments(__doc__)
    parser.add_argument("--files", type=int, default=1000, help="files in the folder")
    parser.add_argument("--folders", type=int, default=10, help="subfolders they are spread over")
    parser.add_argument("--size", type=int, default=2000, help="bytes per file")
    parser.add_argument(
        "--flat", action="store_true", help="choose the files with the file picker instead"
    )
    return scratch_main("web_folder", parser, run)


if __name__ == "__main__":
    sys.exit(main())
