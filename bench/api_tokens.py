"""What an API token costs a request, against a session's token, and how often it writes.

Run from the repository root:  python bench/api_tokens.py [--requests 2000] [--tokens 10000]

A session's token (a JWT) is checked by its signature, and its session by the query that
loads the account. An API token (`isk_…`) is looked up instead: its SHA-256 by one indexed
query on a worker thread in the bearer check, which also says its scopes, then the same
account query. This script sends `GET /api/v1/users/me` and `GET /api/v1/files?limit=1`
through the app in-process with each kind, taking turns call by call, on a scratch
PostgreSQL database that holds `--tokens` API tokens of other accounts (so the lookup is
an index probe in a real index), and prints p50, p90 and p99 in ms and the median of the
paired differences. It also counts the statements that write a token's last use: at most
one a minute, whatever the number of requests. The scratch database is dropped at the end.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable

import sqlalchemy as sa
from support.processes import ROOT
from support.report import percentile
from support.stack import arguments, scratch_database

sys.path.insert(0, str(ROOT))

from app.db import make_engine, make_session_factory
from app.migrate import upgrade
from app.models import ApiToken, User
from app.services import api_tokens, tokens
from app.settings import Settings


def seed(url: str, others: int) -> tuple[User, str]:
    """One account with a read token; `others` tokens of other accounts beside it."""
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    with sessions() as session:
        user = User(email="bench@example.com", password_hash="-")  # noqa: S106 - no login
        owners = [User(email=f"o{n}@example.com", password_hash="-") for n in range(100)]  # noqa: S106
        session.add_all([user, *owners])
        session.flush()
        rows = [
            {
                "id": uuid.uuid4(),
                "user_id": owners[n % 100].id,
                "name": f"t{n}",
                "secret_hash": hashlib.sha256(secrets.token_bytes(32)).digest(),
                "scopes": "read",
                "generation": 0,
            }
            for n in range(others)
        ]
        for start in range(0, len(rows), 10_000):
            session.execute(sa.insert(ApiToken), rows[start : start + 10_000])
        session.commit()
        _, text = api_tokens.create(session, user.id, name="bench", scopes=["read"])
    with engine.connect() as conn:
        conn.execute(sa.text("ANALYZE"))
    engine.dispose()
    return user, text


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def row(label: str, times: list[float]) -> str:
    return (
        f"{label:<22} p50 {percentile(times, 50):7.3f}  p90 {percentile(times, 90):7.3f}"
        f"  p99 {percentile(times, 99):7.3f}  (n={len(times)})"
    )


def main() -> int:
    parser = arguments(__doc__, keep=False)
    parser.add_argument("--requests", type=int, default=2000, help="per kind and path")
    parser.add_argument("--tokens", type=int, default=10_000, help="other API tokens stored")
    args = parser.parse_args()
    logging.disable(logging.INFO)  # one access line per request is not what is measured
    writes = 0

    def count_writes(_conn, _cursor, statement, *_rest) -> None:
        nonlocal writes
        if statement.startswith("UPDATE api_tokens SET last_used_at"):
            writes += 1

    sa.event.listen(sa.Engine, "before_cursor_execute", count_writes)
    with scratch_database("instashare_bench_tokens") as url, tempfile.TemporaryDirectory() as data:
        upgrade(url)
        user, api_token = seed(url, args.tokens)
        print(f"PostgreSQL scratch database with {args.tokens + 1} API tokens")
        settings = Settings.from_env(
            {}, database_url=url, data_dir=data, secret_key="b" * 40, validate_responses=False
        )
        from app.web import create_app

        session_token, _ = tokens.issue(settings, user.id)
        kinds = {
            "session token (JWT)": {"Authorization": f"Bearer {session_token}"},
            "API token (isk_)": {"Authorization": f"Bearer {api_token}"},
        }
        app = create_app(settings)
        with app.test_client() as client:
            for path in ("/api/v1/users/me", "/api/v1/files?limit=1"):

                def call(headers: dict[str, str], path: str = path) -> None:
                    answer = client.get(path, headers=headers)
                    assert answer.status_code == 200, answer.text

                times: dict[str, list[float]] = {kind: [] for kind in kinds}
                order = list(kinds)
                for i in range(200 + args.requests):  # the first 200 warm up
                    for kind in order if i % 2 else reversed(order):
                        ms = timed(lambda kind=kind: call(kinds[kind]))
                        if i >= 200:
                            times[kind].append(ms)
                print(f"GET {path} through the app in-process, in ms")
                for kind, seen in times.items():
                    print("  " + row(kind, seen))
                jwt_times, api_times = times.values()
                difference = statistics.median(
                    a - b for a, b in zip(api_times, jwt_times, strict=True)
                )
                print(f"  {'API token minus session, paired median':<34} {difference:+.3f} ms")
        sent = 2 * (200 + args.requests)
        print(f"last-use writes for the API token's {sent} requests: {writes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
