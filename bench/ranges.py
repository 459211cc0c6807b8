"""Ranges of an original: the last KiB as cheap as the first, and the whole original at
half the ZIP's speed or better (issue 21, item 1).

Run from the repository root:  python bench/ranges.py [--size-mib 512] [--rounds 5]
A quick run:                    python bench/ranges.py --size-mib 128 --rounds 3

1. Size: in a temp dir, `write_archive` (LocalStorage, the default setting, every core)
   compresses a server log (bench/compress.py's: a 32 MiB unique part repeated) of
   `--size-mib` twice: as it does now (a full flush every 4 MiB: the seek index's points)
   and with no points (as archives were written before). It prints both sizes and what
   the points cost.
2. Over HTTP: a scratch PostgreSQL database, a private redis-server, `instashare-server
   serve --workers 2` and `worker` in production mode, local storage. The log is uploaded
   over tus and compressed by the worker (which is stopped once the file is ready). Then,
   on one keep-alive connection, `Range` requests for the first KiB, a KiB in the middle
   and the last KiB of the original (`?format=original`), `--rounds` each in turns: the
   median latency of each, and the bytes the server's processes read meanwhile
   (`rchar` in /proc/<pid>/io, summed over gunicorn's workers: on local storage, what the
   storage backend read, plus the few hundred bytes of each request).
3. `curl` downloads the whole original and the ZIP to /dev/null, `--rounds` times each in
   turns after one unmeasured download of each: the medians in MiB/s and their ratio.

Targets: the last KiB within 5x the first KiB's latency, and under 4 MiB read for it;
the full original at half the ZIP's throughput or more. Exit status 1 if one is missed.
On this 2-core machine the figures move with whatever else runs: it prints the load.
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from support.client import API, account, curl_mib_s, tus_upload, wait_for_file
from support.data import log_segment, tiled, write_input
from support.processes import ROOT, Processes, children, read_bytes, stop
from support.report import Verdicts
from support.stack import (
    arguments,
    scratch_main,
    start_service,
)

sys.path.insert(0, str(ROOT))

MIB = 1024 * 1024
KIB = 1024
LATENCY_RATIO_TARGET = 5.0  # last KiB / first KiB
READ_TARGET = 4 * MIB  # bytes the server reads for the last KiB
THROUGHPUT_TARGET = 0.5  # full original / ZIP
verdict = Verdicts()


def size_cost(log: Path, size: int) -> None:
    """Part 1: the archive with points every 4 MiB against one with none."""
    import zlib

    from app.archive import seek_index
    from app.archive.seek_index import SeekIndex
    from app.archive.writer import write_archive
    from app.storage.local import LocalStorage

    with open(log, "rb") as source:
        crc = 0
        while block := source.read(8 * MIB):
            crc = zlib.crc32(block, crc)
    sizes = {}
    for label, span in (("points every 4 MiB", seek_index.SPAN), ("no points", 1 << 50)):
        with tempfile.TemporaryDirectory(dir=log.parent) as tmp:
            storage = LocalStorage(Path(tmp))
            staged = Path(tmp) / "b" / "up"
            staged.parent.mkdir()
            os.link(log, staged)
            saved, seek_index.SPAN = seek_index.SPAN, span
            try:
                started = time.perf_counter()
                result = write_archive(
                    storage, source_key="b/up", archive_key="b/a.zip", entry_name="access.log",
                    size=size, crc32=crc, content_type="text/plain",
                    modified_at=dt.datetime.now(dt.UTC),
                )  # fmt: skip
                took = time.perf_counter() - started
            finally:
                seek_index.SPAN = saved
            points = len(SeekIndex.from_bytes(result.seek_index).points)
            sizes[label] = result.compressed_size
            index_bytes = len(result.seek_index or b"")
            ratio = result.compressed_size / size
            print(
                f"  {label:<20} {result.compressed_size:>13,} bytes ({ratio:.4f} of the log), "
                f"{points} point(s), index {index_bytes:,} bytes, {took:.2f} s"
            )
    cost = sizes["points every 4 MiB"] / sizes["no points"] - 1
    print(f"  the points cost {cost * 100:+.3f} % in size")


def server_rchar(server: subprocess.Popen) -> int:
    """Bytes read (read(2) and friends) by gunicorn's master and every worker of it."""
    return sum(read_bytes(pid) for pid in [server.pid, *children(server.pid)])


