"""A small file of one account behind another account's backlog of large uploads.

Run from the repository root:  python bench/fairness.py [--mode dev|serve|both]

For each mode it starts the service (`dev`: `instashare-server dev`, SQLite, the
`filesystem://` broker and its embedded one-slot worker; `serve`: `instashare-server
serve --workers 2` and `instashare-server worker --concurrency 2 --beat` on a scratch
PostgreSQL database and a private Redis), registers two accounts, and takes:

- alone: the median time from the 202 of a 5-byte upload to GET /files/{id} saying
  `ready`, with nothing else queued;
- behind a backlog: the first account uploads `--backlog` files of `--size-mib` MiB of
  log text (four at a time); once they are all in, the second account uploads the same
  5-byte file, and the same time is taken, with how many large files were still waiting.

Target: behind the backlog, the small file is ready within twice its time alone.
Everything it started is stopped by PID, and the scratch database and temp dir removed.
"""

from __future__ import annotations

import concurrent.futures
import os
import statistics
import sys
import time
from pathlib import Path

import httpx
from support.client import API, account
from support.processes import Processes
from support.report import word
from support.stack import (
    arguments,
    clean_env,
    run_in_scratch,
    start_dev,
    start_service,
)

MIB = 1024 * 1024
SMALL = b"hello"


def log_text(size: int) -> bytes:
    """Log-like text of `size` bytes (it compresses about 5:1, as real logs do)."""
    lines = b"".join(
        b"2024-05-17T10:%02d:%02dZ INFO worker-%d req=%08x GET /files/%d -> 200 in %d ms\n"
        % (i // 60 % 60, i % 60, i % 7, i * 2654435761 % 2**32, i % 9973, i % 311)
        for i in range(MIB // 64)
    )
    return (lines * (size // len(lines) + 1))[:size]


def ready_after(http: httpx.Client, auth: dict, name: str, content: bytes) -> float:
    """Upload `content`; seconds from its 202 until a GET finds it ready."""
    created = http.post(
        f"{API}/upload_files", headers=auth, files={"file": (name, content, "text/plain")}
    )
    answered = time.monotonic()
    if created.status_code != 202:
        raise SystemExit(f"upload answered {created.status_code}: {created.text}")
    file_id = created.json()["id"]
    while True:
        status = http.get(f"{API}/files/{file_id}", headers=auth).json()["status"]
        if status == "ready":
            return time.monotonic() - answered
        if status == "failed" or time.monotonic() - answered > 600:
            raise SystemExit(f"{name} ended {status}")
        time.sleep(0.005)


def waiting(http: httpx.Client, auth: dict) -> int:
    """The account's files not yet ready."""

    def total(**query) -> int:
        got = http.get(f"{API}/files", headers=auth, params={"limit": 1, **query})
        got.raise_for_status()
        return got.json()["total"]

    return total() - total(status="ready")


def measure(base: str, args) -> tuple[float, float, int, float]:
    """(alone s, behind the backlog s, large files still waiting then, backlog drained s)."""
    with httpx.Client(base_url=base, timeout=120) as http:
        owner, other = account(base), account(base)
        for i in range(3):  # warm-up: imports and connections in every process
            ready_after(http, other, f"warm-{i}.txt", SMALL)
        alone = statistics.median(
            ready_after(http, other, f"alone-{i}.txt", SMALL) for i in range(args.alone)
        )
        big = log_text(args.size_mib * MIB)

        def upload(i: int) -> None:
            with httpx.Client(base_url=base, timeout=300) as own:
                got = own.post(
                    f"{API}/upload_files",
                    headers=owner,
                    files={"file": (f"big-{i:03d}.log", big, "text/plain")},
                )
                if got.status_code != 202:
                    raise SystemExit(f"a large upload answered {got.status_code}: {got.text}")

        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(upload, range(args.backlog)))
        behind_backlog = waiting(http, owner)
        behind = ready_after(http, other, "small.txt", SMALL)
        while waiting(http, owner):
            time.sleep(0.1)
        drained = time.monotonic() - started
    return alone, behind, behind_backlog, drained


def run_dev(work: Path, procs: Processes, args) -> tuple:
    env = clean_env(INSTASHARE_LOGIN_MAX_FAILURES_PER_IP="1000")
    _, port = start_dev(procs, env, work, "--data-dir", str(work / "dev"))
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while "celery@" not in _read(work / "dev" / "dev.log") or " ready." not in _read(
        work / "dev" / "dev.log"
    ):
        if time.monotonic() > deadline:
            raise SystemExit("the dev worker did not start")
        time.sleep(0.2)
    return measure(base, args)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def run_serve(work: Path, procs: Processes, database_url: str, args):
    service = start_service(
        procs,
        work,
        database_url,
        worker=("--concurrency", "2", "--beat"),
        INSTASHARE_LOGIN_MAX_FAILURES_PER_IP="1000",
    )
    return measure(service.base, args)


def main() -> int:
    parser = arguments(__doc__)
    parser.add_argument("--mode", choices=["dev", "serve", "both"], default="both")
    parser.add_argument("--backlog", type=int, default=60, help="large uploads queued first")
    parser.add_argument("--size-mib", type=int, default=30, help="each large upload's size")
    parser.add_argument("--alone", type=int, default=7, help="small uploads timed alone")
    args = parser.parse_args()
    modes = ["dev", "serve"] if args.mode == "both" else [args.mode]
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(
        f"{'mode':<6} {'alone ms':>9} {'behind ms':>10} {'ratio':>6} {'queued':>7} "
        f"{'backlog s':>10}  target ratio <= 2"
    )
    ok = True
    for mode in modes:

        def run(work: Path, procs: Processes, database_url: str, mode: str = mode) -> bool:
            got = (
                run_dev(work, procs, args)
                if mode == "dev"
                else run_serve(work, procs, database_url, args)
            )
            alone, behind, queued, drained = got
            ratio = behind / alone
            print(
                f"{mode:<6} {alone * 1000:>9.0f} {behind * 1000:>10.0f} {ratio:>6.2f} "
                f"{queued:>7} {drained:>10.1f}  {word(ratio <= 2)}",
                flush=True,
            )
            return ratio <= 2

        ok &= run_in_scratch(f"fairness_{mode}", args.keep, run) == 0
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
