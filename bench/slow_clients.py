"""Slow clients: hundreds of slow uploads and unread downloads must not stall the API.

Run from the repository root:  python bench/slow_clients.py [--slow 200] [--downloads 200]
                                                            [--seconds 30] [--quick]

Setup: a scratch PostgreSQL database (migrated with `instashare-server migrate`), Redis
databases 13 (throttling) and 14 (broker) at 127.0.0.1:6379, flushed before and after, local
storage in a temp dir, and `instashare-server serve` with its default workers in production
mode. A user uploads `--files` random files of `--file-mib` MiB, which `instashare-server
worker` turns into ZIPs; the worker is stopped once they are ready.

Phase 1, the load, every client on a socket of its own:
  - `--slow` uploaders at one byte a second: half tus PATCHes, half multipart
    POST /upload_files, each declaring its Content-Length and dripping its body;
  - `--downloads` GET /files/{id}/content (the ZIP) whose client never reads (SO_RCVBUF
    4 KiB), each waited for until the first bytes of its response reach the client.
    (They would be cut off after the default idle time of 60 s: beyond `--seconds 40`,
    phase 1 runs with INSTASHARE_BODY_IDLE_SECONDS set to `--seconds` + 60.)
Then, while all of them are held, GET /health and an authenticated GET /files?limit=20 are
each sent 20 times a second for `--seconds` (open loop: on schedule, whatever the earlier
ones are doing; a fresh connection each, so every worker is reached), with a 5 s timeout
that counts as 5 s. It prints p50/p90/p99/max per probe with the errors and timeouts, the
serve worker count, the load average, each worker's CPU, threads and RSS, the database
connections, and how the held clients fared: each must still be held at the end (no answer,
no reset), and each download, read to its end at last, must be a complete 200.

Phase 2, the idle cutoff: serve again with INSTASHARE_BODY_IDLE_SECONDS=5 (3 with --quick).
A tus PATCH that sends 3 of its 100 bytes and then nothing must get 408, and HEAD must then
report offset 3; a multipart upload that stops midway must get 408. Unread downloads are
cut short after the idle time; whether their connections are closed is printed, not judged
(uvicorn's close waits to flush what it buffered, so they linger until the client reads or
goes).

Exit status 1 when a probe's p99 is 1 s or more, any probe failed, a held client was let go
during the measurement, or phase 2 saw anything else. Everything it started is stopped by
PID, Redis flushed, the scratch database dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import random
import socket
import struct
import sys
import termios
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from support.client import (
    API,
    TUS,
    Answer,
    account,
    exchange,
    multipart_request,
    parse_head,
    read_answer,
    request_head,
    tus_create,
    tus_patch_head,
    wait_for_file,
)
from support.processes import Processes, ProcStat, children, established, proc_stat, stop
from support.report import percentile, word
from support.stack import (
    arguments,
    database_connections,
    migrate,
    production_env,
    run_in_scratch,
    shared_redis,
    start_serve,
    start_worker,
)

REDIS_DBS = (13, 14)
P99_TARGET_S = 1.0
PROBE_RATE = 20  # requests a second, per probe
PROBE_TIMEOUT_S = 5.0
RCVBUF = 4096
LONGEST_AT_DEFAULT_IDLE_S = 40  # probing time that ends before the default 60 s idle cutoff
MIB = 1024 * 1024


def tus_path(port: int, auth: dict[str, str], length: int, name: str) -> str:
    """A new tus upload's path (what a raw request names)."""
    return urlsplit(tus_create(f"http://127.0.0.1:{port}{API}/uploads", auth, length, name)).path


# --- the held clients ------------------------------------------------------------------------


@dataclass
class Held:
    """One slow uploader: what it sent, and whether the server let it go (and how)."""

    kind: str
    opened: bool = False
    sent: int = 0
    let_go: str = ""  # "HTTP 408", "closed", "ConnectionResetError", ...


