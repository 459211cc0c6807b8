"""Download all of a folder link against one file of the same size, in the same run.

Run from the repository root:  python bench/collections.py [--size-mib 2048] [--files 1000]
                                                           [--rounds 3]

Setup: a scratch PostgreSQL database (migrated), a private redis-server, local storage in a
temp dir, `instashare-server serve --workers 1` (one process: its CPU is the API's) and
`instashare-server worker`, production mode. One account uploads a folder `bench` of
`--files` files of random bytes (`--size-mib` MiB in all, over multipart, eight at a time)
and one file of `--size-mib` MiB (over tus, 64 MiB PATCHes streamed from disk), waits until
all are `ready` (random bytes are STORED: the folder's archive and the file's ZIP are the
same size, within their headers), then stops the worker (it is not what is measured) and
makes a link to each: the folder (`POST /shares`) and the file.

1. `curl` downloads to /dev/null, `--rounds` times each, taking turns (after one unmeasured
   download of each, so both are in the page cache): the folder's Download all
   (`/s/{token}/archive`) and the file's link (`/s/{token}/content`). For each: MiB/s,
   time to the first byte (curl's `time_starttransfer`), the API process's CPU seconds per
   GiB sent, and the peak growth of its resident memory over the downloads. Targets:
   throughput ratio ≥ 0.9, the archive's first byte < 1 s, CPU per GiB ratio ≤ 1.2.
2. Resume: Download all cut at half (`Range: bytes=0-<half>`), then the rest
   (`Range: bytes=<half>-` with the first part's ETag in `If-Range`); the two parts joined
   must be byte for byte the whole archive, and `unzip -t` must accept them.

Exit status 1 when a target is missed or a check fails. `--size-mib 256 --files 200` is a
quick check (figures at that size say less: the fixed costs weigh more).
"""

from __future__ import annotations

import hashlib
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from support.client import API, account, tus_upload, wait_for_file
from support.data import write_random_file
from support.processes import Processes, RssSampler, stop
from support.report import machine, word
from support.stack import arguments, scratch_main, start_service

MIB = 1024 * 1024
GIB = 1024 * MIB
PATCH_BYTES = 64 * MIB
THROUGHPUT_TARGET = 0.9
FIRST_BYTE_TARGET = 1.0
CPU_TARGET = 1.2


