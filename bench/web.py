"""The web app: its first-load weight, the time to an interactive file list, and a big
browser upload against the CLI's.

Run from the repository root:  python bench/web.py [--size-mib 1024] [--rounds 1]
                                                   [--files 50] [--loads 5]

Needs PostgreSQL at `127.0.0.1:5432` (user `postgres`, trust), `redis-server` and Debian's
`chromium` (driven by Playwright). Setup: a scratch database (migrated with
`instashare-server migrate`), a private redis-server, local storage in a temp dir and
`instashare-server serve --workers 2` in production mode; no worker (compression is not
what is measured, and would take cores from the uploads).

1. Weight: what a first visit to `/` downloads: the page, its stylesheet, tus-js-client and
   every ES module reachable from `main.js`; bytes as served and gzip-compressed (level 6,
   what a compressing proxy in front would send; the service itself does not compress).
2. Time to an interactive list: a signed-in tab (the token in sessionStorage) opens `/`
   for an account with `--files` files; from navigation start to the moment the first page
   of the list is drawn (the app's `instashare:list-ready` performance mark), cold (a
   fresh browser profile) and warm (cached files, revalidated by ETag), `--loads` times
   each; the median.
3. Upload throughput: one `--size-mib` MiB file of random bytes (written to disk a MiB at a
   time), uploaded by the browser app (tus-js-client, 24 MiB PATCHes, from a file picker)
   and by `instashare upload` (the CLI, 8 MiB PATCHes), taking turns for `--rounds` rounds
   (each under its own name: hard links to the one file). Browser time is from choosing
   the file to the upload's success; the CLI's is the whole command. Medians; target
   browser / CLI >= 0.8.

Exit status 1 when the ratio is below the target or an upload failed. Everything it started
is stopped by PID and the scratch database dropped. `--size-mib 256` is a quick check.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright
from support.client import API, register
from support.data import write_random_file
from support.processes import ROOT, Processes
from support.report import machine, word
from support.stack import (
    arguments,
    clean_env,
    scratch_main,
    start_service,
)

MIB = 1024 * 1024
RATIO_TARGET = 0.8
IMPORT = re.compile(r"""^import\s[^;]*?from\s+"(\./[^"]+)";""", re.MULTILINE)
ASSET = re.compile(r"""(?:src|href)="(/app/[^"]+)\"""")


def first_load(base: str) -> list[tuple[str, int, int]]:
    """(path, bytes, gzip bytes) of everything a first visit to `/` downloads."""
    seen: list[tuple[str, int, int]] = []
    with httpx.Client(base_url=base, timeout=30) as http:
        todo = ["/"]
        while todo:
            path = todo.pop(0)
            if any(path == p for p, _, _ in seen):
                continue
            response = http.get(path)
            response.raise_for_status()
            body = response.content
            seen.append((path, len(body), len(gzip.compress(body, 6))))
            if path == "/":
                todo += ASSET.findall(response.text)
            elif path.endswith(".js") and "/vendor/" not in path:
                folder = path.rsplit("/", 1)[0]
                todo += [f"{folder}/{t.removeprefix('./')}" for t in IMPORT.findall(response.text)]
    return seen


def signed_in(browser, base: str, token: str):
    """A fresh browser profile whose tabs start signed in."""
    context = browser.new_context(base_url=base, viewport={"width": 1440, "height": 900})
    context.add_init_script(f"sessionStorage.setItem('instashare.token', {token!r});")
    return context


def list_ready_ms(page) -> float:
    page.goto("/")
    page.locator("#app-view[data-loaded]").wait_for(timeout=30_000)
    return page.evaluate("performance.getEntriesByName('instashare:list-ready').at(-1).startTime")


def browser_upload_s(browser, base: str, token: str, path: Path) -> float:
    context = signed_in(browser, base, token)
    try:
        page = context.new_page()
        page.goto("/")
        page.locator("#app-view[data-loaded]").wait_for(timeout=30_000)
        started = time.monotonic()
        page.set_input_files("#picker", str(path))
        done = page.locator("#uploads .upload.done, #uploads .upload.failed")
        done.first.wait_for(state="attached", timeout=3_600_000)
        elapsed = time.monotonic() - started
        if page.locator("#uploads .upload.failed").count():
            raise RuntimeError(page.locator("#uploads .upload.failed").inner_text())
        return elapsed
    finally:
        context.close()


