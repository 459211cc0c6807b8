"""Upload benchmark: our tus server beside the reference Node tus server and a raw ASGI sink.

Run from the repository root, with the project installed, `curl`, `node` (20.19+) and `npm`:

    python bench/upload.py              # 1 GiB, 3 rounds (medians), then the `serve` section
    python bench/upload.py --quick      # 256 MiB, 1 round, short pauses: a fast check
    python bench/upload.py --no-serve   # the side-by-side section only (no PostgreSQL/Redis)

Side by side, in one run, three servers on loopback, storing on the same disk (a temp dir):
  - ours: `instashare-server dev`, the embedded default (SQLite, local storage, its worker);
  - Node: `@tus/server` 2.4.5 with `@tus/file-store` 2.1.1 (the release built on the same
    `@tus/utils`), installed with `npm install --prefix` into the temp dir and started by a
    five-line script written there;
  - sink: a raw ASGI app (bench/tus_sink.py) that speaks just enough tus and streams each
    body to disk, hashing it: the ceiling.
Three cases, each run against each server in turn, `--rounds` times:
  (a) one `curl -T` PATCH of the whole file (the upload created by a POST first, not timed);
  (b) tuspy (tusclient) in `--chunk-mib` chunks, the creation included;
  (c) `--clients` `curl -T` PATCHes of the whole file at once, to as many uploads: the
      aggregate rate.
It prints, per case, the median MiB/s of ours, Node and the sink, ours/Node (target >= 1.0)
and each round's figures; the largest RSS growth of each server (VmRSS sampled every 20 ms
from a baseline taken just before the run; target <= 64 MiB for ours) and the median CPU
seconds each server spent per GiB received (less blurred by a busy machine than MiB/s).
For ours both count the API process only, not the worker `dev` starts.

Then, unless --no-serve: `instashare-server serve --workers 1` in production mode (a scratch
PostgreSQL database, Redis databases 8 and 9 flushed), sent the same file as multipart
POST /upload_files (curl) and over tus in `--chunk-mib` PATCHes (a keep-alive client that
sends with sendfile(2)); MiB/s against the sink's in case (a) (target >= 0.7x) and the RSS
growth of gunicorn and its worker (target <= 64 MiB).

Every run starts after a sync and a pause (--settle), and its uploads are removed after it
(ours once its worker has processed them, so that no compression overlaps the next run).
The load average is printed too: figures taken on a busy machine do not compare. Exit
status 1 when a target is missed.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from support.client import (
    API,
    TUS,
    Http11,
    account,
    delete_file,
    tus_create,
    tus_metadata,
    wait_for_file,
)
from support.data import write_random_file
from support.processes import Processes, RssSampler, free_port, wait_for_port
from support.report import load_average, word
from support.stack import (
    arguments,
    dev_env,
    scratch_database,
    scratch_dir,
    shared_redis,
    start_dev,
    start_service,
)

BENCH = Path(__file__).resolve().parent
MIB = 1024 * 1024
NODE_PACKAGES = ("@tus/server@2.4.5", "@tus/file-store@2.1.1")
OURS_VS_NODE_TARGET = 1.0
THROUGHPUT_TARGET = 0.7  # of the sink's, for `serve`
RSS_TARGET_MIB = 64

NODE_SERVER = """\
import {Server} from '@tus/server'
import {FileStore} from '@tus/file-store'
const [directory, port] = process.argv.slice(2)
const server = new Server({path: '/files', datastore: new FileStore({directory})})
server.listen({host: '127.0.0.1', port: Number(port)})
"""


# --- the servers side by side ----------------------------------------------------------------


@dataclass
class TusServer:
    """A tus server under test: where uploads are created, and how to clear up after a run."""

    name: str
    pid: int
    endpoint: str  # the tus creation URL
    headers: dict[str, str] = field(default_factory=dict)  # sent with every request
    rss_with_children: bool = True
    remove: Callable[[list[str]], None] = lambda urls: None  # the uploads of a run


def start_node(work: Path, procs: Processes) -> TusServer:
    """Install the reference Node tus server into `work` with npm and start it."""
    prefix = work / "node"
    prefix.mkdir()
    subprocess.run(
        ["npm", "install", "--prefix", str(prefix), "--no-save", "--no-audit", "--no-fund",
         "--loglevel=error", *NODE_PACKAGES],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    (prefix / "server.mjs").write_text(NODE_SERVER)
    (work / "node-store").mkdir()
    port = free_port()
    node = procs.start(
        "node",
        ["node", str(prefix / "server.mjs"), str(work / "node-store"), str(port)],
        dict(os.environ),
        work / "node.log",
    )
    wait_for_port(port)
    version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout

    def remove(urls: list[str]) -> None:
        import httpx

        for url in urls:
            assert httpx.delete(url, headers=TUS, timeout=60).status_code == 204, url

    name = f"Node (@tus/server 2.4.5, node {version.strip()})"
    return TusServer(name, node.pid, f"http://127.0.0.1:{port}/files", remove=remove)


def start_ours(work: Path, procs: Processes, size: int) -> TusServer:
    """`instashare-server dev` with its data (SQLite, storage, queue) in a temp dir."""
    data = work / "dev"
    data.mkdir()
    env = dev_env(
        data, INSTASHARE_MAX_UPLOAD_BYTES=str(2 * size), INSTASHARE_QUOTA_BYTES=str(64 * size)
    )
    dev, port = start_dev(procs, env, work)
    base = f"http://127.0.0.1:{port}"
    auth = account(base)

    def remove(urls: list[str]) -> None:
        for url in urls:
            file_id = url.rsplit("/", 1)[1]
            wait_for_file(base, auth, file_id, 1800, settled=("ready", "failed"))
            delete_file(base, auth, file_id)

    return TusServer(
        "ours (instashare-server dev)",
        dev.pid,
        f"{base}{API}/uploads",
        auth,
        rss_with_children=False,  # the API process, not the worker it starts
        remove=remove,
    )


def start_sink(work: Path, procs: Processes) -> TusServer:
    (work / "sink").mkdir()
    port = free_port()
    sink = procs.start(
        "sink",
        [
            sys.executable,
            str(Path(__file__).with_name("tus_sink.py")),
            str(work / "sink"),
            str(port),
        ],
        dict(os.environ),
        work / "sink.log",
    )
    wait_for_port(port)
    return TusServer("sink (raw ASGI, uvicorn)", sink.pid, f"http://127.0.0.1:{port}/files")


def curl_patch(server: TusServer, url: str, path: Path) -> list[str]:
    """The whole file as one PATCH, as a person would send it with curl."""
    argv = ["curl", "-sS", "--fail", "-D", "-", "-o", "/dev/null", "-X", "PATCH", "-T", str(path),
            "-H", "Tus-Resumable: 1.0.0", "-H", "Upload-Offset: 0",
            "-H", "Content-Type: application/offset+octet-stream"]  # fmt: skip
    for name, value in server.headers.items():
        argv += ["-H", f"{name}: {value}"]
    return [*argv, url]


def check_offset(response_head: bytes, size: int) -> None:
    offsets = [
        line.split(b":", 1)[1].strip()
        for line in response_head.splitlines()
        if line.lower().startswith(b"upload-offset:")
    ]
    assert offsets == [str(size).encode()], response_head


def one_patch(server: TusServer, path: Path) -> tuple[float, list[str]]:
    """Case (a): seconds for one `curl -T` PATCH of the whole file; the upload's URL."""
    size = path.stat().st_size
    url = tus_create(server.endpoint, server.headers, size)
    started = time.perf_counter()
    out = subprocess.run(curl_patch(server, url, path), check=True, capture_output=True)
    elapsed = time.perf_counter() - started
    check_offset(out.stdout, size)
    return elapsed, [url]


