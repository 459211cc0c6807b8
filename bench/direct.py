"""Direct uploads: a file sent straight to the bucket beside the same file through the API (tus).

Run from the repository root, with the project installed, PostgreSQL and Redis as for the
other benches:

    python bench/direct.py            # 1 GiB in 64 MiB chunks
    python bench/direct.py --quick    # 128 MiB: a fast check

One run: gcp-storage-emulator (in memory) as GCS; `instashare-server serve --workers 1` in
production mode on it (a scratch database, a private Redis; no worker: the files stay
pending, what is measured is the API). The same random file goes up twice, one after the
other: (a) direct, by `instashare upload` (the CLI: start, PUTs of `--chunk-mib` to the
session, complete) and (b) over tus, `--chunk-mib` PATCHes through the API
(bench/support/client.tus_upload). For each: MiB/s (the whole upload, its calls to the API
included), the CPU seconds of the API processes (gunicorn and its worker) and the bytes they
read (`rchar`: every read(2), sockets and files); target: under 1 MiB read for (a).

Then (c): the CLI uploads it direct again and is killed 5 times at random points (each time
once the session holds some more chunks, then a random moment into the next one: frozen
with SIGSTOP, measured, SIGKILLed), each run rerun with the same command. What a killed run
wrote (`wchar`, nearly all of it PUT bodies) beyond what the session kept from it is what
the next run sends again; target: at most one chunk per kill. Exit status 1 if a target is
missed. The emulator copies a session's bytes on every chunk: its throughput is not GCS's,
and (a) and (b) both pay it (b through the API's own 8 MiB writes and a compose).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from support.client import register, tus_upload
from support.data import write_random_file
from support.processes import (
    ROOT,
    cpu_of,
    cpu_since,
    descendants,
    free_port,
    read_bytes,
    wait_for_port,
)
from support.stack import arguments, scratch_main, start_service

MIB = 1024 * 1024
KILLS = 5


def _io(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _api_pids(server: subprocess.Popen) -> list[int]:
    return [server.pid, *descendants(server.pid)]


class Cli:
    """`instashare` as a process, logged in, its config (and unfinished uploads) in `home`."""

    def __init__(self, base: str, home: Path, chunk: int):
        email, password, _ = register(base)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("INSTASHARE_")},
            "XDG_CONFIG_HOME": str(home),
            "INSTASHARE_URL": base,
            "INSTASHARE_CHUNK_SIZE": str(chunk),
        }
        self.home = home
        self.run("login", INSTASHARE_EMAIL=email, INSTASHARE_PASSWORD=password)

    def popen(self, *args: str, **env: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "instashare_cli", *args],
            env={**self.env, **env},
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def run(self, *args: str, **env: str) -> None:
        code = self.popen(*args, **env).wait(timeout=3600)
        if code:
            raise SystemExit(f"instashare {' '.join(args)} exited {code}")

    def session_url(self) -> str | None:
        saved = self.home / "instashare" / "uploads.json"
        entries = json.loads(saved.read_text()).values() if saved.exists() else []
        for entry in entries:
            if entry["url"].startswith("direct "):
                return entry["url"].split(" ")[2]
        return None


def _held(session: str, size: int) -> int:
    answer = httpx.put(session, headers={"Content-Range": f"bytes */{size}"}, timeout=600)
    if answer.status_code in (200, 201):
        return size
    have = answer.headers.get("Range")
    return int(have.rsplit("-", 1)[1]) + 1 if have else 0


def _measured(server: subprocess.Popen, upload) -> tuple[float, float, int]:
    """(MiB/s, API CPU s, API bytes read) of `upload()`."""
    pids = _api_pids(server)
    cpu = cpu_of(pids)
    read = sum(read_bytes(p) for p in pids)
    began = time.monotonic()
    size = upload()
    wall = time.monotonic() - began
    return size / MIB / wall, cpu_since(cpu, pids), sum(read_bytes(p) for p in pids) - read


def _killed_runs(cli: Cli, path: Path, size: int, chunk: int, rnd: random.Random) -> list[int]:
    """The bytes each of KILLS killed runs sent that its session did not keep."""
    resent = []
    held = 0
    for kill in range(KILLS):
        proc = cli.popen("upload", str(path), "--name", "resumed.bin")
        target = min(size - chunk, held + chunk * rnd.randint(1, 2))
        while True:
            session = cli.session_url()
            if session is not None and _held(session, size) >= target:
                break
            if proc.poll() is not None:
                raise SystemExit(f"run {kill + 1} ended before it was killed")
            time.sleep(0.05)
        time.sleep(rnd.uniform(0, 0.5))
        proc.send_signal(signal.SIGSTOP)
        wrote = _io(proc.pid, "wchar")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        before, held = held, _held(session, size)
        resent.append(max(0, wrote - (held - before)))
    cli.run("upload", str(path), "--name", "resumed.bin")
    return resent


def run(args, work: Path, procs, database_url: str) -> bool:
    size = (128 if args.quick else 1024) * MIB
    chunk = args.chunk_mib * MIB
    port = free_port()
    emulator = [str(Path(sys.executable).with_name("gcp-storage-emulator")), "start",
                "--host", "127.0.0.1", "--port", str(port), "--default-bucket", "bench",
                "--in-memory", "--quiet"]  # fmt: skip
    procs.start("gcs", emulator, dict(os.environ), work / "gcs.log")
    wait_for_port(port)
    os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{port}"
    service = start_service(
        procs, work, database_url, workers=1,
        INSTASHARE_STORAGE_BACKEND="gcs", INSTASHARE_GCS_BUCKET="bench",
        INSTASHARE_MAX_UPLOAD_BYTES=str(4 * size),
        # The emulator composes and copies in memory, slowly on a busy machine: the API
        # waits for it as long as it takes (the figures are about the API, not the storage).
        INSTASHARE_GCS_DEADLINE_SECONDS="600", INSTASHARE_GCS_TIMEOUT_SECONDS="600",
    )  # fmt: skip
    path = work / "data.bin"
    write_random_file(path, size)
    cli = Cli(service.base, work / "cli", chunk)
    _, _, token = register(service.base)
    auth = {"Authorization": f"Bearer {token}"}

    def direct() -> int:
        cli.run("upload", str(path), "--name", "direct.bin")
        return size

    def tus() -> int:
        tus_upload(service.base, auth, path, chunk)
        return size

    print(f"{size // MIB} MiB in {args.chunk_mib} MiB chunks, load {os.getloadavg()[0]:.2f}")
    print(f"{'path':8} {'MiB/s':>8} {'API CPU s':>10} {'API read':>12}", flush=True)
    rows = {}
    for name, upload in (("direct", direct), ("tus", tus)):
        rows[name] = rate, cpu, read = _measured(service.server, upload)
        print(f"{name:8} {rate:8.1f} {cpu:10.2f} {read / MIB:9.2f} MiB", flush=True)
    resent = _killed_runs(cli, path, size, chunk, random.Random(args.seed))
    print(f"resumed after {KILLS} kills; re-sent per kill (MiB): "
          + ", ".join(f"{r / MIB:.1f}" for r in resent)
          + f" (a chunk: {args.chunk_mib} MiB)")  # fmt: skip
    ok = rows["direct"][2] < MIB and all(r <= chunk for r in resent)
    print("targets:", "met" if ok else "MISSED")
    return ok


def main() -> int:
    parser = arguments(__doc__)
    parser.add_argument("--quick", action="store_true", help="128 MiB instead of 1 GiB")
    parser.add_argument("--chunk-mib", type=int, default=64, help="chunk and PATCH size")
    parser.add_argument("--seed", type=int, default=25, help="where the kills fall")
    return scratch_main("direct", parser, run)


if __name__ == "__main__":
    sys.exit(main())