async def drip(port: int, head: bytes, body: bytes, held: Held, stop: asyncio.Event) -> None:
    """Send `head` at once, then `body` one byte a second, until stopped or answered."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as exc:
        held.let_go = f"connect: {type(exc).__name__}"
        return
    held.opened = True
    answer = asyncio.ensure_future(read_answer(reader))
    stopping = asyncio.ensure_future(stop.wait())
    try:
        writer.write(head)
        await writer.drain()
        await asyncio.wait({answer, stopping}, timeout=random.random())  # spread the bytes
        for i in range(len(body)):
            if answer.done() or stop.is_set():
                break
            writer.write(body[i : i + 1])
            await writer.drain()
            held.sent += 1
            await asyncio.wait({answer, stopping}, timeout=1.0)
        if answer.done() and not stop.is_set():
            exc = answer.exception()
            if exc is None:
                held.let_go = f"HTTP {answer.result().status}"
            else:
                held.let_go = "closed" if isinstance(exc, EOFError) else type(exc).__name__
    except OSError as exc:
        if not stop.is_set():
            held.let_go = type(exc).__name__
    finally:
        for task in (answer, stopping):
            task.cancel()
        writer.transport.abort()


@dataclass
class Download:
    """A download whose client reads nothing (until `read_to_end`)."""

    sock: socket.socket
    started: bool = False
    status: int = 0
    length: int = 0
    received: int = 0

    @property
    def complete(self) -> bool:
        return self.status == 200 and self.received == self.length


def queued_bytes(sock: socket.socket) -> int:
    """Bytes waiting in the socket's receive queue (FIONREAD)."""
    raw = fcntl.ioctl(sock.fileno(), termios.FIONREAD, struct.pack("i", 0))
    return struct.unpack("i", raw)[0]


async def open_unread_download(port: int, path: str, auth: dict[str, str]) -> Download:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)  # before connect: the window
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.sock_sendall(sock, request_head("GET", path, auth))
    return Download(sock)


async def wait_started(downloads: list[Download], timeout: float) -> None:
    """Until the response of every download reached its client (or `timeout`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for d in downloads:
            d.started = d.started or queued_bytes(d.sock) > 0
        if all(d.started for d in downloads):
            return
        await asyncio.sleep(0.1)


async def read_to_end(d: Download) -> None:
    """Read a download at last: its status, and how many of its body's bytes came."""
    loop = asyncio.get_running_loop()
    d.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, MIB)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await loop.sock_recv(d.sock, 65536)
        if not chunk:
            return
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    d.status, headers = parse_head(head)
    d.length = int(headers.get("content-length", 0))
    d.received = len(rest)
    while d.received < d.length:
        chunk = await loop.sock_recv(d.sock, MIB)
        if not chunk:
            return
        d.received += len(chunk)