def tuspy_upload(server: TusServer, path: Path, chunk: int) -> tuple[float, list[str]]:
    """Case (b): seconds for tuspy to create the upload and send it in `chunk`-byte PATCHes."""
    from tusclient.client import TusClient

    client = TusClient(server.endpoint, headers=dict(server.headers))
    name = f"bench-{uuid.uuid4().hex[:12]}.bin"
    uploader = client.uploader(str(path), chunk_size=chunk, metadata={"filename": name})
    started = time.perf_counter()
    uploader.upload()
    elapsed = time.perf_counter() - started
    assert uploader.offset == path.stat().st_size, uploader.offset
    return elapsed, [uploader.url]


def parallel_patches(server: TusServer, path: Path, clients: int) -> tuple[float, list[str]]:
    """Case (c): seconds until `clients` simultaneous `curl -T` PATCHes all ended."""
    size = path.stat().st_size
    urls = [tus_create(server.endpoint, server.headers, size) for _ in range(clients)]
    started = time.perf_counter()
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    running = [subprocess.Popen(curl_patch(server, url, path), **pipes) for url in urls]
    outputs = [proc.communicate() for proc in running]
    elapsed = time.perf_counter() - started
    for proc, (out, err) in zip(running, outputs, strict=True):
        assert proc.returncode == 0, err
        check_offset(out, size)
    return elapsed, urls


