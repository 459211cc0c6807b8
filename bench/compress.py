"""Compression benchmark: both settings of our ZIP path against Info-ZIP `zip -6`, the
parallel deflate on two cores against one, and the worker's peak RSS.

Run from the repository root:  python bench/compress.py [--size-mib 256] [--rss-gib 2]
A quick run:                    python bench/compress.py --size-mib 32 --rss-gib 0.25

It generates, in a temp dir, a text log with varied lines and the same amount of random
bytes. On the log it times `app.services.compression.write_archive` (LocalStorage, so the
archive is fsynced and verified as in production) with each INSTASHARE_COMPRESSION
setting, in a child process allowed two cores (the parallel path) and one allowed a
single core, and `zip -6` on the same file; the best of `--rounds` each. On the random
bytes it checks the STORED overhead. Then it runs a real worker (`instashare-server
worker`, SQLite and the filesystem broker) on a large generated log and reads the peak RSS
(VmHWM) of the pool process that compressed it, and of a bare child process that runs only
write_archive. See bench/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.services.compression import PARALLEL_THRESHOLD  # noqa: E402

MIB = 1024 * 1024
# Targets, against zip -6 on the text log, for each setting (issues 3 and 12): `fast` at
# 6x its speed or more, at most ~1.13x its size (the trade issue 12 keeps); `small` no
# larger, at 2x its speed or more. The parallel path: `small` on two cores at 1.5x its
# speed on one or more. STORED overhead on random bytes; the worker's memory.
TARGETS = {"fast": (6.0, 1.15), "small": (2.0, 1.0)}  # setting: (speed-up >=, size ratio <=)
PARALLEL_SPEEDUP_TARGET = 1.5
RANDOM_OVERHEAD_TARGET = 0.1  # percent
RSS_TARGET_MIB = 128

LEVELS = ["INFO"] * 70 + ["DEBUG"] * 15 + ["WARN"] * 10 + ["ERROR"] * 5
METHODS = ["GET"] * 6 + ["POST"] * 2 + ["PUT", "DELETE", "PATCH"]
PATHS = [
    "/api/v1/files",
    "/api/v1/files/{id}",
    "/api/v1/files/{id}/content",
    "/api/v1/upload_files",
    "/api/v1/users/login",
    "/api/v1/users/me",
    "/api/v1/uploads/{id}",
    "/health",
    "/metrics",
]
AGENTS = [
    "curl/8.5.0",
    "python-httpx/0.28.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "instashare-cli/0.1.0",
    "tusd-client/2.1",
]
MESSAGES = [
    "request completed",
    "upload stored",
    "compression queued",
    "token issued",
    "cache miss",
    "slow query",
    "retrying after a transient error",
    "lease renewed",
]
STATUSES = [200] * 12 + [201, 202, 204, 206, 304, 400, 401, 404, 409, 413, 500, 503]


def log_segment(size: int, seed: int = 2024) -> bytes:
    """`size` bytes of an access/application log: no two lines alike."""
    rnd = random.Random(seed)
    clock = 1_715_900_000.0
    parts: list[bytes] = []
    total = 0
    while total < size:
        clock += rnd.expovariate(200)
        t = time.gmtime(clock)
        path = rnd.choice(PATHS).replace("{id}", str(uuid4(rnd)))
        line = (
            f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:"
            f"{t.tm_sec:02d}.{int(clock % 1 * 1000):03d}Z {rnd.choice(LEVELS):<5} "
            f"[worker-{rnd.randrange(8)}] req={rnd.getrandbits(64):016x} "
            f"{rnd.choice(METHODS)} {path} status={rnd.choice(STATUSES)} "
            f"bytes={int(rnd.lognormvariate(8, 2))} dur_ms={rnd.lognormvariate(2, 1):.1f} "
            f'ua="{rnd.choice(AGENTS)}" msg="{rnd.choice(MESSAGES)}"\n'
        ).encode()
        parts.append(line)
        total += len(line)
    return b"".join(parts)[:size]


def uuid4(rnd: random.Random) -> str:
    h = f"{rnd.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:]}"


@dataclass
class Input:
    path: Path
    size: int
    crc32: int
    sha256: str


def write_input(path: Path, size: int, block_source, digest: bool = True) -> Input:
    """Write `size` bytes, block by block, measuring them as an upload would."""
    crc, sha, written = 0, hashlib.sha256(), 0
    with open(path, "wb") as sink:
        while written < size:
            block = block_source(min(size - written, 8 * MIB))
            sink.write(block)
            crc = zlib.crc32(block, crc)
            if digest:
                sha.update(block)
            written += len(block)
    return Input(path, size, crc, sha.hexdigest())


def tiled(segment: bytes):
    """Blocks cut from `segment` repeated: a long log from a unique part of it.

    The unique part (32 MiB by default) is far longer than deflate's 32 KiB window, so
    neither compressor can tell the repetition.
    """
    offset = 0

    def take(n: int) -> bytes:
        nonlocal offset
        out = bytearray()
        while len(out) < n:
            piece = segment[offset : offset + n - len(out)]
            out += piece
            offset = (offset + len(piece)) % len(segment)
        return bytes(out)

    return take


OURS_CHILD = """
import datetime as dt, json, os, sys, time
os.sched_setaffinity(0, {int(c) for c in sys.argv[6].split(",")})
from app.services.compression import usable_cores, write_archive
from app.storage.local import LocalStorage
root, name, size, crc, sha256, _, compression, content_type = sys.argv[1:9]
started, cpu = time.perf_counter(), time.process_time()
result = write_archive(LocalStorage(root), source_key=f"bench/uploads/{name}",
                       archive_key=f"bench/{name}.zip", entry_name=name, size=int(size),
                       crc32=int(crc), sha256=sha256, content_type=content_type,
                       modified_at=dt.datetime.now(dt.UTC), compression=compression)
