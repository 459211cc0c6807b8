"""Share links: a public download as fast as the owner's, and link metadata under load.

Run from the repository root:  python bench/share.py [--size-mib 1024] [--rounds 3]
                                                     [--clients 16] [--seconds 10]

Setup: a scratch PostgreSQL database (migrated with `instashare-server migrate`), a private
redis-server, local storage in a temp dir, `instashare-server serve --workers 2` and
`instashare-server worker` in production mode. A user uploads a file of `--size-mib` MiB
(random bytes written to disk a MiB at a time, sent over tus in 64 MiB PATCHes streamed
from the disk; nothing holds the file in memory), waits until it is `ready` (random bytes
are STORED, so its ZIP is as large as it), and makes a share link to it (no password, no
limit). The worker is stopped then: it is not what is measured.

1. Throughput: `curl` downloads the ZIP to /dev/null through the owner's route
   (`GET /api/v1/files/{id}/content` with the token) and through the link
   (`GET /s/{token}/content`, no token), `--rounds` times each, the two taking turns and
   each round starting with the other one (after one unmeasured download of each, so the
   file is in the page cache for both). It prints each download's MiB/s, the medians and
   public/owner; target ≥ 0.95.
2. Latency: `--clients` keep-alive connections (asyncio, each sending its next request as
   the last answer arrives) ask `GET /s/{token}` for the link's metadata (JSON) for
   `--seconds` after a one-second warm-up; it prints requests per second and p50/p90/p99/
   max latency (time from a request's write to its answer's last byte).
3. Resumes: the same load of 1 KiB range requests (`Range: bytes=1-1024` with `If-Range`)
   on the link without a limit (its ETag: nothing is written) and on a second link with
   `max_downloads` = `--clients`, after as many downloads (`bytes=0-0`), each client
   presenting the ticket of one of them (each download's row has one writer, as when a
   client resumes its own): each such resume reserves its bytes with one guarded UPDATE
   in the database before it is sent. It prints both, and the resumes' requests/s as a
   share of the plain ranges' (a figure, not a target).

Exit status 1 when the throughput ratio is below the target, a download was short or not a
200, or a metadata request failed. Everything it started is stopped by PID and the scratch
database dropped. `--size-mib 64 --seconds 3` is a quick check.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from _support import (
    API,
    ROOT,
    Client,
    Processes,
    account,
    percentile,
    private_redis,
    production_env,
    run_in_scratch,
    start_serve,
    stop,
)

MIB = 1024 * 1024
PATCH_BYTES = 64 * MIB
RATIO_TARGET = 0.95


def write_random_file(path: Path, size: int) -> None:
    """`size` random bytes at `path`, a MiB at a time."""
    with open(path, "wb") as out:
        left = size
        while left > 0:
            block = os.urandom(min(MIB, left))
            out.write(block)
            left -= len(block)


def _blocks(path: Path, start: int, length: int) -> Iterator[bytes]:
    with open(path, "rb") as source:
        source.seek(start)
        left = length
        while left > 0:
            block = source.read(min(MIB, left))
            if not block:
                raise SystemExit(f"{path} shrank while it was being uploaded")
            left -= len(block)
            yield block


def upload(base: str, auth: dict[str, str], path: Path) -> str:
    """Upload `path` over tus in PATCH_BYTES pieces streamed from disk; the file's id."""
    size = path.stat().st_size
    tus = {**auth, "Tus-Resumable": "1.0.0"}
    metadata = f"filename {base64.b64encode(path.name.encode()).decode()}"
    with httpx.Client(base_url=base, timeout=600) as http:
        created = http.post(
            f"{API}/uploads",
            headers={**tus, "Upload-Length": str(size), "Upload-Metadata": metadata},
        )
        if created.status_code != 201:
            raise SystemExit(f"tus creation answered {created.status_code}: {created.text}")
        location = created.headers["Location"]
        offset = 0
        while offset < size:
            length = min(PATCH_BYTES, size - offset)
            patched = http.patch(
                location,
                headers={
                    **tus,
                    "Content-Type": "application/offset+octet-stream",
                    "Content-Length": str(length),
                    "Upload-Offset": str(offset),
                },
                content=_blocks(path, offset, length),
            )
            if patched.status_code != 204:
                raise SystemExit(f"PATCH at {offset} answered {patched.status_code}")
            offset = int(patched.headers["Upload-Offset"])
    return location.rstrip("/").rsplit("/", 1)[-1]