def upload_folder(base: str, auth: dict[str, str], files: int, size: int) -> str:
    """A folder `bench` of `files` random files, `size` bytes in all: its id."""
    made = httpx.post(f"{base}{API}/folders", headers=auth, json={"name": "bench"}, timeout=30)
    made.raise_for_status()
    folder_id = made.json()["id"]
    each = size // files

    def send(n: int) -> None:
        body = os.urandom(each + (size - each * files if n == 0 else 0))
        sent = httpx.post(
            f"{base}{API}/upload_files",
            headers=auth,
            files={"file": (f"part-{n:05d}.bin", body, "application/octet-stream")},
            data={"folder_id": folder_id},
            timeout=120,
        )
        if sent.status_code != 202:
            raise SystemExit(f"upload {n} answered {sent.status_code}: {sent.text}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, range(files)))
    return folder_id


def wait_for_link(url: str, files: int, timeout: float) -> dict:
    """The folder link's listing once all `files` are ready."""
    deadline = time.monotonic() + timeout
    while True:
        listed = httpx.get(url, timeout=60).json()
        if listed["ready_count"] == files:
            return listed
        if time.monotonic() > deadline:
            raise SystemExit(f"{listed['ready_count']} of {files} ready after {timeout:g} s")
        time.sleep(1)


def curl(url: str, *headers: str, output: str = "/dev/null") -> tuple[int, int, float, float]:
    """(status, bytes, seconds to the first byte, seconds in all) of a curl download."""
    argv = ["curl", "-s", "-o", output, "-w", "%{http_code} %{size_download} "
            "%{time_starttransfer} %{time_total}"]  # fmt: skip
    for header in headers:
        argv += ["-H", header]
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    status, size, first, total = out.split()
    return int(status), int(size), float(first), float(total)


def run(args, work: Path, procs: Processes, database_url: str) -> bool:
    service = start_service(procs, work, database_url, workers=1, worker=())
    base = service.base
    auth = account(base)
    size = args.size_mib * MIB

    started = time.monotonic()
    folder_id = upload_folder(base, auth, args.files, size)
    source = work / "one.bin"
    write_random_file(source, size)
    file_id = tus_upload(base, auth, source, PATCH_BYTES)
    source.unlink()
    folder_link = httpx.post(
        f"{base}{API}/shares",
        headers=auth,
        json={"items": [{"kind": "folder", "id": folder_id}]},
        timeout=30,
    )
    folder_link.raise_for_status()
    folder_url = folder_link.json()["url"]
    listed = wait_for_link(folder_url, args.files, timeout=300 + args.size_mib / 2)
    single = wait_for_file(base, auth, file_id, timeout=300 + args.size_mib / 4)
    print(
        f"serve --workers 1 (pid {service.server.pid}), production mode, PostgreSQL, Redis, "
        f"local storage; {machine()}"
    )
    print(
        f"{args.files} files ({args.size_mib} MiB) and one file of {args.size_mib} MiB "
        f"uploaded and ready in {time.monotonic() - started:.0f} s"
    )
    stop(service.worker)
    file_link = httpx.post(f"{base}{API}/files/{file_id}/shares", headers=auth, json={})
    file_link.raise_for_status()
    routes = {
        "folder": (folder_url + "/archive", listed["archive"]["size"]),
        "file": (file_link.json()["url"] + "/content", single["compressed_size"]),
    }
    print(
        f"Download all: {routes['folder'][1] / MIB:.1f} MiB; the file's ZIP: "
        f"{routes['file'][1] / MIB:.1f} MiB"
    )

    for url, _ in routes.values():
        curl(url)  # warm: both in the page cache
    figures: dict[str, dict[str, list[float]]] = {
        label: {"mib_s": [], "first": [], "cpu_gib": [], "rss": []} for label in routes
    }
    for n in range(args.rounds):
        order = list(routes.items())
        for label, (url, expected) in order if n % 2 == 0 else order[::-1]:
            with RssSampler(service.server.pid) as sampler:
                status, got, first, total = curl(url)
            if status != 200 or got != expected:
                raise SystemExit(f"{url} answered {status} with {got} of {expected} bytes")
            figures[label]["mib_s"].append(got / MIB / total)
            figures[label]["first"].append(first)
            figures[label]["cpu_gib"].append(sampler.cpu_seconds / (got / GIB))
            figures[label]["rss"].append(sampler.growth_mib)

    def median(label: str, key: str) -> float:
        return statistics.median(figures[label][key])

    print()
    print(
        f"{'':<34} {'MiB/s':>8} {'first byte s':>13} {'API CPU s/GiB':>14} {'RSS growth MiB':>15}"
    )
    for label, route in (
        ("folder", "Download all /s/{t}/archive"),
        ("file", "one file /s/{t}/content"),
    ):
        print(
            f"{route:<34} {median(label, 'mib_s'):>8.1f} {median(label, 'first'):>13.3f} "
            f"{median(label, 'cpu_gib'):>14.2f} {max(figures[label]['rss']):>15.1f}"
        )
        print(f"{'  rounds, MiB/s':<34} " + " ".join(f"{v:.1f}" for v in figures[label]["mib_s"]))
    throughput = median("folder", "mib_s") / median("file", "mib_s")
    cpu = median("folder", "cpu_gib") / median("file", "cpu_gib")
    first = max(figures["folder"]["first"])
    checks = [
        (throughput >= THROUGHPUT_TARGET, f"throughput Download all/file {throughput:.3f} "
         f"(target >= {THROUGHPUT_TARGET})"),
        (first < FIRST_BYTE_TARGET, f"Download all's first byte, slowest round {first:.3f} s "
         f"(target < {FIRST_BYTE_TARGET} s)"),
        (cpu <= CPU_TARGET, f"API CPU per GiB Download all/file {cpu:.3f} "
         f"(target <= {CPU_TARGET})"),
    ]  # fmt: skip
    print()
    for ok, sentence in checks:
        print(f"{sentence}  {word(ok)}")
    resumed = resume(routes["folder"][0], work)
    return all(ok for ok, _ in checks) and resumed


def resume(url: str, work: Path) -> bool:
    """Download all cut at half and resumed with If-Range: the same bytes, `unzip -t` passes."""
    whole = work / "whole.zip"
    status, size, _, _ = curl(url, output=str(whole))
    assert status == 200, status
    etag = httpx.head(url, timeout=30).headers["ETag"]
    half = size // 2
    first, rest = work / "first.part", work / "rest.part"
    got = curl(url, f"Range: bytes=0-{half - 1}", output=str(first))
    resumed = curl(url, f"Range: bytes={half}-", f"If-Range: {etag}", output=str(rest))
    joined = work / "joined.zip"
    with open(joined, "wb") as out:
        for part in (first, rest):
            with open(part, "rb") as source:
                while chunk := source.read(MIB):
                    out.write(chunk)
    same = _sha256(joined) == _sha256(whole)
    tested = subprocess.run(["unzip", "-tq", str(joined)], capture_output=True, text=True)
    ok = got[0] == 206 and resumed[0] == 206 and same and tested.returncode == 0
    joined_is = "identical" if same else "DIFFERENT"
    print(
        f"resume at 50 %: parts {got[0]} + {resumed[0]}, joined {joined_is} to the whole "
        f"archive ({size / MIB:.1f} MiB), unzip -t: {tested.stdout.strip()}  {word(ok)}"
    )
    for path in (whole, first, rest, joined):
        path.unlink()
    return ok


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while chunk := source.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def main() -> int:
    parser = arguments(__doc__)
    parser.add_argument(
        "--size-mib", type=int, default=2048, help="the folder's (and the file's) size"
    )
    parser.add_argument("--files", type=int, default=1000, help="files in the folder")
    parser.add_argument("--rounds", type=int, default=3, help="downloads of each (medians)")
    return scratch_main("collections", parser, run, needs=("curl", "unzip"))


if __name__ == "__main__":
    sys.exit(main())