print(json.dumps({"seconds": time.perf_counter() - started, "size": result.compressed_size,
                  "method": result.method, "cores": usable_cores(),
                  "cpu": time.process_time() - cpu}))
"""


@dataclass
class Run:
    seconds: float
    size: int
    method: str
    check: str
    cpu: float | None = None  # CPU seconds of all its threads (ours only)

    @property
    def busy(self) -> str:
        """How many cores it kept busy on average: what a loaded machine left it."""
        return f"{self.cpu / self.seconds:.2f}" if self.cpu is not None else ""


def ours(
    work: Path, source: Input, name: str, content_type: str, compression: str, cpus: list[int]
) -> Run:
    """write_archive on `source` in a child process allowed only `cpus`."""
    store = work / "store"
    staged = store / "bench" / "uploads" / name
    staged.parent.mkdir(parents=True, exist_ok=True)
    staged.unlink(missing_ok=True)
    os.link(source.path, staged)  # the staged upload, without copying it
    argv = [str(store), name, str(source.size), str(source.crc32), source.sha256,
            ",".join(map(str, cpus)), compression, content_type]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", OURS_CHILD, *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    staged.unlink()
    if done.returncode != 0:
        raise SystemExit(f"the write_archive child failed:\n{done.stderr}")
    report = json.loads(done.stdout)
    assert report["cores"] == len(cpus), report
    archive = store / "bench" / f"{name}.zip"
    check = unzip_test(archive)
    archive.unlink()
    return Run(report["seconds"], report["size"], report["method"], check, report["cpu"])


def best_of(rounds: int, measures: dict) -> dict:
    """For each measure, the fastest of `rounds` runs (the others only met more noise), or a
    run whose check failed. The rounds take turns, so a busy moment hits them all alike."""
    runs: dict = {key: [] for key in measures}
    for _ in range(rounds):
        for key, measure in measures.items():
            runs[key].append(measure())
    best = {}
    for key, tried in runs.items():
        failed = [run for run in tried if run.check != "OK"]
        best[key] = failed[0] if failed else min(tried, key=lambda run: run.seconds)
    return best


def info_zip(work: Path, source: Input, name: str) -> Run:
    """`zip -6` on the same file."""
    out = work / f"{name}.zip6.zip"
    out.unlink(missing_ok=True)
    started = time.perf_counter()
    subprocess.run(["zip", "-6", "-q", "-j", "-X", str(out), str(source.path)], check=True)
    took = time.perf_counter() - started
    size = out.stat().st_size
    out.unlink()
    return Run(took, size, "deflate", "OK")


def unzip_test(path: Path) -> str:
    done = subprocess.run(["unzip", "-tq", str(path)], capture_output=True, text=True, check=False)
    return "OK" if done.returncode == 0 else f"FAILED: {done.stdout.strip()} {done.stderr.strip()}"


FAILED: list[bool] = []  # any target missed: the script exits 1


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: how busy the machine was (it has two cores)."""
    return " ".join(f"{load:.2f}" for load in os.getloadavg())


def verdict(ok: bool) -> str:
    FAILED.append(not ok)
    return "PASS" if ok else "FAIL"


# Peak memory


BARE_CHILD = """
import datetime as dt, sys
from app.services.compression import write_archive
from app.storage.local import LocalStorage
root, size, crc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
write_archive(LocalStorage(root), source_key="bench/uploads/big.log",
              archive_key="bench/big.log.zip", entry_name="big.log", size=size, crc32=crc,
              content_type="text/plain", modified_at=dt.datetime.now(dt.UTC))
with open("/proc/self/status") as status:
    print(next(line for line in status if line.startswith("VmHWM:")).split()[1])
"""


