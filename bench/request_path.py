"""The request path: a small authenticated files page against a one-route Connexion app.

Run from the repository root:  python bench/request_path.py [--seconds 8] [--profile 2000]

It creates a scratch PostgreSQL database (migrated) and a private redis-server, and a user
with five files. Then it serves, one after the other and under the same gunicorn settings
as `instashare-server serve --workers 2` (uvicorn workers), (a) Instashare in production
mode and (b) bench/one_route.py, a Connexion app with one unauthenticated route answering
`{"hello": "world"}`. A load generator in this process (asyncio on uvloop, `--connections`
keep-alive connections on loopback, each sending its next request when the last answer
has arrived) drives `GET /api/v1/files?limit=20` with the user's token on (a) and `GET
/hello` on (b), for `--seconds` each, `--turns` times in turn (a b a b a b). It prints
each side's best turn, and the ratio of (a) to (b), by requests per second and by CPU per
request, as the median of the turns' ratios (each of two runs back to back, so that load
from elsewhere weighs on both alike); it exits 1 when that of requests per second is
below 0.5. The load average is printed at the start and at the end.

`--profile N` also runs N such requests through the app in this process (no network, as
many at a time as one worker takes) under cProfile, and prints the CPU per request by
package, by step and by function.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import os
import pstats
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvloop
from support.client import API, account, keep_alive, request_head
from support.processes import ROOT, Processes, children, cpu_of, cpu_since, free_port, wait_for_port
from support.report import load_average, word
from support.stack import (
    CLI,
    PrivateRedis,
    arguments,
    backend_pids,
    migrate,
    production_env,
    run_in_scratch,
)

BENCH = Path(__file__).resolve().parent
RATIO_TARGET = 0.5
FILES_PATH = f"{API}/files?limit=20"


# --- load ------------------------------------------------------------------------------------


@dataclass
class Turn:
    rps: float
    cpu_ms: float  # CPU of the server's processes and its PostgreSQL backends, per request
    database_ms: float  # the PostgreSQL backends' part of it


async def drive(
    port: int,
    request: bytes,
    connections: int,
    seconds: float,
    pids: Callable[[], tuple[list[int], list[int]]],
) -> Turn:
    """Requests per second over `seconds`, after a one-second warm-up, and CPU per request."""
    load = await keep_alive(port, [request] * connections)
    server, database = pids()
    start_server, start_database = cpu_of(server), cpu_of(database)
    load.mark()
    await asyncio.sleep(seconds)
    rps, done = load.rate(), len(load.latencies)
    server, database = pids()
    database_cpu = cpu_since(start_database, database)
    cpu = cpu_since(start_server, server) + database_cpu
    await load.close()
    if load.failures:
        raise SystemExit(f"{len(load.failures)} failed requests, e.g. {load.failures[0]!r}")
    return Turn(rps, cpu / done * 1000, database_cpu / done * 1000)


def server_pids(
    server: subprocess.Popen, database_url: str
) -> Callable[[], tuple[list[int], list[int]]]:
    """(the gunicorn master and its workers, the PostgreSQL backends of the bench database)."""
    return lambda: ([server.pid, *children(server.pid)], backend_pids(database_url))


def ready(port: int, request: bytes, timeout: float = 60.0) -> None:
    """Wait until both workers answer `request` with a 200 (they boot after the bind)."""
    deadline = time.monotonic() + timeout
    answered = 0
    while answered < 20:
        if time.monotonic() > deadline:
            raise SystemExit(f"127.0.0.1:{port} did not answer 200 within {timeout:g} s")
        try:
            with socket.create_connection(("127.0.0.1", port), 5) as sock:
                sock.sendall(request)
                answered = answered + 1 if sock.recv(12).endswith(b"200") else 0
        except OSError:
            time.sleep(0.1)


# --- servers ---------------------------------------------------------------------------------


def gunicorn(app: str, port: int, workers: int, chdir: Path) -> list[str]:
    """The command `instashare-server serve` becomes, for `app`."""
    return [
        sys.executable, "-m", "gunicorn",
        "--worker-class", "app.http.protocol.Worker",
        "--workers", str(workers),
        "--bind", f"127.0.0.1:{port}",
        "--graceful-timeout", "30",
        "--chdir", str(chdir),
        app,
    ]  # fmt: skip


def prepare(port: int) -> str:
    """A user with five files, through the API; its Authorization header."""
    base = f"http://127.0.0.1:{port}"
    auth = account(base)
    with httpx.Client(base_url=f"{base}{API}", headers=auth, timeout=30) as http:
        for i in range(5):
            created = http.post(
                "/upload_files", files={"file": (f"file-{i}.txt", b"hello %d\n" % i, "text/plain")}
            )
            created.raise_for_status()
        page = http.get("/files?limit=20")
        page.raise_for_status()
        assert len(page.json()["items"]) == 5
    return auth["Authorization"]


# --- the in-process profile ------------------------------------------------------------------

AREAS = (
    ("app/", "instashare (app/)"),
    ("sqlalchemy/", "SQLAlchemy"),
    ("psycopg2", "psycopg2"),
    ("connexion/", "Connexion"),
    ("starlette/", "Starlette"),
    ("flask/", "Flask"),
    ("werkzeug/", "Werkzeug"),
    ("a2wsgi/", "a2wsgi (ASGI to WSGI)"),
    ("jsonschema", "jsonschema"),
    ("jwt/", "PyJWT"),
    ("prometheus_client/", "prometheus_client"),
    ("logging/", "logging"),
    ("json/", "json"),
    ("asyncio/", "asyncio"),
    ("concurrent/", "threads (futures)"),
    ("threading", "threads (futures)"),
)


# The steps of a files page, as functions (file, name) whose cumulative time is the step's;
# nested steps are indented under the one that contains them.
STEPS = (
    ("Connexion: the token check (bearer_info)", "connexion/security.py", "verify_fn"),
    ("Connexion: query parameter validation", "connexion/validators/parameter.py",
     "validate_request"),
    ("the handler's worker thread (_page_body)", "app/handlers/files.py", "_page_body"),
    ("  session: pooled connection out", "app/db.py", "without_transaction"),
    ("  the page's one statement (and its rows)", "app/services/files.py", "list_files"),
    ("  the items as JSON", "app/http/representations.py", "file_json"),
    ("  session: connection back to the pool", "sqlalchemy/orm/session.py", "__exit__"),
    ("the access log line and metrics", "app/http/observer.py", "_record"),
)  # fmt: skip


def area(filename: str) -> str:
    for marker, name in AREAS:
        if marker in filename:
            return name
    if filename.startswith("~") or filename == "":
        return "builtins (C)"
    return "other Python"


def profile(env: dict[str, str], token: str, n: int, concurrency: int) -> None:
    """N requests through the app in this process, `concurrency` at a time, as a server
    worker takes them; CPU per request by area and function."""
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import logging

    from app.observability import configure_logging
    from app.settings import Settings
    from app.web import create_app

    settings = Settings.from_env()
    configure_logging(settings.log_level)
    # The access log goes where a server's would, but not to this terminal.
    logging.getLogger().handlers[0].stream = open(os.devnull, "w")  # noqa: SIM115
    app = create_app(settings)

    # Each worker thread gets a profile of its own, on while a task runs and profiling is
    # on. Every profile counts its own thread's CPU time, not time spent waiting.
    thread_profiles: list[cProfile.Profile] = []
    profiling = threading.Event()
    local = threading.local()

    def run_profiled(fn, *args, **kwargs):
        thread_profile = getattr(local, "profile", None)
        if thread_profile is None:
            thread_profile = local.profile = cProfile.Profile(time.thread_time)
            thread_profiles.append(thread_profile)
        if not profiling.is_set():
            return fn(*args, **kwargs)
        thread_profile.enable()
        try:
            return fn(*args, **kwargs)
        finally:
            thread_profile.disable()

    # Handlers run on the event loop (app.http.streaming); their blocking steps go to
    # anyio's worker threads, each profiled while it runs one.
    import anyio.to_thread

    unprofiled_run_sync = anyio.to_thread.run_sync

    async def profiled_run_sync(fn, *args, **kwargs):
        return await unprofiled_run_sync(run_profiled, fn, *args, **kwargs)

    anyio.to_thread.run_sync = profiled_run_sync  # type: ignore[assignment]

    path, _, query = FILES_PATH.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(b"host", b"127.0.0.1"), (b"authorization", token.encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }

    async def one() -> None:
        status = 0

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(dict(scope), receive, send)
        if status != 200:
            raise SystemExit(f"in-process request answered {status}")

    async def many(count: int) -> tuple[float, float]:
        """(wall seconds, CPU seconds of this process) for `count` requests."""
        started, cpu = time.perf_counter(), time.process_time()

        async def client(share: int) -> None:
            for _ in range(share):
                await one()

        await asyncio.gather(*(client(count // concurrency) for _ in range(concurrency)))
        return time.perf_counter() - started, time.process_time() - cpu

    loop = uvloop.new_event_loop()
    loop.run_until_complete(many(concurrency * 50))  # warm-up: every thread started
    wall, cpu = loop.run_until_complete(many(n))
    profiling.set()
    main_profile = cProfile.Profile(time.thread_time)
    main_profile.enable()
    loop.run_until_complete(many(n))
    main_profile.disable()
    loop.close()

    stats = pstats.Stats(main_profile)
    for thread_profile in thread_profiles:
        with contextlib.suppress(TypeError):  # a thread that ran nothing while profiled
            stats.add(thread_profile)
    raw = stats.stats  # type: ignore[attr-defined]
    by_area: dict[str, float] = {}
    total = 0.0
    for (filename, _line, _name), (_cc, _nc, tottime, _ct, _callers) in raw.items():
        by_area[area(filename)] = by_area.get(area(filename), 0.0) + tottime
        total += tottime
    print()
    print(
        f"in-process, {concurrency} at a time, unprofiled: {n / wall:.0f} requests/s, "
        f"{cpu / n * 1e6:.0f} µs of CPU per request. Under cProfile: {total / n * 1e6:.0f} µs "
        f"of CPU per request (event loop and worker threads), by where it was spent:"
    )
    for name, seconds in sorted(by_area.items(), key=lambda item: -item[1]):
        print(f"  {name:<42} {seconds / n * 1e6:>7.0f} µs  {100 * seconds / total:>5.1f} %")
    print()
    print("by step (cumulative CPU per request under cProfile; the rest is routing, the ASGI")
    print("middleware, HTTP and the event loop):")
    counted = 0.0
    for label, marker, function in STEPS:
        seconds = sum(
            cumtime
            for (filename, _line, name), (_cc, _nc, _tt, cumtime, _callers) in raw.items()
            if name == function and marker in filename
        )
        if not label.startswith(" "):
            counted += seconds
        print(f"  {label:<48} {seconds / n * 1e6:>7.0f} µs  {100 * seconds / total:>5.1f} %")
    rest = total - counted
    print(f"  {'everything else':<48} {rest / n * 1e6:>7.0f} µs  {100 * rest / total:>5.1f} %")
    print()
    print("the 25 functions with the most own time per request:")
    ranked = sorted(raw.items(), key=lambda item: -item[1][2])[:25]
    for (filename, line, name), (_cc, ncalls, tottime, cumtime, _callers) in ranked:
        short = filename.split("site-packages/")[-1].replace(str(ROOT) + "/", "")
        print(
            f"  {tottime / n * 1e6:>6.1f} µs own {cumtime / n * 1e6:>7.1f} µs cum "
            f"{ncalls / n:>5.1f} calls  {name} ({short}:{line})"
        )


# --- the run ---------------------------------------------------------------------------------


def run(args, work: Path, procs: Processes, database_url: str) -> bool:
    # At the server's default log level: its access line is part of what a request costs.
    redis_base = PrivateRedis(procs, work).url
    env = production_env(database_url, redis_base, work, INSTASHARE_LOG_LEVEL="INFO")
    migrate(env)

    instashare_port = free_port()
    serve = [*CLI, "serve", "--workers", str(args.workers), "--host", "127.0.0.1"]
    procs.start("instashare", [*serve, "--port", str(instashare_port)], env, work / "app.log")
    wait_for_port(instashare_port)
    token = prepare(instashare_port)
    procs.stop("instashare")

    targets = {
        "instashare": (
            lambda port: [*serve, "--port", str(port)],
            request_head("GET", FILES_PATH, {"Authorization": token}),
        ),
        "one-route Connexion app": (
            lambda port: gunicorn("one_route:app", port, args.workers, BENCH),
            request_head("GET", "/hello"),
        ),
    }
    best: dict[str, Turn] = {}
    turns: list[dict[str, Turn]] = []
    loop = uvloop.new_event_loop()
    print(f"load average at the start: {load_average()} (2 cores)")
    for turn in range(args.turns):
        turns.append({})
        for name, (argv, request) in targets.items():
            port = free_port()
            server = procs.start(name, argv(port), env, work / f"{name.split()[0]}-{turn}.log")
            wait_for_port(port)
            ready(port, request)
            pids = server_pids(server, database_url)
            result = loop.run_until_complete(
                drive(port, request, args.connections, args.seconds, pids)
            )
            if name not in best or result.rps > best[name].rps:
                best[name] = result
            turns[-1][name] = result
            procs.stop(name)
            print(f"  turn {turn + 1}: {name:<26} {result.rps:>8.0f} req/s, "
                  f"{result.cpu_ms:.2f} ms CPU per request "
                  f"({result.database_ms:.2f} of it PostgreSQL's)")  # fmt: skip
    loop.close()

    ours, theirs = best["instashare"], best["one-route Connexion app"]
    pairs = [(t["instashare"], t["one-route Connexion app"]) for t in turns]
    ratio = statistics.median(a.rps / b.rps for a, b in pairs)
    cpu_ratio = statistics.median(b.cpu_ms / a.cpu_ms for a, b in pairs)
    print()
    print(f"{args.workers} gunicorn uvicorn workers each, {args.connections} connections, "
          f"{args.seconds:g} s per turn, the best turn of {args.turns}:")  # fmt: skip
    print(f"  {'':<46} {'req/s':>8} {'CPU ms/request':>15}")
    print(f"  GET {FILES_PATH} (5 files, token)  {ours.rps:>8.0f} {ours.cpu_ms:>15.2f}")
    print(f"  GET /hello (one-route Connexion app)           {theirs.rps:>8.0f} "
          f"{theirs.cpu_ms:>15.2f}")  # fmt: skip
    # CPU per request (server processes and, for Instashare, its PostgreSQL backends) moves
    # less with what else runs on the machine: nearer the ratio a dedicated machine would see.
    print("ratios, Instashare / the one-route app (the median of the turns' ratios):")
    print(f"  by CPU per request: {cpu_ratio:.2f}   (turns: "
          f"{', '.join(f'{b.cpu_ms / a.cpu_ms:.2f}' for a, b in pairs)})")  # fmt: skip
    print(f"  by req/s: {ratio:.2f} (target >= {RATIO_TARGET}): "
          f"{word(ratio >= RATIO_TARGET)}   (turns: "
          f"{', '.join(f'{a.rps / b.rps:.2f}' for a, b in pairs)})")  # fmt: skip
    print(f"load average at the end: {load_average()}")
    if args.profile:
        profile(env, token, args.profile, args.connections // args.workers)
    return ratio >= RATIO_TARGET


def main() -> int:
    parser = arguments(__doc__)
    parser.add_argument("--seconds", type=float, default=8.0, help="per turn")
    parser.add_argument("--turns", type=int, default=3, help="runs of each server, in turn")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="profile N requests")
    args = parser.parse_args()
    return run_in_scratch("reqpath", args.keep, lambda *held: run(args, *held))


if __name__ == "__main__":
    sys.exit(main())