def run(args, work: Path, procs: Processes, database_url: str) -> bool:
    size = args.size_mib * MIB
    print(
        f"generating a {args.size_mib} MiB server log ... (load average {os.getloadavg()[0]:.2f})"
    )
    log = write_input(work / "access.log", size, tiled(log_segment(min(32 * MIB, size))))
    print("\n1. archive size with and without the seek index's points")
    size_cost(log.path, size)

    service = start_service(procs, work, database_url, worker=("--concurrency", "1"))
    server, base = service.server, service.base
    auth = account(base)
    file_id = tus_upload(base, auth, log.path, 64 * MIB)
    file = wait_for_file(base, auth, file_id, timeout=120 + args.size_mib / 4)
    stop(service.worker)
    log.path.unlink()
    print(
        f"\n2. Range requests of the original over HTTP: serve --workers 2, production mode, "
        f"local storage; its ZIP is {file['compressed_size'] / MIB:.1f} MiB"
    )
    url = f"{base}{API}/files/{file_id}/content"
    places = {"first KiB": 0, "middle KiB": size // 2 + 12_345, "last KiB": size - KIB}
    latencies: dict[str, list[float]] = {place: [] for place in places}
    reads: dict[str, list[int]] = {place: [] for place in places}
    with httpx.Client(headers=auth, timeout=120) as http:
        for n in range(args.rounds + 1):
            for place, start in places.items():
                before = server_rchar(server)
                started = time.perf_counter()
                answer = http.get(
                    url,
                    params={"format": "original"},
                    headers={"Range": f"bytes={start}-{start + KIB - 1}"},
                )
                took = time.perf_counter() - started
                read = server_rchar(server) - before
                if answer.status_code != 206 or len(answer.content) != KIB:
                    raise SystemExit(f"{place}: {answer.status_code}, {len(answer.content)} bytes")
                if n:  # the first round only warms up
                    latencies[place].append(took)
                    reads[place].append(read)
    print(f"  {'range':<12} {'median ms':>10} {'min ms':>8} {'server read':>14}")
    for place in places:
        ms = [t * 1000 for t in latencies[place]]
        print(
            f"  {place:<12} {statistics.median(ms):>10.2f} {min(ms):>8.2f} "
            f"{statistics.median(reads[place]):>14,}"
        )
    ratio = statistics.median(latencies["last KiB"]) / statistics.median(latencies["first KiB"])
    last_read = statistics.median(reads["last KiB"])
    print(
        f"  last / first KiB latency {ratio:.2f}x (<= {LATENCY_RATIO_TARGET:g}x)   "
        f"{verdict(ratio <= LATENCY_RATIO_TARGET)}"
    )
    print(
        f"  last KiB read {last_read / MIB:.2f} MiB (< {READ_TARGET / MIB:g} MiB)   "
        f"{verdict(last_read < READ_TARGET)}"
    )

    print(f"\n3. whole downloads with curl, median of {args.rounds}")
    original = (f"{url}?format=original", size)
    zipped = (url, file["compressed_size"])
    for target, expected in (original, zipped):
        curl_mib_s(target, auth, expected)  # warm: the archive in the page cache
    speeds: dict[str, list[float]] = {"original": [], "ZIP": []}
    for n in range(args.rounds):
        order = [("original", original), ("ZIP", zipped)]
        for label, (target, expected) in order if n % 2 == 0 else order[::-1]:
            # Throughput in bytes of the file delivered: MiB of the original, or of the ZIP.
            speeds[label].append(curl_mib_s(target, auth, expected))
    for label, values in speeds.items():
        rounds = " ".join(f"{v:7.1f}" for v in values)
        print(f"  {label:<9} {statistics.median(values):>8.1f} MiB/s   {rounds}")
    ratio = statistics.median(speeds["original"]) / statistics.median(speeds["ZIP"])
    print(
        f"  original / ZIP {ratio:.2f}x (>= {THROUGHPUT_TARGET:g}x)   "
        f"{verdict(ratio >= THROUGHPUT_TARGET)}"
    )
    print(f"\nload average at the end {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    return verdict.ok


def main() -> int:
    parser = arguments(__doc__)
    parser.add_argument("--size-mib", type=int, default=512, help="the log's size")
    parser.add_argument("--rounds", type=int, default=5, help="requests and downloads of each")
    return scratch_main("ranges", parser, run, needs=("curl",))


if __name__ == "__main__":
    sys.exit(main())
