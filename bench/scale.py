"""Scale: a user with a million files is served as fast as one with a hundred.

Run from the repository root:  python bench/scale.py [--files 1000000] [--rounds 100]

It creates a scratch PostgreSQL database (migrated with `instashare-server migrate`) and a
private redis-server, and builds the data set in SQL (generate_series, triggers and foreign
keys off while it loads, the counters then set from the rows, then VACUUM ANALYZE):

- `big`: `--files` ready files (1,000,000 by default), names in no relation to their dates,
  in `--folders` folders (10,000 by default: about 100 at the root, the rest under them,
  the files spread over those);
- `small`: 100 ready files in one folder (under one at the root), the user everything is
  compared with;
- 100 other users owning `--files / 10` more between them, in every status.

Then `instashare-server serve --workers 2` in production mode (PostgreSQL, Redis, local
storage; no compression worker) answers, over keep-alive connections, for `big` and
`small` alternately (so both see the same machine): `GET /files?limit=20` for every sort,
without and with a status filter, as the first page and (for `big`) 90 % deep (900,000
rows with the default); one folder's listing (`GET /entries`, `GET /files?folder_id=`, the
breadcrumb `GET /folders/{id}`), a folder of the big user's against the small user's,
both of about 100 files; `GET /users/me`; `POST /upload_files` of 75 bytes and `POST
/uploads` (tus creation), both of which check the quota (each is removed again, unmeasured).
`GET /metrics` alternates between that server and a second one whose database holds no
files. Each figure is the median of `--rounds` requests; the ratio is the median of the
ratios of the back-to-back pairs. It prints the table, and exits 1 when a ratio is above
1.2. Everything it started is stopped by PID, and the databases dropped.
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import sqlalchemy as sa
from sqlalchemy.orm import Session
from support.client import API, TUS, register, tus_metadata
from support.data import analyze, insert_files, insert_folders, insert_others, set_counters
from support.processes import ROOT, Processes
from support.report import word
from support.stack import (
    PrivateRedis,
    arguments,
    migrate,
    production_env,
    run_in_scratch,
    scratch_database,
    start_serve,
)

sys.path.insert(0, str(ROOT))

from app.models import File
from app.services import files as file_service

RATIO_TARGET = 1.2
SMALL_FILES = 100
SORTS = ("created_at", "-created_at", "name", "-name")
PASSWORD = "bench-password-1234"  # noqa: S105 - a scratch account in a scratch database


# --- the data set ---------------------------------------------------------------------------


def build(database_url: str, n_files: int, n_folders: int, emails: dict[str, str]) -> None:
    """The other users, and the files and folders of everyone (`emails` name the two
    registered users)."""
    engine = sa.create_engine(database_url)
    started = time.monotonic()
    with engine.begin() as conn:
        # Loading, not serving: no triggers (the counters are set from the rows below), no
        # foreign-key checks, no waiting for the WAL to reach the disk.
        conn.execute(sa.text("SET session_replication_role = replica"))
        conn.execute(sa.text("SET synchronous_commit = off"))
        insert_others(conn, n_files // 10)
        for who, n, folders in (("big", n_files, n_folders), ("small", SMALL_FILES, 2)):
            owner = conn.scalar(
                sa.text("SELECT id FROM users WHERE email = :e"), {"e": emails[who]}
            )
            if folders:
                insert_folders(conn, owner, folders)
            insert_files(conn, owner, n, in_folders=bool(folders))
        set_counters(conn)
    loaded = time.monotonic()
    total = analyze(engine)
    print(
        f"data set: {total:,} files ({n_folders:,} folders for the big user) in "
        f"{loaded - started:.1f} s, "
        f"VACUUM ANALYZE {time.monotonic() - loaded:.1f} s"
    )
    engine.dispose()


def a_folder(database_url: str, email: str) -> str:
    """One of the user's folders that holds files (a leaf)."""
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        folder = conn.scalar(
            sa.text(
                "SELECT f.folder_id FROM files f JOIN users u ON u.id = f.owner_id"
                " WHERE u.email = :e AND f.folder_id IS NOT NULL LIMIT 1"
            ),
            {"e": email},
        )
    engine.dispose()
    return str(folder)


def folder_cases(users: Users, leaves: dict[str, str]) -> list[Case]:
    """A folder of about 100 files, listed, for each user: the account's size must not show."""
    both = ("big", "small")
    cases = []
    for sort in ("name", "-created_at"):
        listing = [users.get(w, "/entries", folder_id=leaves[w], sort=sort) for w in both]
        cases.append(Case(f"GET /entries?folder_id=…&sort={sort}", *listing))
    files = [users.get(w, "/files", folder_id=leaves[w]) for w in both]
    cases.append(Case("GET /files?folder_id=…", *files))
    crumbs = [users.get(w, f"/folders/{leaves[w]}") for w in both]
    cases.append(Case("GET /folders/{id} (with its breadcrumb)", *crumbs))
    return cases


