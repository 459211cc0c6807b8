"""A folder of small files uploaded with the CLI (`instashare upload -r`): files per second
until every one is `ready`, through the production setup.

Run from the repository root:  python bench/folder_upload.py [--files 1000] [--jobs 4]

It creates a scratch PostgreSQL database (migrated), starts a private Redis,
`instashare-server serve --workers 2` and `instashare-server worker --concurrency 2 --beat`
in production mode (local storage in a temp dir), registers an account and logs the CLI
in to it (its own config directory). It writes `--files` files of 1-`--size-kib` KiB of
text into `--folders` subdirectories of one directory, then times, from one clock:

- `instashare upload -r DIR --jobs N` until it exits (every file sent);
- until the account's last file is `ready` (GET /files?status=ready&limit=1, its `total`,
  polled every 200 ms), which gives the figure: files per second to ready (target >= 50);

and the CPU milliseconds per file of the CLI, the API (every gunicorn process), the
worker (every process of it), PostgreSQL (the backends serving the scratch database) and
the private Redis, which say where the time goes on a busy machine. With `--statements`
it also counts the SQL statements per file, by their first word, from PostgreSQL's log
(`log_statement = all` set on the scratch database alone; the logging costs some PG CPU).

It checks that the folders and files arrived as on disk (the count per folder through
GET /entries), and prints the load average: figures taken on a busy machine do not
compare. Everything it started is stopped by PID, the database dropped. Exit status 1 when
the target is missed.
"""

from __future__ import annotations

import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

import httpx
from support.client import API, register
from support.processes import ROOT, Processes, cpu_of, cpu_seconds, cpu_since, group_cpu_seconds
from support.report import machine, word
from support.stack import (
    LOG_FILE,
    arguments,
    backend_pids,
    clean_env,
    log_statements,
    scratch_main,
    start_service,
    statements_logged,
)

TARGET_FILES_PER_S = 50.0
WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
]


