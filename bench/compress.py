"""Compression benchmark: both settings of our ZIP path against Info-ZIP `zip -6`, the
parallel deflate on two cores against one, and the worker's peak RSS.

Run from the repository root:  python bench/compress.py [--size-mib 256] [--rss-gib 2]
A quick run:                    python bench/compress.py --size-mib 32 --rss-gib 0.25

It generates, in a temp dir, a text log with varied lines and the same amount of random
bytes. On the log it times `app.archive.writer.write_archive` (LocalStorage, so the
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
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from support.data import Input, log_segment, tiled, write_input
from support.processes import ROOT, Processes, children, status_kib, stop
from support.report import Verdicts, load_average
from support.stack import CLI, dev_env

sys.path.insert(0, str(ROOT))

from app.archive.writer import PARALLEL_THRESHOLD

MIB = 1024 * 1024
# Targets, against zip -6 on the text log, for each setting (issues 3 and 12): `fast` at
# 6x its speed or more, at most ~1.13x its size (the trade issue 12 keeps); `small` no
# larger, at 2x its speed or more. The parallel path: `small` on two cores at 1.5x its
# speed on one or more. STORED overhead on random bytes; the worker's memory.
TARGETS = {"fast": (6.0, 1.15), "small": (2.0, 1.0)}  # setting: (speed-up >=, size ratio <=)
PARALLEL_SPEEDUP_TARGET = 1.5
RANDOM_OVERHEAD_TARGET = 0.1  # percent
RSS_TARGET_MIB = 128
verdict = Verdicts()  # any target missed: the script exits 1


OURS_CHILD = """
import datetime as dt, json, os, sys, time
os.sched_setaffinity(0, {int(c) for c in sys.argv[6].split(",")})
from app.archive.deflate import usable_cores
from app.archive.writer import write_archive
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


# Peak memory


BARE_CHILD = """
import datetime as dt, sys
from app.archive.writer import write_archive
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

    env = dev_env(work / "worker")
    settings = Settings.from_env(env)
    upgrade(settings.database_url)
    rt = build_runtime(settings)
    procs = Processes()
    proc = procs.start("worker", [*CLI, "worker", "--concurrency", "1"], env, work / "worker.log")
    try:
        deadline = time.monotonic() + 60
        while not (kids := children(proc.pid)):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the worker did not start:\n{(work / 'worker.log').read_text()}")
            time.sleep(0.1)
        pool = kids[0]
        time.sleep(2)  # let it finish starting up
        idle = status_kib(pool, "VmRSS") / 1024

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
        peak = status_kib(pool, "VmHWM") / 1024
    finally:
        stop(proc)
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
    sys.exit(0 if verdict.ok else 1)