def deep_cursor(database_url: str, email: str, sort: str, depth: int, status: str | None) -> str:
    """The cursor a client holds after reading `depth` files in `sort` order."""
    engine = sa.create_engine(database_url)
    column, descending = file_service.SORTS[sort]
    with Session(engine) as session:
        owner = session.scalar(sa.text("SELECT id FROM users WHERE email = :e"), {"e": email})
        query = sa.select(File).where(File.owner_id == owner)
        if status:
            query = query.where(File.status == status)
        order = (column.desc(), File.id.desc()) if descending else (column.asc(), File.id.asc())
        file = session.scalars(query.order_by(*order).offset(depth - 1).limit(1)).one()
        cursor = file_service.encode_cursor(sort, file)
    engine.dispose()
    return cursor


# --- measuring ------------------------------------------------------------------------------


Request = Callable[[], httpx.Response]


def timed_ms(request: Request, expect: int, cleanup=None) -> float:
    """One request's time; `cleanup(response)` runs after the clock stopped."""
    started = time.perf_counter()
    response = request()
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != expect:
        raise SystemExit(f"{response.request.url}: {response.status_code} {response.text}")
    if cleanup is not None:
        cleanup(response)
    return elapsed


def median_ms(request: Request, rounds: int, expect: int = 200) -> float:
    return statistics.median(timed_ms(request, expect) for _ in range(rounds))


class Users:
    """The two users' tokens and a keep-alive client."""

    def __init__(self, http: httpx.Client, emails: dict[str, str]):
        self.http = http
        base = str(http.base_url).removesuffix(f"{API}/")
        self.auth = {
            who: {"Authorization": f"Bearer {register(base, email, PASSWORD)[2]}"}
            for who, email in emails.items()
        }

    def get(self, who: str, path: str, **params) -> Request:
        return lambda: self.http.get(path, headers=self.auth[who], params=params)

    def upload(self, who: str) -> Request:
        """A new 75-byte file by multipart upload."""
        return lambda: self.http.post(
            "/upload_files",
            headers=self.auth[who],
            files={"file": (f"quota-{uuid.uuid4().hex}.txt", b"x" * 75, "text/plain")},
        )

    def tus_create(self, who: str) -> Request:
        """A new 75-byte resumable upload, created but not sent."""

        def request() -> httpx.Response:
            metadata = tus_metadata(f"tus-{uuid.uuid4().hex}.bin")
            return self.http.post(
                "/uploads",
                headers={**self.auth[who], **TUS, "Upload-Length": "75"}
                | {"Upload-Metadata": metadata},
            )

        return request

    def remove(self, who: str):
        """Cleanup for a creation: DELETE what its `Location` names."""

        def cleanup(response: httpx.Response) -> None:
            path = response.headers["Location"].removeprefix("/api/v1")
            self.http.delete(path, headers={**self.auth[who], **TUS}).raise_for_status()

        return cleanup


@dataclass
class Case:
    label: str
    big: Request
    small: Request
    expect: int = 200
    big_cleanup: Callable | None = None
    small_cleanup: Callable | None = None


def measured(cases: list[Case], rounds: int) -> list[tuple[str, float, float, float]]:
    """(label, big ms, small ms, ratio) per case, the two sides alternating request by
    request: medians of each side, and the median of the ratios of the pairs (each pair
    taken back to back, so what else the machine does weighs on both alike)."""
    results = []
    for case in cases:
        big, small = [], []
        for i in range(rounds + 3):  # three warm-up pairs, thrown away
            b = timed_ms(case.big, case.expect, case.big_cleanup)
            s = timed_ms(case.small, case.expect, case.small_cleanup)
            if i >= 3:
                big.append(b)
                small.append(s)
        ratio = statistics.median(b / s for b, s in zip(big, small, strict=True))
        results.append((case.label, statistics.median(big), statistics.median(small), ratio))
    return results


def quota_cases(users: Users) -> list[Case]:
    """/users/me, and the two uploads whose creation checks the quota."""
    return [
        Case("GET /users/me", users.get("big", "/users/me"), users.get("small", "/users/me")),
        Case(
            "POST /upload_files (75 B: quota check)",
            users.upload("big"),
            users.upload("small"),
            202,
            users.remove("big"),
            users.remove("small"),
        ),
        Case(
            "POST /uploads (tus creation: quota check)",
            users.tus_create("big"),
            users.tus_create("small"),
            201,
            users.remove("big"),
            users.remove("small"),
        ),
    ]


