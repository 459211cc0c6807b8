"""Compression benchmark: our ZIP path against Info-ZIP `zip -6`, and the worker's peak RSS.

Run from the repository root:  python bench/compress.py [--size-mib 256] [--rss-gib 2]
A quick run:                    python bench/compress.py --size-mib 32 --rss-gib 0.25

It generates, in a temp dir, a text log with varied lines and the same amount of random
bytes, and times on each `app.services.compression.write_archive` (LocalStorage, so the
archive is fsynced and verified as in production) and `zip -6` on the same file. Then it
runs a real worker (`instashare-server worker`, SQLite and the filesystem broker) on a
large generated log and reads the peak RSS (VmHWM) of the pool process that compressed it,
and of a bare child process that runs only write_archive. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
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

from app.services.compression import write_archive  # noqa: E402
from app.storage.local import LocalStorage  # noqa: E402

MIB = 1024 * 1024
# Targets (issue 3): speed and size against zip -6 on text; STORED overhead; worker memory.
SPEEDUP_TARGET = 6.0
SIZE_RATIO_TARGET = 1.03
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


def ours(work: Path, source: Input, name: str, content_type: str) -> tuple[float, int, str, Path]:
    """write_archive on `source`; (seconds, archive bytes, method, archive path)."""
    store = LocalStorage(work / "store")
    staged = store.root / "bench" / "uploads" / name
    staged.parent.mkdir(parents=True, exist_ok=True)
    staged.unlink(missing_ok=True)
    os.link(source.path, staged)  # the staged upload, without copying it
    started = time.perf_counter()
    result = write_archive(
        store,
        source_key=f"bench/uploads/{name}",
        archive_key=f"bench/{name}.zip",
        entry_name=name,
        size=source.size,
        crc32=source.crc32,
        sha256=source.sha256,
        content_type=content_type,
        modified_at=dt.datetime.now(dt.UTC),
    )
    took = time.perf_counter() - started
    staged.unlink()
    return took, result.compressed_size, result.method, store.root / "bench" / f"{name}.zip"


def info_zip(work: Path, source: Input, name: str) -> tuple[float, int]:
    """`zip -6` on the same file; (seconds, archive bytes)."""
    out = work / f"{name}.zip6.zip"
    out.unlink(missing_ok=True)
    started = time.perf_counter()
    subprocess.run(["zip", "-6", "-q", "-j", "-X", str(out), str(source.path)], check=True)
    took = time.perf_counter() - started
    size = out.stat().st_size
    out.unlink()
    return took, size


def unzip_test(path: Path) -> str:
    done = subprocess.run(["unzip", "-tq", str(path)], capture_output=True, text=True, check=False)
    return "OK" if done.returncode == 0 else f"FAILED: {done.stdout.strip()} {done.stderr.strip()}"


FAILED: list[bool] = []  # any target missed: the script exits 1


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
    parser.add_argument("--tmp-dir", default=None, help="where to put the inputs (default: TMP)")
    args = parser.parse_args()
    for tool in ("zip", "unzip"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} (Info-ZIP) is needed: apt-get install zip unzip")

    size = args.size_mib * MIB
    with tempfile.TemporaryDirectory(prefix="instashare-bench-", dir=args.tmp_dir) as tmp:
        work = Path(tmp)
        print(f"generating {args.size_mib} MiB of log text and of random bytes in {work} ...")
        segment = log_segment(min(args.unique_mib * MIB, size))
        text = write_input(work / "access.log", size, tiled(segment))
        noise = write_input(work / "noise.bin", size, os.urandom)

        rows = []
        results = {}
        for label, source, name, ctype in (
            ("text log", text, "access.log", "text/plain"),
            ("random", noise, "noise.bin", "application/octet-stream"),
        ):
            our_s, our_size, method, archive = ours(work, source, name, ctype)
            check = unzip_test(archive)
            archive.unlink()
            zip_s, zip_size = info_zip(work, source, name)
            results[label] = (our_s, our_size, zip_s, zip_size, check)
            mib = source.size / MIB
            rows.append(
                (f"{label} {args.size_mib} MiB", f"ours ({method})", our_s, mib / our_s, our_size,
                 our_size / source.size, f"unzip -t {check}")
            )  # fmt: skip
            rows.append(
                (f"{label} {args.size_mib} MiB", "zip -6", zip_s, mib / zip_s, zip_size,
                 zip_size / source.size, "")
            )  # fmt: skip

        print()
        print(f"{'input':<18} {'tool':<16} {'time s':>7} {'MiB/s':>7} {'output bytes':>13} "
              f"{'out/in':>7}  check")  # fmt: skip
        for input_, tool, secs, speed, out, ratio, check in rows:
            print(f"{input_:<18} {tool:<16} {secs:>7.2f} {speed:>7.0f} {out:>13,} {ratio:>7.4f}  "
                  f"{check}")  # fmt: skip

        our_s, our_size, zip_s, zip_size, check = results["text log"]
        speedup = zip_s / our_s
        size_ratio = our_size / zip_size
        _, r_our_size, _, r_zip_size, r_check = results["random"]
        overhead = (r_our_size / size - 1) * 100
        print()
        print("targets")
        print(f"  text: speed ours / zip -6       {speedup:6.2f}x   (>= {SPEEDUP_TARGET}x)   "
              f"{verdict(speedup >= SPEEDUP_TARGET)}")  # fmt: skip
        print(f"  text: size ours / zip -6        {size_ratio:6.3f}x  (<= {SIZE_RATIO_TARGET}x)  "
              f"{verdict(size_ratio <= SIZE_RATIO_TARGET)}")  # fmt: skip
        print(f"  random: ours overhead           {overhead:8.5f}% (<= {RANDOM_OVERHEAD_TARGET}%)  "
              f"{verdict(overhead <= RANDOM_OVERHEAD_TARGET)}   (zip -6: "
              f"{(r_zip_size / size - 1) * 100:.5f}%)")  # fmt: skip
        print(f"  our archives pass unzip -t      text {check}, random {r_check}")
        for source in (text, noise):
            source.path.unlink()

        if args.rss_gib > 0:
            big_size = int(args.rss_gib * 1024) * MIB
            print()
            print(f"peak RSS while compressing a {args.rss_gib:g} GiB log ...")
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
        print(f"\n(this script's own peak RSS: {usage.ru_maxrss / 1024:.0f} MiB)")


if __name__ == "__main__":
    main()
    sys.exit(1 if any(FAILED) else 0)