def durable_write(source: Path, work: Path) -> float:
    """MiB/s of this disk for what a tus server that keeps its word must do: copy `source`
    (in the page cache) to a new file in 1 MiB writes and fdatasync it before answering.
    Our server does this for every PATCH; the Node server skips the sync."""
    target = work / "durable.probe"
    started = time.perf_counter()
    with open(source, "rb") as reader, open(target, "wb") as sink:
        while block := reader.read(MIB):
            sink.write(block)
        sink.flush()
        os.fdatasync(sink.fileno())
    seconds = time.perf_counter() - started
    size = target.stat().st_size
    target.unlink()
    return size / MIB / seconds


@dataclass
class Case:
    name: str
    mib: int  # sent per run, all clients together
    run: Callable[[TusServer], tuple[float, list[str]]]
    # per server: (MiB/s, RSS growth in MiB, the server's CPU seconds per GiB) of each run
    runs: dict[str, list[tuple[float, float, float]]] = field(default_factory=dict)

    def median(self, server: TusServer) -> float:
        return statistics.median(rate for rate, _, _ in self.runs[server.name])

    def rss(self, server: TusServer) -> float:
        return max(growth for _, growth, _ in self.runs[server.name])

    def cpu(self, server: TusServer) -> float:
        return statistics.median(cpu for _, _, cpu in self.runs[server.name])


def side_by_side(args, source: Path, work: Path, procs: Processes, settle) -> tuple[bool, float]:
    """The three cases against ours, Node and the sink: whether every target held, and the
    sink's median rate in case (a) (the ceiling for the `serve` section)."""
    size = args.size_mib * MIB
    sink = start_sink(work, procs)
    node = start_node(work, procs)
    ours = start_ours(work, procs, size)
    servers = [ours, node, sink]
    chunk = args.chunk_mib * MIB
    cases = [
        Case("(a) one curl -T PATCH", args.size_mib, lambda s: one_patch(s, source)),
        Case(
            f"(b) tuspy, {args.chunk_mib} MiB chunks",
            args.size_mib,
            lambda s: tuspy_upload(s, source, chunk),
        ),
        Case(
            f"(c) {args.clients} curl -T PATCHes at once",
            args.clients * args.size_mib,
            lambda s: parallel_patches(s, source, args.clients),
        ),
    ]
    loads = []
    disk: list[float] = []
    for round_ in range(args.rounds):
        settle()
        disk.append(durable_write(source, work))
        print(
            f"  round {round_ + 1}, this disk, written and fdatasync'd: {disk[-1]:.0f} MiB/s",
            file=sys.stderr,
            flush=True,
        )
        for case in cases:
            # Each round starts with another server, so that none always runs first.
            turn = round_ % len(servers)
            for server in servers[turn:] + servers[:turn]:
                settle()
                loads.append(os.getloadavg()[0])
                with RssSampler(server.pid, server.rss_with_children) as rss:
                    seconds, urls = case.run(server)
                server.remove(urls)
                case.runs.setdefault(server.name, []).append(
                    (case.mib / seconds, rss.growth_mib, rss.cpu_seconds * 1024 / case.mib)
                )
                print(
                    f"  round {round_ + 1}, {case.name}, {server.name}: "
                    f"{case.mib / seconds:.0f} MiB/s (load {loads[-1]:.1f})",
                    file=sys.stderr,
                    flush=True,
                )

    print(
        f"\nSide by side: {args.size_mib} MiB per client on loopback, {os.cpu_count()} CPUs, "
        f"median of {args.rounds} round(s), MiB/s"
    )
    print(f"  ours: {ours.name}; Node: {node.name}; sink: {sink.name}")
    print(f"  1-min load average before each run: {min(loads):.2f} .. {max(loads):.2f}")
    print(f"{'case':32} {'ours':>7} {'Node':>7} {'sink':>7} {'ours/Node':>10}", end="")
    print("   RSS +MiB, CPU s/GiB: ours/Node/sink")
    ok = True
    verdicts = []
    for case in cases:
        ratio = case.median(ours) / case.median(node)
        growth = " / ".join(f"{case.rss(s):.1f}" for s in servers)
        growth += ", " + " / ".join(f"{case.cpu(s):.2f}" for s in servers)
        print(
            f"{case.name:32} {case.median(ours):7.1f} {case.median(node):7.1f} "
            f"{case.median(sink):7.1f} {ratio:10.2f}   {growth}"
        )
        each = "; ".join(
            f"{label} " + " ".join(f"{rate:.0f}" for rate, _, _ in case.runs[s.name])
            for label, s in zip(("ours", "Node", "sink"), servers, strict=True)
        )
        print(f"{'':32} each round: {each}")
        ok_rate = ratio >= OURS_VS_NODE_TARGET
        ok_rss = case.rss(ours) <= RSS_TARGET_MIB
        ok &= ok_rate and ok_rss
        verdicts.append(
            f"{word(ok_rate)} {case.name}: ours/Node {ratio:.2f} (target >= {OURS_VS_NODE_TARGET})"
        )
        verdicts.append(
            f"{word(ok_rss)} {case.name}: our RSS growth "
            f"{case.rss(ours):.1f} MiB (target <= {RSS_TARGET_MIB} MiB)"
        )
    print("\n".join(verdicts))
    durable = statistics.median(disk)
    print(
        f"This disk writes {durable:.0f} MiB/s durably (1 MiB writes, one fdatasync; median of "
        f"{len(disk)}): our (a) is {cases[0].median(ours) / durable:.2f}x that, Node's "
        f"{cases[0].median(node) / durable:.2f}x (Node answers before its bytes are on disk)."
    )
    return ok, cases[0].median(sink)