def cli_upload_s(base: str, email: str, password: str, path: Path, home: Path) -> float:
    env = clean_env(
        XDG_CONFIG_HOME=str(home),
        INSTASHARE_URL=base,
        INSTASHARE_EMAIL=email,
        INSTASHARE_PASSWORD=password,
    )
    cli = [str(Path(sys.executable).with_name("instashare"))]
    if not (home / "instashare").exists():
        subprocess.run([*cli, "login"], env=env, check=True, capture_output=True, cwd=ROOT)
    started = time.monotonic()
    subprocess.run([*cli, "upload", str(path)], env=env, check=True, capture_output=True, cwd=ROOT)
    return time.monotonic() - started


def run(args, work: Path, procs: Processes, database_url: str) -> bool:
    service = start_service(procs, work, database_url, workers=args.workers)
    server, base = service.server, service.base
    print(
        f"serve --workers {args.workers} (gunicorn {server.pid}), production mode, PostgreSQL, "
        f"Redis, local storage; {machine()}"
    )

    files = first_load(base)
    print()
    print(f"{'first load of /':<44} {'bytes':>9} {'gzip':>9}")
    for path, raw, packed in files:
        print(f"{path:<44} {raw:>9} {packed:>9}")
    total_raw = sum(raw for _, raw, _ in files)
    total_gzip = sum(packed for _, _, packed in files)
    print(f"{f'total ({len(files)} requests)':<44} {total_raw:>9} {total_gzip:>9}")

    email, password, token = register(base)
    with httpx.Client(base_url=f"{base}{API}", timeout=30) as http:
        for n in range(args.files):
            http.post(
                "/upload_files",
                headers={"Authorization": f"Bearer {token}"},
                files={"file": (f"note-{n:03d}.txt", b"x" * 1000, "text/plain")},
            ).raise_for_status()

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("bench/web.py needs chromium (Debian: apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            cold, warm = [], []
            for _ in range(args.loads):
                context = signed_in(browser, base, token)
                page = context.new_page()
                cold.append(list_ready_ms(page))
                warm.append(list_ready_ms(page))
                context.close()
            print()
            print(f"open / to an interactive list of {min(args.files, 50)} files, ms (median)")
            print(f"  cold (fresh profile)   {statistics.median(cold):7.1f}   {fmt(cold)}")
            print(f"  warm (cached, 304s)    {statistics.median(warm):7.1f}   {fmt(warm)}")

            source = work / "big.bin"
            write_random_file(source, args.size_mib * MIB)
            times: dict[str, list[float]] = {"browser": [], "cli": []}
            for n in range(args.rounds):
                order = ["browser", "cli"] if n % 2 == 0 else ["cli", "browser"]
                for who in order:
                    path = work / f"{who}-{n}.bin"
                    os.link(source, path)
                    if who == "browser":
                        times[who].append(browser_upload_s(browser, base, token, path))
                    else:
                        times[who].append(cli_upload_s(base, email, password, path, work / "cli"))
        finally:
            browser.close()
    print()
    print(f"upload of {args.size_mib} MiB, MiB/s (median)")
    speeds = {who: [args.size_mib / t for t in ts] for who, ts in times.items()}
    for who in ("browser", "cli"):
        print(f"  {who:<8} {statistics.median(speeds[who]):8.1f}   {fmt(speeds[who])}")
    ratio = statistics.median(speeds["browser"]) / statistics.median(speeds["cli"])
    ok = ratio >= RATIO_TARGET
    print(f"target browser/CLI >= {RATIO_TARGET}: {ratio:.3f}  {word(ok)}")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return ok


def fmt(values: list[float]) -> str:
    return " ".join(f"{v:.1f}" for v in values)


def main() -> int:
    parser = arguments(__doc__)
    parser.add_argument("--size-mib", type=int, default=1024, help="the uploaded file's size")
    parser.add_argument("--rounds", type=int, default=1, help="uploads each way (medians)")
    parser.add_argument("--files", type=int, default=50, help="files in the listed account")
    parser.add_argument("--loads", type=int, default=5, help="page loads, cold and warm each")
    parser.add_argument("--workers", type=int, default=2, help="serve's workers")
    return scratch_main("web", parser, run)


if __name__ == "__main__":
    sys.exit(main())