async def read_all(downloads: list[Download], timeout: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await asyncio.gather(*(read_to_end(d) for d in downloads), return_exceptions=True)
    for d in downloads:
        d.sock.close()


# --- the probes --------------------------------------------------------------------------------


@dataclass
class Probe:
    """One kind of quick request, its latencies (timeouts count as the timeout) and errors."""

    name: str
    raw: bytes
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    async def once(self, port: int) -> None:
        started = time.perf_counter()
        writer = None
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(self.raw)
                await writer.drain()
                data = await reader.read()  # Connection: close, so up to the end
            status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0
            error = None if status == 200 else f"HTTP {status}"
        except TimeoutError:
            error = "timeout"
        except OSError as exc:
            error = type(exc).__name__
        finally:
            if writer is not None:
                writer.transport.abort()
        self.latencies.append(min(time.perf_counter() - started, PROBE_TIMEOUT_S))
        if error:
            self.errors[error] += 1

    async def run(self, port: int, seconds: float) -> None:
        """PROBE_RATE requests a second, each launched on schedule (open loop)."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        tasks = []
        for i in range(int(seconds * PROBE_RATE)):
            await asyncio.sleep(max(0.0, start + i / PROBE_RATE - loop.time()))
            tasks.append(asyncio.ensure_future(self.once(port)))
        await asyncio.gather(*tasks)

    def p(self, q: float) -> float:
        return percentile(self.latencies, q)


async def loop_lag(stop: asyncio.Event, lags: list[float]) -> None:
    """How late this client's own event loop wakes up (it must not be the bottleneck)."""
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(0.01)
        lags.append(time.perf_counter() - started - 0.01)


# --- setup -------------------------------------------------------------------------------------


def ready_files(base: str, auth: dict[str, str], count: int, size: int) -> list[str]:
    """`count` uploaded files of `size` random bytes, once the worker made them ready."""
    ids = []
    with httpx.Client(base_url=base, headers=auth, timeout=60) as http:
        for i in range(count):
            upload = {"file": (f"download-{i}.bin", os.urandom(size), "text/plain")}
            sent = http.post(f"{API}/upload_files", files=upload)
            if sent.status_code != 202:
                raise SystemExit(f"setup upload answered {sent.status_code}: {sent.text}")
            ids.append(sent.json()["id"])
    for file_id in ids:
        wait_for_file(base, auth, file_id, poll=0.2)
    return ids


# --- phase 1 -----------------------------------------------------------------------------------


@dataclass
class Load:
    """What phase 1 saw."""

    probes: list[Probe]
    held: list[Held]
    downloads: list[Download]
    lags: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    before: dict[int, ProcStat] = field(default_factory=dict)
    after: dict[int, ProcStat] = field(default_factory=dict)
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    server_connections: int = 0
    db: str = ""


async def phase_load(args, port: int, auth: dict[str, str], file_ids: list[str], server_pid: int):
    """Hold the slow clients and the unread downloads, and probe meanwhile."""
    stop_event = asyncio.Event()
    n_tus = args.slow // 2
    drip_bytes = max(100, int(args.seconds) + 60)  # outlasts the setup and the measurement

    urls = [tus_path(port, auth, drip_bytes, f"slow-{i}.bin") for i in range(n_tus)]
    held: list[Held] = []
    drips = []
    for url in urls:
        held.append(Held("tus PATCH"))
        head = tus_patch_head(auth, url, drip_bytes)
        drips.append(drip(port, head, b"x" * drip_bytes, held[-1], stop_event))
    for i in range(args.slow - n_tus):
        held.append(Held("multipart POST"))
        head, body = multipart_request(auth, f"slow-{i}.txt", b"x" * drip_bytes)
        drips.append(drip(port, head, body, held[-1], stop_event))
    drip_tasks = [asyncio.ensure_future(d) for d in drips]

    paths = [f"{API}/files/{file_ids[i % len(file_ids)]}/content" for i in range(args.downloads)]
    downloads = await asyncio.gather(*(open_unread_download(port, p, auth) for p in paths))
    await wait_started(downloads, timeout=20)
    await asyncio.sleep(2.0)  # every dripper has sent its headers and a byte or two

    health = request_head("GET", f"{API}/health", {"Connection": "close"})
    listing = request_head("GET", f"{API}/files?limit=20", {**auth, "Connection": "close"})
    load = Load(
        [Probe("GET /health", health), Probe("GET /files?limit=20", listing)], held, downloads
    )
    lag_stop = asyncio.Event()
    lag_task = asyncio.ensure_future(loop_lag(lag_stop, load.lags))
    load.before = {pid: proc_stat(pid) for pid in children(server_pid)}
    load.load_before = os.getloadavg()
    started = time.monotonic()
    await asyncio.gather(*(p.run(port, args.seconds) for p in load.probes))
    load.elapsed = time.monotonic() - started
    load.after = {pid: proc_stat(pid) for pid in children(server_pid)}
    load.load_after = os.getloadavg()
    load.server_connections = established(port)
    load.db = database_connections(args.database_url)
    for d in downloads:
        d.started = d.started or queued_bytes(d.sock) > 0
    lag_stop.set()
    await lag_task

    stop_event.set()
    await asyncio.gather(*drip_tasks)
    await read_all(downloads, timeout=120)
    return load


def report_load(args, load: Load) -> bool:
    ok = True
    print(
        f"\nphase 1: {args.slow} slow uploaders (1 byte/s) and {args.downloads} unread downloads "
        f"held; {PROBE_RATE} probes/s of each kind for {args.seconds:g} s (took "
        f"{load.elapsed:.1f} s), a fresh connection each, timeout {PROBE_TIMEOUT_S:g} s"
    )
    print(f"{'probe':22} {'n':>5} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}  errors")
    for p in load.probes:
        errors = ", ".join(f"{k} x{v}" for k, v in sorted(p.errors.items())) or "0"
        print(
            f"{p.name:22} {len(p.latencies):5} {p.p(50) * 1000:8.1f} {p.p(90) * 1000:8.1f} "
            f"{p.p(99) * 1000:8.1f} {max(p.latencies) * 1000:8.1f}  {errors}"
        )
    for p in load.probes:
        good = p.p(99) < P99_TARGET_S and not p.errors
        ok &= good
        print(
            f"{word(good)} {p.name}: p99 {p.p(99) * 1000:.0f} ms (target < "
            f"{P99_TARGET_S * 1000:.0f} ms), {p.errors.total()} failed (target 0)"
        )

    print("\nheld clients:")
    held_ok = True
    for kind in sorted({h.kind for h in load.held}):
        group = [h for h in load.held if h.kind == kind]
        let_go = Counter(h.let_go or "never opened" for h in group if h.let_go or not h.opened)
        sent = sorted(h.sent for h in group)
        print(
            f"  {kind:15} {len(group) - let_go.total():4}/{len(group)} held to the end, "
            f"{sent[0]}..{sent[-1]} bytes sent each"
            + (f"; let go: {dict(let_go)}" if let_go else "")
        )
        held_ok &= not let_go
    downloads = load.downloads
    started = sum(d.started for d in downloads)
    statuses = Counter(d.status for d in downloads)
    print(
        f"  {'unread download':15} {started:4}/{len(downloads)} had their response started; "
        f"read at the end: {sum(d.complete for d in downloads)} complete 200s (statuses: "
        + ", ".join(f"{s or 'none'} x{n}" for s, n in sorted(statuses.items()))
        + ")"
    )
    held_ok &= started == len(downloads) and all(d.complete for d in downloads)
    print(f"{word(held_ok)} every slow client was held for the whole measurement")
    ok &= held_ok

    print("\nserver at the end of the measurement:")
    print(f"  serve workers: {len(load.after)} (pids {' '.join(map(str, load.after))})")
    for pid, after in load.after.items():
        before = load.before.get(pid)
        cpu = (after.cpu_s - before.cpu_s) / load.elapsed * 100 if before else float("nan")
        print(
            f"  worker {pid}: CPU {cpu:.0f} %, {after.threads} threads, RSS {after.rss_mib:.0f} MiB"
        )
    print(f"  established connections at the server: {load.server_connections}")
    print(f"  PostgreSQL connections to the scratch database: {load.db}")
    before, after = load.load_before, load.load_after
    print(
        f"  machine: {os.cpu_count()} CPUs, load average {before[0]:.2f} before, "
        f"{after[0]:.2f} {after[1]:.2f} {after[2]:.2f} after"
    )
    print(
        f"  this client's event loop lateness: p99 {percentile(load.lags, 99) * 1000:.1f} ms, "
        f"max {max(load.lags) * 1000:.1f} ms"
    )
    return ok


# --- phase 2 -----------------------------------------------------------------------------------


async def idle_body(port: int, head: bytes, first: bytes, wait: float):
    """Send `head`, then `first` a byte a second, then nothing: (the answer or what happened
    instead, seconds from the last byte to it)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        for i in range(len(first)):
            await asyncio.sleep(1.0)
            writer.write(first[i : i + 1])
            await writer.drain()
        last = time.monotonic()
        try:
            async with asyncio.timeout(wait):
                answer: Answer | str = await read_answer(reader)
        except TimeoutError:
            answer = f"no answer within {wait:g} s"
        except (OSError, EOFError) as exc:
            answer = type(exc).__name__
        return answer, time.monotonic() - last
    finally:
        writer.transport.abort()


def said(answer: Answer | str) -> str:
    if isinstance(answer, str):
        return answer
    offset = answer.headers.get("upload-offset")
    extra = f", Upload-Offset {offset}" if offset is not None else ""
    return f"HTTP {answer.status} ({answer.headers.get('content-type', '-')}{extra})"


async def idle_downloads(port: int, auth: dict[str, str], file_id: str, idle: float, n: int = 5):
    """(server connections while `n` unread downloads run, `idle` + 5 s later, Downloads)."""
    path = f"{API}/files/{file_id}/content"
    downloads = [await open_unread_download(port, path, auth) for _ in range(n)]
    await wait_started(downloads, timeout=10)
    during = established(port)
    await asyncio.sleep(idle + 5)
    after = established(port)
    await read_all(downloads, timeout=30)
    return during, after, downloads


async def phase_idle(port: int, auth: dict[str, str], file_id: str, idle: float) -> bool:
    url = tus_path(port, auth, 100, "idle.bin")
    mp_head, mp_body = multipart_request(auth, "idle.txt", b"x" * 100)
    preamble = mp_body.index(b"\r\n\r\n") + 4
    wait = idle + 30
    (tus_answer, tus_after), (mp_answer, mp_after) = await asyncio.gather(
        idle_body(port, tus_patch_head(auth, url, 100), b"abc", wait),
        idle_body(port, mp_head + mp_body[:preamble], b"abc", wait),
    )
    head = await exchange(port, "HEAD", url, {**auth, **TUS})
    offset = head.headers.get("upload-offset", "?")
    during, after, downloads = await idle_downloads(port, auth, file_id, idle)

    tus_ok = isinstance(tus_answer, Answer) and tus_answer.status == 408 and offset == "3"
    mp_ok = isinstance(mp_answer, Answer) and mp_answer.status == 408
    dl_ok = after == 0 and not any(d.complete for d in downloads)
    print(
        f"\nphase 2: INSTASHARE_BODY_IDLE_SECONDS={idle:g}; the uploads send 3 bytes, one a "
        "second, then nothing"
    )
    print(
        f"  tus PATCH (Content-Length 100): {said(tus_answer)} {tus_after:.1f} s after the last "
        f"byte; HEAD then: {head.status}, Upload-Offset {offset}"
    )
    print(f"  multipart POST /upload_files: {said(mp_answer)} {mp_after:.1f} s after the last byte")
    print(
        f"  {len(downloads)} unread downloads: {during} connections at the server while they "
        f"ran, {after} still open {idle + 5:g} s later; read then: "
        f"{sum(d.received for d in downloads) / len(downloads) / MIB:.2f} MiB of "
        f"{downloads[0].length / MIB:.2f} each on average, "
        f"{sum(d.complete for d in downloads)} complete"
    )
    print(f"{word(tus_ok)} idle tus PATCH: 408, then HEAD says offset 3")
    print(f"{word(mp_ok)} idle multipart upload: 408")
    # Not a target: the app stops sending and ends the response, but uvicorn's close waits
    # to flush what it buffered, so the socket lingers until the client reads or goes.
    print(
        f"{'PASS' if dl_ok else 'NOTE'} idle downloads: cut short"
        + ("" if dl_ok else " (connections linger in uvicorn until the client reads or goes)")
    )
    return tus_ok and mp_ok


# --- main --------------------------------------------------------------------------------------


def run(args, work: Path, procs: Processes, database_url: str) -> bool:
    with shared_redis(REDIS_DBS) as redis_base:
        env = production_env(database_url, redis_base, work, REDIS_DBS)
        migrate(env)
        args.database_url = database_url
        return phases(args, work, procs, env)


def phases(args, work: Path, procs: Processes, env: dict[str, str]) -> bool:
    if args.seconds > LONGEST_AT_DEFAULT_IDLE_S:
        # The unread downloads would meet the default idle cutoff before the probing ends.
        env["INSTASHARE_BODY_IDLE_SECONDS"] = f"{args.seconds + 60:g}"
        print(
            f"(phase 1 with INSTASHARE_BODY_IDLE_SECONDS={args.seconds + 60:g}: --seconds is long)"
        )
    server, port = start_serve(procs, env, work, "load")
    base = f"http://127.0.0.1:{port}"
    auth = account(base)
    worker = start_worker(procs, env, work)
    file_ids = ready_files(base, auth, args.files, args.file_mib * MIB)
    stop(worker)  # idle from here on, and not what is measured
    print(
        f"serve: gunicorn {server.pid} with {len(children(server.pid))} workers (its default), "
        f"production mode, PostgreSQL, Redis, local storage; {len(file_ids)} ready files of "
        f"{args.file_mib} MiB to download; load average {os.getloadavg()[0]:.2f} on "
        f"{os.cpu_count()} CPUs"
    )
    load = asyncio.run(phase_load(args, port, auth, file_ids, server.pid))
    ok = report_load(args, load)
    stop(server)

    env["INSTASHARE_BODY_IDLE_SECONDS"] = f"{args.idle:g}"
    server, port = start_serve(procs, env, work, "idle")
    ok &= asyncio.run(phase_idle(port, auth, file_ids[0], args.idle))
    stop(server)
    return ok


def main() -> int:
    parser = arguments(__doc__)
    parser.add_argument("--slow", type=int, default=200, help="slow uploaders (half of them tus)")
    parser.add_argument("--downloads", type=int, default=200, help="unread downloads")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to probe")
    parser.add_argument("--quick", action="store_true", help="probe 10 s; idle time 3 s")
    parser.add_argument("--files", type=int, default=4, help="distinct files downloaded")
    parser.add_argument("--file-mib", type=int, default=4, help="size of each")
    args = parser.parse_args()
    args.idle = 5.0
    if args.quick:
        args.seconds, args.idle = min(args.seconds, 10.0), 3.0
    return run_in_scratch("slow", args.keep, lambda *held: run(args, *held))


if __name__ == "__main__":
    sys.exit(main())