def bare_child_peak_mib(work: Path, source: Input) -> float:
    """Peak RSS of a fresh interpreter that runs write_archive on `source` and nothing else."""
    store = work / "bare"
    staged = store / "bench" / "uploads" / "big.log"
    staged.parent.mkdir(parents=True, exist_ok=True)
    os.link(source.path, staged)
    # The child reports its own VmHWM: a child's ru_maxrss on Linux may count the pages of
    # the parent it was forked from (this script's), not only its own.
    done = subprocess.run(
        [sys.executable, "-c", BARE_CHILD, str(store), str(source.size), str(source.crc32)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"the write_archive child failed:\n{done.stderr}")
    peak_kib = int(done.stdout.split()[-1])
    shutil.rmtree(store)
    return peak_kib / 1024


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            kids += [int(k) for k in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue  # the thread ended between the listing and the read
    return kids


def worker_peak_mib(work: Path, source: Input) -> tuple[float, float, float]:
    """A real `instashare-server worker` compresses `source` as an upload's job.

    (pool process RSS when idle, its peak RSS over the job, seconds the job took), read
    from /proc. SQLite, the filesystem broker and local storage: no servers needed.
    """

    from app.migrate import upgrade
    from app.models import File, FileStatus, User
    from app.runtime import build_runtime
    from app.services import files
    from app.services.spool import SpooledUpload
    from app.settings import Settings

    data = work / "worker"
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSTASHARE_")}
    env.update(
        INSTASHARE_DATA_DIR=str(data),
        INSTASHARE_DATABASE_URL=f"sqlite:///{data}/instashare.db",
        INSTASHARE_LOG_LEVEL="WARNING",
    )
    settings = Settings.from_env(env)
    upgrade(settings.database_url)
    rt = build_runtime(settings)
    log = open(work / "worker.log", "wb")  # noqa: SIM115 - closed when the worker is stopped
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.server", "worker", "--concurrency", "1"],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (kids := _children(proc.pid)):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the worker did not start:\n{(work / 'worker.log').read_text()}")
            time.sleep(0.1)
        pool = kids[0]
        time.sleep(2)  # let it finish starting up
        idle = _status_kib(pool, "VmRSS") / 1024

        with rt.sessions() as session:
            user = User(email="bench@example.com", password_hash="-")  # noqa: S106 - no login
            session.add(user)
            session.commit()
            # The generated file is the spooled upload; measured as the upload parser would.
            upload = SpooledUpload(path=source.path, filename="big.log", content_type="text/plain")
            with open(source.path, "rb") as reader:
                while chunk := reader.read(8 * MIB):
                    upload.update(chunk)
            started = time.monotonic()
            file = files.create(
                session,
                rt.storage,
                rt.jobs,
                owner_id=user.id,
                upload=upload,
                name="big.log",
                quota_bytes=settings.quota_bytes,
            )
            while True:
                session.expire_all()
                status = session.get(File, file.id).status
                if status in (FileStatus.READY, FileStatus.FAILED):
                    break
                if time.monotonic() - started > 600:
                    raise SystemExit("the worker did not finish in 10 minutes")
                time.sleep(0.05)
            took = time.monotonic() - started
            if status != FileStatus.READY:
                raise SystemExit(f"the job failed: {session.get(File, file.id).error}")
        peak = _status_kib(pool, "VmHWM") / 1024
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
        log.close()
    return idle, peak, took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=256, help="text log and random input")
    parser.add_argument("--rss-gib", type=float, default=2.0, help="input for peak RSS; 0 skips")
    parser.add_argument("--unique-mib", type=int, default=32, help="unique part of the log")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each; the best counts")
    parser.add_argument("--tmp-dir", default=None, help="where to put the inputs (default: TMP)")
    args = parser.parse_args()
    for tool in ("zip", "unzip"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} (Info-ZIP) is needed: apt-get install zip unzip")
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("this benchmark compares two cores with one: it needs two")
    two, one = cpus[:2], cpus[:1]

    size = args.size_mib * MIB
    if size <= PARALLEL_THRESHOLD:
        raise SystemExit(f"--size-mib must be over {PARALLEL_THRESHOLD // MIB} (parallel deflate)")
    mib = size / MIB
    with tempfile.TemporaryDirectory(prefix="instashare-bench-", dir=args.tmp_dir) as tmp:
        work = Path(tmp)
        print(f"generating {args.size_mib} MiB of log text and of random bytes in {work} ...")
        segment = log_segment(min(args.unique_mib * MIB, size))
        text = write_input(work / "access.log", size, tiled(segment))
        noise = write_input(work / "noise.bin", size, os.urandom)

        print(f"timing, best of {args.rounds} ... (load average {load_average()})")
        measures = {
            (setting, len(cores)): (
                lambda s=setting, c=cores: ours(work, text, "access.log", "text/plain", s, c)
            )
            for setting in TARGETS
            for cores in (two, one)
        }
        measures["zip -6", 1] = lambda: info_zip(work, text, "access.log")
        runs: dict[tuple[str, int], Run] = best_of(args.rounds, measures)
        zip6 = runs.pop(("zip -6", 1))
        noise_ours = ours(work, noise, "noise.bin", "application/octet-stream", "fast", two)
        noise_zip6 = info_zip(work, noise, "noise.bin")

        text_label, noise_label = f"text log {args.size_mib} MiB", f"random {args.size_mib} MiB"
        rows = [(text_label, f"ours {setting}, {cores} core{'s' if cores > 1 else ''}", run)
                for (setting, cores), run in runs.items()]  # fmt: skip
        rows += [(text_label, "zip -6", zip6),
                 (noise_label, f"ours ({noise_ours.method})", noise_ours),
                 (noise_label, "zip -6", noise_zip6)]  # fmt: skip
        print()
        print(f"{'input':<18} {'tool':<20} {'time s':>7} {'MiB/s':>7} {'output bytes':>13} "
              f"{'out/in':>7} {'cores busy':>10}  check")  # fmt: skip
        for label, tool, run in rows:
            check = f"unzip -t {run.check}" if tool.startswith("ours") else ""
            print(f"{label:<18} {tool:<20} {run.seconds:>7.2f} {mib / run.seconds:>7.0f} "
                  f"{run.size:>13,} {run.size / size:>7.4f} {run.busy:>10}  {check}")  # fmt: skip

        print()
        print("targets (text log; ours on 2 cores unless said)")
        for setting, (speed_target, size_target) in TARGETS.items():
            run = runs[setting, 2]
            speedup, ratio = zip6.seconds / run.seconds, run.size / zip6.size
            print(f"  {setting + ': speed ours / zip -6':<30} {speedup:6.2f}x   "
                  f"(>= {speed_target}x)   {verdict(speedup >= speed_target)}")  # fmt: skip
            print(f"  {setting + ': size ours / zip -6':<30} {ratio:6.3f}x  "
                  f"(<= {size_target}x)  {verdict(ratio <= size_target)}")  # fmt: skip
        for setting in TARGETS:
            parallel = runs[setting, 1].seconds / runs[setting, 2].seconds
            label = f"{setting + ': 2 cores / 1 core':<30} {parallel:6.2f}x   "
            if setting == "small":
                print(f"  {label}(>= {PARALLEL_SPEEDUP_TARGET}x)   "
                      f"{verdict(parallel >= PARALLEL_SPEEDUP_TARGET)}")  # fmt: skip
            else:
                print(f"  {label}(shown, no target)")
            two_core = runs[setting, 2]
            if two_core.cpu is not None and two_core.cpu < 1.5 * two_core.seconds:
                # Not a verdict on the code: other processes held the second core.
                print(f"    (its two-core run kept {two_core.busy} cores busy: the machine "
                      f"was busy elsewhere; the speed-up needs a quiet one)")  # fmt: skip
        overhead = (noise_ours.size / size - 1) * 100
        print(f"  {'random: ours overhead':<30} {overhead:8.5f}% (<= {RANDOM_OVERHEAD_TARGET}%)  "
              f"{verdict(overhead <= RANDOM_OVERHEAD_TARGET)}   (zip -6: "
              f"{(noise_zip6.size / size - 1) * 100:.5f}%)")  # fmt: skip
        checks = [run.check for run in [*runs.values(), noise_ours]]
        print(f"  {'our archives pass unzip -t':<30} {verdict(all(c == 'OK' for c in checks))}")
        for source in (text, noise):
            source.path.unlink()

        if args.rss_gib > 0:
            big_size = int(args.rss_gib * 1024) * MIB
            print()
            print(f"peak RSS while compressing a {args.rss_gib:g} GiB log (fast, every core) ...")
            big = write_input(work / "big.log", big_size, tiled(segment))
            bare = bare_child_peak_mib(work, big)
            idle, peak, took = worker_peak_mib(work, big)
            print(f"  write_archive alone, fresh interpreter: peak {bare:6.1f} MiB")
            print(f"  worker pool process (compress_upload):  peak {peak:6.1f} MiB "
                  f"(idle {idle:.1f} MiB; job {took:.1f} s, {big_size / MIB / took:.0f} MiB/s "
                  f"upload-to-ready)")  # fmt: skip
            print(f"  target: worker peak <= {RSS_TARGET_MIB} MiB   "
                  f"{verdict(peak <= RSS_TARGET_MIB)}")  # fmt: skip
        usage = resource.getrusage(resource.RUSAGE_SELF)
        print(f"\n(this script's own peak RSS: {usage.ru_maxrss / 1024:.0f} MiB; "
              f"load average at the end {load_average()})")  # fmt: skip


if __name__ == "__main__":
    main()
    sys.exit(1 if any(FAILED) else 0)
