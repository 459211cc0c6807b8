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

import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

import httpx
from support.client import (
    API,
    account,
    curl_mib_s,
    keep_alive,
    request_head,
    tus_upload,
    wait_for_file,
)
from support.data import write_random_file
from support.processes import Processes, stop
from support.report import failed, machine, quantiles, word
from support.stack import (
    arguments,
    scratch_main,
    start_service,
)

MIB = 1024 * 1024
PATCH_BYTES = 64 * MIB
RATIO_TARGET = 0.95


async def load(port: int, path: str, headers: list[dict[str, str]], seconds: float, ok: bytes):
    """(requests per second, latencies in s, failures) of keep-alive connections, one for
    each of `headers`, asking GET `path` for `seconds` after a second's warm-up."""
    load = await keep_alive(port, [request_head("GET", path, each) for each in headers], ok)
    load.mark()
    await asyncio.sleep(seconds)
    rps, latencies = load.rate(), list(load.latencies)
    await load.close()
    return rps, latencies, load.failures


def run(args, work: Path, procs: Processes, database_url: str) -> bool:
    service = start_service(procs, work, database_url, workers=args.workers, worker=())
    server, port, base = service.server, service.port, service.base
    auth = account(base)

    source = work / "shared.bin"
    write_random_file(source, args.size_mib * MIB)
    started = time.monotonic()
    file_id = tus_upload(base, auth, source, PATCH_BYTES)
    uploaded = time.monotonic() - started
    source.unlink()  # the server has its copy: keep the page cache for that one
    file = wait_for_file(base, auth, file_id, timeout=120 + args.size_mib / 4)
    ready = time.monotonic() - started - uploaded
    stop(service.worker)
    made = httpx.post(f"{base}{API}/files/{file_id}/shares", headers=auth, json={}, timeout=30)
    made.raise_for_status()
    link = made.json()["url"]
    token = link.rsplit("/s/", 1)[1]
    size = file["compressed_size"]
    print(
        f"serve --workers {args.workers} (gunicorn {server.pid}), production mode, PostgreSQL, "
        f"Redis, local storage; {machine()}"
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
    print(f"target public/owner >= {RATIO_TARGET}: {ratio:.3f}  {word(ok)}")

    metadata = [{"Accept": "application/json"}] * args.clients
    rps, latencies, failures = asyncio.run(
        load(port, f"/s/{token}", metadata, args.seconds, b"HTTP/1.1 200")
    )
    print()
    print(
        f"GET /s/{{token}} (metadata), {args.clients} keep-alive clients, {args.seconds:g} s: "
        f"{rps:.0f} requests/s, {len(failures)} failed"
    )
    print(
        f"latency ms: {quantiles(latencies, scale=1000)}  max {max(latencies) * 1000:.2f}  "
        f"({len(latencies)} requests)"
    )
    if failures:
        print(failed(failures))
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
    any_failed = False
    for label, link, etags in (
        ("plain range (no limit)", token, [plain.headers["ETag"]] * args.clients),
        ("resume with its ticket", limited, tickets),
    ):
        headers = [{"Range": "bytes=1-1024", "If-Range": etag} for etag in etags]
        rps, latencies, failures = asyncio.run(
            load(port, f"/s/{link}/content", headers, args.seconds, b"HTTP/1.1 206")
        )
        rates[label] = rps
        print(
            f"  {label:<24} {rps:7.0f} requests/s  {quantiles(latencies, (50, 99), 1000)} ms  "
            f"{len(failures)} failed"
        )
        if failures:
            print(f"  {failed(failures)}")
            any_failed = True
    share = rates["resume with its ticket"] / rates["plain range (no limit)"]
    print(f"  resumes/plain ranges: {share:.2f}")
    return not any_failed


def main() -> int:
    parser = arguments(__doc__)
    parser.add_argument("--size-mib", type=int, default=1024, help="the shared file's size")
    parser.add_argument("--rounds", type=int, default=3, help="downloads each way (medians)")
    parser.add_argument("--clients", type=int, default=16, help="metadata clients at once")
    parser.add_argument("--seconds", type=float, default=10.0, help="metadata load duration")
    parser.add_argument("--workers", type=int, default=2, help="serve's workers")
    return scratch_main("share", parser, run, needs=("curl",))


if __name__ == "__main__":
    sys.exit(main())