def wait_until_ready(base: str, auth: dict[str, str], file_id: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=base, headers=auth, timeout=30) as http:
        while True:
            file = http.get(f"{API}/files/{file_id}").json()
            if file["status"] == "ready":
                return file
            if file["status"] == "failed" or time.monotonic() > deadline:
                raise SystemExit(f"the upload is {file['status']} after {timeout:g} s: {file}")
            time.sleep(0.5)


def curl_mib_s(url: str, headers: dict[str, str], expected: int) -> float:
    """Download `url` to /dev/null with curl; MiB/s (SystemExit unless all `expected` bytes)."""
    argv = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{time_total}"]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    status, size, seconds = out.split()
    if status != "200" or int(size) != expected:
        raise SystemExit(f"{url} answered {status} with {size} of {expected} bytes")
    return expected / MIB / float(seconds)


async def metadata_load(port: int, path: str, clients: int, seconds: float):
    """(requests per second, latencies in s, failures) of `clients` keep-alive connections."""
    return await load(port, f"GET {path}", {"Accept": "application/json"}, clients, seconds)


async def load(
    port: int,
    request_line: str,
    headers: dict[str, str] | list[dict[str, str]],
    clients: int,
    seconds: float,
    ok: bytes = b"HTTP/1.1 200",
):
    """(requests per second, latencies in s, failures) of `clients` keep-alive connections
    sending `request_line` with `headers` (or the n-th client the n-th of a list of them);
    an answer not starting with `ok` is a failure."""
    each = headers if isinstance(headers, list) else [headers] * clients
    requests = []
    for client_headers in each:
        lines = [f"{request_line} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
        lines += [f"{name}: {value}" for name, value in client_headers.items()]
        requests.append(("\r\n".join(lines) + "\r\n\r\n").encode())
    loop = asyncio.get_running_loop()
    counts, failures, warm_up = [0], [], []
    latencies: list[float] = []
    connections = []
    for request in requests[:clients]:
        _, client = await loop.create_connection(
            lambda request=request: Client(request, counts, failures, warm_up, ok),
            "127.0.0.1",
            port,
        )
        connections.append(client)
    await asyncio.sleep(1.0)
    for client in connections:  # from here on, into the measured list
        client.latencies = latencies
    start_count, started = counts[0], time.perf_counter()
    await asyncio.sleep(seconds)
    done, elapsed = counts[0] - start_count, time.perf_counter() - started
    measured = list(latencies)
    for client in connections:
        client.stopped = True
    await asyncio.sleep(0.2)
    return done / elapsed, measured, failures


def run(args: argparse.Namespace, work: Path, procs: Processes, database_url: str) -> bool:
    env = production_env(database_url, private_redis(procs, work), work)
    cli = [sys.executable, "-m", "app.server"]
    subprocess.run([*cli, "migrate"], env=env, cwd=ROOT, check=True, capture_output=True)
    server, port = start_serve(procs, env, work, "share", workers=args.workers)
    worker = procs.start("worker", [*cli, "worker", "--concurrency", "2"], env, work / "worker.log")
    base = f"http://127.0.0.1:{port}"
    auth = account(base)

    source = work / "shared.bin"
    write_random_file(source, args.size_mib * MIB)
    started = time.monotonic()
    file_id = upload(base, auth, source)
    uploaded = time.monotonic() - started
    source.unlink()  # the server has its copy: keep the page cache for that one
    file = wait_until_ready(base, auth, file_id, timeout=120 + args.size_mib / 4)
    ready = time.monotonic() - started - uploaded
    stop(worker)
    made = httpx.post(f"{base}{API}/files/{file_id}/shares", headers=auth, json={}, timeout=30)
    made.raise_for_status()
    link = made.json()["url"]
    token = link.rsplit("/s/", 1)[1]
    size = file["compressed_size"]
    print(
        f"serve --workers {args.workers} (gunicorn {server.pid}), production mode, PostgreSQL, "
        f"Redis, local storage; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    print(
        f"uploaded {args.size_mib} MiB in {uploaded:.1f} s, ready {ready:.1f} s later; "
        f"its ZIP: {size / MIB:.1f} MiB"
    )

    owner = (f"{base}{API}/files/{file_id}/content", auth)
    public = (f"{base}/s/{token}/content", {})
    for url, headers in (owner, public):
        curl_mib_s(url, headers, size)  # warm: the file in the page cache for both
    speeds: dict[str, list[float]] = {"owner": [], "public": []}
    for n in range(args.rounds):
        order = [("owner", owner), ("public", public)]
        for label, (url, headers) in order if n % 2 == 0 else order[::-1]:
            speeds[label].append(curl_mib_s(url, headers, size))
    owner_mib_s = statistics.median(speeds["owner"])
    public_mib_s = statistics.median(speeds["public"])
    ratio = public_mib_s / owner_mib_s
    print()
    print(f"{'download of the ZIP, MiB/s':<34} {'median':>8}   rounds")
    for label, route in (("owner", "/api/v1/files/{id}/content"), ("public", "/s/{token}/content")):
        rounds = " ".join(f"{v:7.1f}" for v in speeds[label])
        print(f"{label + ' ' + route:<34} {statistics.median(speeds[label]):>8.1f}   {rounds}")
    ok = ratio >= RATIO_TARGET
    print(f"target public/owner >= {RATIO_TARGET}: {ratio:.3f}  {'PASS' if ok else 'FAIL'}")

    rps, latencies, failures = asyncio.run(
        metadata_load(port, f"/s/{token}", args.clients, args.seconds)
    )
    print()
    print(
        f"GET /s/{{token}} (metadata), {args.clients} keep-alive clients, {args.seconds:g} s: "
        f"{rps:.0f} requests/s, {len(failures)} failed"
    )
    ms = [v * 1000 for v in latencies]
    print(
        f"latency ms: p50 {percentile(ms, 50):.2f}  p90 {percentile(ms, 90):.2f}  "
        f"p99 {percentile(ms, 99):.2f}  max {max(ms):.2f}  ({len(ms)} requests)"
    )
    if failures:
        print(f"failed: {failures[0]!r} and {len(failures) - 1} more")
    resumed_ok = resumes(base, port, auth, file_id, token, args)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return ok and not failures and resumed_ok


def resumes(base: str, port: int, auth: dict[str, str], file_id: str, token: str, args) -> bool:
    """Phase 3 (see the module doc): plain ranges against resumes that reserve their bytes."""
    made = httpx.post(
        f"{base}{API}/files/{file_id}/shares",
        headers=auth,
        json={"max_downloads": args.clients},
        timeout=30,
    )
    made.raise_for_status()
    limited = made.json()["url"].rsplit("/s/", 1)[1]
    tickets = []
    for _ in range(args.clients):  # one download each, so no two clients share a row
        first = httpx.get(f"{base}/s/{limited}/content", headers={"Range": "bytes=0-0"}, timeout=30)
        if first.status_code != 206:
            raise SystemExit(f"a first download answered {first.status_code}")
        tickets.append(first.headers["ETag"])
    plain = httpx.head(f"{base}/s/{token}/content", timeout=30)
    if plain.status_code != 200:
        raise SystemExit(f"HEAD of the link answered {plain.status_code}")
    print()
    print(f"1 KiB range requests, {args.clients} keep-alive clients, {args.seconds:g} s each:")
    rates = {}
    failed = False
    for label, link, etags in (
        ("plain range (no limit)", token, [plain.headers["ETag"]] * args.clients),
        ("resume with its ticket", limited, tickets),
    ):
        headers = [{"Range": "bytes=1-1024", "If-Range": etag} for etag in etags]
        rps, latencies, failures = asyncio.run(
            load(
                port, f"GET /s/{link}/content", headers, args.clients, args.seconds, b"HTTP/1.1 206"
            )
        )
        rates[label] = rps
        ms = [v * 1000 for v in latencies]
        print(
            f"  {label:<24} {rps:7.0f} requests/s  p50 {percentile(ms, 50):.2f}  "
            f"p99 {percentile(ms, 99):.2f} ms  {len(failures)} failed"
        )
        if failures:
            print(f"  failed: {failures[0]!r} and {len(failures) - 1} more")
            failed = True
    share = rates["resume with its ticket"] / rates["plain range (no limit)"]
    print(f"  resumes/plain ranges: {share:.2f}")
    return not failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="the shared file's size")
    parser.add_argument("--rounds", type=int, default=3, help="downloads each way (medians)")
    parser.add_argument("--clients", type=int, default=16, help="metadata clients at once")
    parser.add_argument("--seconds", type=float, default=10.0, help="metadata load duration")
    parser.add_argument("--workers", type=int, default=2, help="serve's workers")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    args = parser.parse_args()
    if shutil.which("curl") is None:
        raise SystemExit("bench/share.py needs curl")

    return run_in_scratch("share", args.keep, lambda *held: run(args, *held))


if __name__ == "__main__":
    sys.exit(main())