def write_tree(top: Path, files: int, folders: int, size_kib: int) -> dict[str, int]:
    """`files` text files spread over `folders` subdirectories of `top`: files per folder."""
    rng = random.Random(22)
    per_folder: dict[str, int] = {}
    for i in range(files):
        folder = f"part-{i % folders:02d}"
        (top / folder).mkdir(parents=True, exist_ok=True)
        size = rng.randint(1, size_kib) * 1024
        text = " ".join(rng.choice(WORDS) for _ in range(size // 5))
        (top / folder / f"note-{i:05d}.txt").write_text(text[:size])
        per_folder[folder] = per_folder.get(folder, 0) + 1
    return per_folder


def cli(base: str, config: Path, *args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "instashare_cli", *args],
        env=clean_env(XDG_CONFIG_HOME=str(config), INSTASHARE_URL=base, **env),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def ready_count(http: httpx.Client) -> int:
    return int(http.get(f"{API}/files", params={"status": "ready", "limit": 1}).json()["total"])


def check_tree(http: httpx.Client, top: str, per_folder: dict[str, int]) -> list[str]:
    """What differs between the uploaded tree and `per_folder` (nothing: all is well)."""
    problems = []
    listed = http.get(f"{API}/entries", params={"limit": 100})
    if listed.status_code != 200:
        return [f"GET /entries answered {listed.status_code}"]
    root = {e["name"]: e for e in listed.json()["items"]}
    if top not in root:
        return [f"no folder {top} at the root"]
    listed = http.get(f"{API}/entries", params={"folder_id": root[top]["id"], "limit": 100}).json()
    folders = {e["name"]: e["id"] for e in listed["items"] if e["kind"] == "folder"}
    for name, expected in sorted(per_folder.items()):
        if name not in folders:
            problems.append(f"no folder {top}/{name}")
            continue
        params = {"folder_id": folders[name], "limit": 1}
        total = http.get(f"{API}/entries", params=params).json()["total"]
        if total != expected:
            problems.append(f"{top}/{name} holds {total} entries, not {expected}")
    return problems


def run(args, work: Path, procs: Processes, database_url: str) -> bool:
    if args.statements:
        log_statements(database_url)
    service = start_service(
        procs, work, database_url, worker=("--concurrency", "2", "--beat"), dbs=(9, 10)
    )
    base = service.base
    email, password, token = register(base)
    config = work / "config"
    login = cli(base, config, "login", INSTASHARE_EMAIL=email, INSTASHARE_PASSWORD=password)
    if login.wait(timeout=60):
        raise SystemExit(f"instashare login failed: {login.stderr.read()}")  # type: ignore[union-attr]
    top = work / "notes"
    per_folder = write_tree(top, args.files, args.folders, args.size_kib)
    size = sum(p.stat().st_size for p in top.rglob("*") if p.is_file())

    groups = {"API (gunicorn)": service.server.pid, "worker": service.worker.pid}  # type: ignore[union-attr]
    cpu_before = {name: group_cpu_seconds(pid) for name, pid in groups.items()}
    redis_pid = service.redis.proc.pid  # type: ignore[union-attr]
    redis_before = cpu_seconds(redis_pid)
    backends_before = cpu_of(backend_pids(database_url))
    log_offset = LOG_FILE.stat().st_size if args.statements else 0
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as http:
        started = time.monotonic()
        upload = cli(base, config, "upload", "-r", str(top), "--jobs", str(args.jobs))
        sent = None
        while True:
            if sent is None and upload.poll() is not None:
                sent = time.monotonic() - started
                out, err = upload.communicate()
                if upload.returncode:
                    raise SystemExit(f"instashare upload -r failed ({upload.returncode}):\n{err}")
            if ready_count(http) >= args.files:
                break
            if time.monotonic() - started > args.timeout:
                raise SystemExit(f"not all {args.files} files were ready after {args.timeout} s")
            time.sleep(0.2)
        ready = time.monotonic() - started
        if sent is None:
            upload.wait(timeout=60)
            sent = ready
            out, _ = upload.communicate()
        cpu = {name: group_cpu_seconds(pid) - cpu_before[name] for name, pid in groups.items()}
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu["PostgreSQL"] = cpu_since(backends_before, backend_pids(database_url))
        cpu["Redis"] = cpu_seconds(redis_pid) - redis_before
        statements = statements_logged(database_url, log_offset) if args.statements else None
        cpu["the CLI"] = (children.ru_utime + children.ru_stime) - (
            children_before.ru_utime + children_before.ru_stime
        )
        problems = check_tree(http, top.name, per_folder)

    rate = args.files / ready
    print(f"{args.files} files ({size / 1024 / 1024:.1f} MiB, 1-{args.size_kib} KiB each) in "
          f"{args.folders} folders; instashare upload -r --jobs {args.jobs}; "
          f"serve --workers 2, worker --concurrency 2; {machine()}")  # fmt: skip
    print(f"  the CLI said: {out.strip()}")
    print(f"  all sent (the CLI exited)  {sent:7.2f} s   {args.files / sent:7.1f} files/s")
    print(f"  all ready                  {ready:7.2f} s   {rate:7.1f} files/s")
    print(
        "  CPU ms per file: "
        + ", ".join(f"{k} {v * 1000 / args.files:.1f}" for k, v in cpu.items())
    )
    if statements is not None:
        total = sum(statements.values())
        print(f"  SQL statements per file: {total / args.files:.1f} ("
              + ", ".join(f"{k} {v / args.files:.1f}" for k, v in statements.most_common())
              + ")")  # fmt: skip
    for problem in problems:
        print(f"  WRONG: {problem}")
    ok = rate >= TARGET_FILES_PER_S and not problems
    print(f"files/s to ready >= {TARGET_FILES_PER_S:g}: {word(rate >= TARGET_FILES_PER_S)}"
          f"; the tree as on disk: {word(not problems)}")  # fmt: skip
    return ok


def main() -> int:
    parser = arguments(__doc__)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--folders", type=int, default=10)
    parser.add_argument("--size-kib", type=int, default=4, help="largest file, in KiB")
    parser.add_argument("--jobs", type=int, default=4, help="the CLI's --jobs")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument(
        "--statements", action="store_true", help="count SQL statements (PostgreSQL's log)"
    )
    return scratch_main("folder_upload", parser, run)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