def run(args, work: Path, procs: Processes, database_url: str) -> bool:
    # At the server's default log level: its access line is part of what a request costs.
    redis_base = PrivateRedis(procs, work).url
    env = production_env(database_url, redis_base, work, INSTASHARE_LOG_LEVEL="INFO")

    def serve(name: str, database_url: str) -> str:
        """`instashare-server serve` on `database_url` (migrated first); its base URL."""
        server_env = {
            **env,
            "INSTASHARE_DATABASE_URL": database_url,
            "INSTASHARE_DATA_DIR": str(work / name),
        }
        migrate(server_env)
        _, port = start_serve(procs, server_env, work, name, workers=2)
        return f"http://127.0.0.1:{port}"

    # The service under test, and the same on a database that stays empty: /metrics is
    # compared between the two, side by side.
    with scratch_database("instashare_scale_empty") as empty_url:
        base, empty_base = serve("server", database_url), serve("empty", empty_url)
        try:
            results, total = measure(args, database_url, base, empty_base)
        finally:
            procs.stop_all()  # before the empty database goes

    print(
        f"big: {total:,} files in {args.folders:,} folders; small: {SMALL_FILES} in one; "
        f"median of {args.rounds} each"
    )
    print()
    print(f"{'request':<52} {'big ms':>8} {'small ms':>9} {'ratio':>6}  (median of pair ratios)")
    ok = True
    for label, big_ms, small_ms, ratio in results:
        passed = ratio <= RATIO_TARGET
        ok &= passed
        print(f"{label:<52} {big_ms:>8.2f} {small_ms:>9.2f} {ratio:>6.2f}  {word(passed)}")
    print()
    print(f"target: every ratio <= {RATIO_TARGET}: {word(ok)}")
    return ok


def measure(args, database_url: str, base: str, empty_base: str):
    """(label, big ms, small ms, ratio) of every case, and the big user's files."""
    emails = {"big": "big@bench.example.com", "small": "small@bench.example.com"}
    with (
        httpx.Client(base_url=f"{base}/api/v1", timeout=60) as http,
        httpx.Client(base_url=f"{empty_base}/api/v1", timeout=60) as empty_http,
        httpx.Client(timeout=60) as ops,
    ):
        users, empty_users = Users(http, emails), Users(empty_http, emails)
        cases = quota_cases(users)
        # Every operation answered once on both, so both metrics pages have every series.
        for each in (users, empty_users):
            listing = Case("GET /files", *(each.get(who, "/files") for who in emails))
            measured([*quota_cases(each), listing], 1)
        everyone = args.files + args.files // 10 + SMALL_FILES
        metrics = Case(
            f"GET /metrics ({everyone:,} files / none, beside it)",
            lambda: ops.get(f"{base}/metrics"),
            lambda: ops.get(f"{empty_base}/metrics"),
        )

        build(database_url, args.files, args.folders, emails)
        depth = args.files * 9 // 10
        listings = []
        for status in (None, "ready"):
            for sort in SORTS:
                params = {"limit": 20, "sort": sort} | ({"status": status} if status else {})
                where = f"sort={sort}" + (f"&status={status}" if status else "")
                first = [users.get(who, "/files", **params) for who in ("big", "small")]
                listings.append(Case(f"GET /files?{where}, first page", *first))
                cursor = deep_cursor(database_url, emails["big"], sort, depth, status)
                deep = users.get("big", "/files", **params, cursor=cursor)
                listings.append(Case(f"GET /files?{where}, {depth:,} deep", deep, first[1]))
        listings.append(
            Case(
                "GET /files?status=pending (none)",
                *(users.get(who, "/files", status="pending") for who in ("big", "small")),
            )
        )
        if args.folders:
            leaves = {who: a_folder(database_url, email) for who, email in emails.items()}
            listings += folder_cases(users, leaves)
        results = measured([*listings, *cases, metrics], args.rounds)
        sanity = users.get("big", "/files", limit=1)().json()
    return results, sanity["total"]


def main() -> int:
    parser = arguments(__doc__)
    parser.add_argument("--files", type=int, default=1_000_000, help="the big user's files")
    parser.add_argument(
        "--folders", type=int, default=10_000, help="the big user's folders (0: none)"
    )
    parser.add_argument("--rounds", type=int, default=100, help="requests per figure")
    args = parser.parse_args()
    if args.files < 1000:
        parser.error("--files must be at least 1000")
    return run_in_scratch("scale", args.keep, lambda *held: run(args, *held))


if __name__ == "__main__":
    sys.exit(main())