# --- `serve`: multipart and tus (sendfile) in production mode -------------------------------


def upload_multipart(base: str, auth: dict[str, str], path: Path) -> tuple[float, str]:
    """Seconds taken, and the new file's id."""
    started = time.perf_counter()
    out = subprocess.run(
        ["curl", "-sS", "--fail-with-body", "-H", "Expect:", "-H",
         f"Authorization: {auth['Authorization']}",
         "-F", f"file=@{path};type=application/octet-stream", f"{base}{API}/upload_files"],
        check=True, capture_output=True,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    return elapsed, json.loads(out.stdout)["id"]


def upload_tus(port: int, auth: dict[str, str], path: Path, chunk: int) -> tuple[float, str]:
    """Seconds taken, and the new file's id."""
    size = path.stat().st_size
    auth = {**auth, **TUS}
    meta = tus_metadata("bench-tus.bin")
    http = Http11(port)
    try:
        with open(path, "rb") as source:
            started = time.perf_counter()
            status, headers, body = http.request(
                "POST",
                f"{API}/uploads",
                {**auth, "Upload-Length": str(size), "Upload-Metadata": meta},
            )
            assert status == 201, body
            url = headers["location"]
            offset = 0
            while offset < size:
                sent_at = time.perf_counter()
                status, headers, body = http.request(
                    "PATCH",
                    url,
                    {
                        **auth,
                        "Content-Type": "application/offset+octet-stream",
                        "Upload-Offset": str(offset),
                    },
                    source,
                    offset,
                    min(chunk, size - offset),
                )
                assert status == 204, body
                offset = int(headers["upload-offset"])
            elapsed = time.perf_counter() - started
            last_patch = time.perf_counter() - sent_at
    finally:
        http.close()
    assert offset == size
    print(f"(serve, tus: the last PATCH, which makes the upload a file, took {last_patch:.2f} s)")
    return elapsed, url.rsplit("/", 1)[1]


def serve_section(args, source: Path, work: Path, procs: Processes, settle, ceiling: float) -> bool:
    """Multipart and tus (sendfile) against `serve`: whether every target held."""
    size = args.size_mib * MIB
    with (
        scratch_database("instashare_bench_upload") as database_url,
        shared_redis((8, 9)) as redis_base,
    ):
        service = start_service(
            procs,
            work,
            database_url,
            workers=1,
            redis_base=redis_base,
            dbs=(8, 9),
            tag="serve",
            INSTASHARE_MAX_UPLOAD_BYTES=str(2 * size),
        )
        server, port, base = service.server, service.port, service.base
        auth = account(base)
        runs: dict[str, list[tuple[float, float]]] = {}
        tus_name = f"tus, {args.chunk_mib} MiB PATCHes"
        for _ in range(args.rounds):
            settle()
            with RssSampler(server.pid) as rss:
                seconds, file_id = upload_multipart(base, auth, source)
            runs.setdefault("multipart POST /upload_files", []).append((seconds, rss.growth_mib))
            delete_file(base, auth, file_id)
            settle()
            with RssSampler(server.pid) as rss:
                seconds, file_id = upload_tus(port, auth, source, args.chunk_mib * MIB)
            runs.setdefault(tus_name, []).append((seconds, rss.growth_mib))
            delete_file(base, auth, file_id)
        # No worker runs here: nothing is left to compress, and the database goes next.
    print(
        f"\nserve: {args.size_mib} MiB upload, gunicorn --workers 1, PostgreSQL, local storage; "
        f"median of {args.rounds} round(s), largest RSS growth; sink {ceiling:.1f} MiB/s in (a)"
    )
    print(f"{'path':34} {'seconds':>8} {'MiB/s':>8} {'x sink':>7} {'RSS +MiB':>9}")
    ok = True
    verdicts = []
    for name, samples in runs.items():
        seconds = statistics.median(s for s, _ in samples)
        growth = max(g for _, g in samples)
        rate = args.size_mib / seconds
        each = " ".join(f"{args.size_mib / s:.0f}" for s, _ in samples)
        print(
            f"{name:34} {seconds:8.2f} {rate:8.1f} {rate / ceiling:7.2f} {growth:9.1f}"
            f"   (each round: {each} MiB/s)"
        )
        ok_rate = rate / ceiling >= THROUGHPUT_TARGET
        ok_rss = growth <= RSS_TARGET_MIB
        ok &= ok_rate and ok_rss
        verdicts.append(
            f"{word(ok_rate)} serve {name}: throughput {rate / ceiling:.2f}x "
            f"sink (target >= {THROUGHPUT_TARGET}x)"
        )
        verdicts.append(
            f"{word(ok_rss)} serve {name}: RSS growth {growth:.1f} MiB "
            f"(target <= {RSS_TARGET_MIB} MiB)"
        )
    print("\n".join(verdicts))
    return ok


def main() -> int:
    parser = arguments(__doc__, keep=False)
    parser.add_argument("--size-mib", type=int, default=1024, help="per client")
    parser.add_argument("--chunk-mib", type=int, default=8, help="tus chunk (tuspy, serve)")
    parser.add_argument("--clients", type=int, default=4, help="at once, in case (c)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--settle", type=float, default=8.0, help="seconds of pause before a run")
    parser.add_argument("--quick", action="store_true", help="256 MiB, 1 round, 3 s pauses")
    parser.add_argument("--no-serve", action="store_true", help="skip the `serve` section")
    args = parser.parse_args()
    if args.quick:
        args.size_mib, args.rounds, args.settle = 256, 1, 3.0

    def settle() -> None:
        # Before each run: no dirty pages, and a pause. Writing into page cache that this VM
        # has not touched lately costs host page faults (~400 MiB/s here), while memory freed
        # a moment ago is reused at ~4 GiB/s; after a few seconds freed memory goes back to
        # the host. Without the pause, whichever run came right after a deletion won.
        os.sync()
        time.sleep(args.settle)

    print(f"load average at the start: {load_average()}")
    procs = Processes()
    with scratch_dir("upload") as work:
        try:
            source = work / "upload.bin"
            write_random_file(source, args.size_mib * MIB)
            ok, ceiling = side_by_side(args, source, work, procs, settle)
            if not args.no_serve:
                ok &= serve_section(args, source, work, procs, settle, ceiling)
            print(f"load average at the end: {load_average()}")
            return 0 if ok else 1
        finally:
            procs.stop_all()


if __name__ == "__main__":
    sys.exit(main())
