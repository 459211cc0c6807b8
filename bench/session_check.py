"""What checking a token's session costs the files page and a request's account lookup.

Run from the repository root:  python bench/session_check.py [--requests 3000] [--sessions 100000]

Every access token names its session (`sid`), and every request refuses a token whose
session has ended: the files page reads when the session was last used (NULL: it ended) as
one more column of its one statement (`users.SESSION_LAST_USED`, a primary-key probe), and
the account lookup of the other requests joins `sessions` by primary key beside the
revoked token. This script measures both against what they were before sessions were kept,
in the same run, on a scratch PostgreSQL database whose `sessions` table holds
`--sessions` rows (1,000 accounts' worth), with one account of 5 files:

- PostgreSQL's own execution time of the files page's statement, both shapes (EXPLAIN
  ANALYZE): with the session's column, and without it (a token with no `sid` still gets
  exactly the statement of before);
- `GET /api/v1/files?limit=20` through the app in-process with a token with a session and
  one without (the statement of before);
- `GET /api/v1/users/me` through the app in-process: the lookup joining the session, and
  the lookup of before (users and revoked_tokens only), swapped in for its turns.

The variants take turns call by call, so that whatever else the machine does falls on both
alike. It prints p50, p90 and p99 in ms and the median of the paired differences, and
checks each request's overhead against the target: at most 0.3 ms or 10 % of the p50.
The scratch database is dropped at the end.
"""

from __future__ import annotations

import datetime as dt
import logging
import statistics
import sys
import tempfile
import uuid

import sqlalchemy as sa
from support.processes import ROOT
from support.report import percentile, word
from support.stack import arguments, scratch_database

sys.path.insert(0, str(ROOT))

from auth import alternating, paired, row

from app.db import make_engine, make_session_factory, utcnow
from app.migrate import upgrade
from app.models import File, FileStatus, RevokedToken, SignedInSession, User
from app.services import files, sessions, tokens, users
from app.settings import Settings

TARGET_MS = 0.3
TARGET_RATIO = 0.10
PER_ACCOUNT = 100

# The account lookup before sessions were kept (users and revoked_tokens only).
_BEFORE = (
    sa.select(User, RevokedToken.jti)
    .select_from(User)
    .outerjoin(RevokedToken, RevokedToken.jti == sa.bindparam("jti"))
    .where(User.id == sa.bindparam("user_id"))
)


def account_before(session, claims: tokens.Claims, used=None) -> User:
    found = session.execute(_BEFORE, {"user_id": claims.user_id, "jti": claims.jti}).one()
    user, revoked = found
    if revoked is not None or user.token_generation != claims.generation:
        raise AssertionError("the session ended")
    return user


def seed(url: str, rows: int) -> User:
    """The measured account (5 files), and `rows` sessions of 1,000 other accounts."""
    engine = make_engine(url)
    with make_session_factory(engine)() as session:
        user = User(email="bench@example.com", password_hash="-")  # noqa: S106 - no login
        session.add(user)
        session.flush()
        for n in range(5):
            session.add(
                File(owner_id=user.id, name=f"file {n}.txt", status=FileStatus.READY,
                     size=1000 + n, crc32=0, content_type="text/plain", attempts=1)
            )  # fmt: skip
        now = utcnow()
        others = [uuid.uuid4() for _ in range(max(1, rows // PER_ACCOUNT))]
        session.execute(
            sa.insert(User),
            [{"id": i, "email": f"{i.hex}@example.com", "password_hash": "-"} for i in others],
        )
        batch = []
        for n in range(rows):
            batch.append(
                {"id": uuid.uuid4(), "user_id": others[n % len(others)], "kind": "kept",
                 "device": "Chrome on Linux", "address": "192.0.2.1", "token_generation": 0,
                 "created_at": now, "last_used_at": now,
                 "expires_at": now + dt.timedelta(days=30)}
            )  # fmt: skip
            if len(batch) == 10_000:
                session.execute(sa.insert(SignedInSession), batch)
                batch = []
        if batch:
            session.execute(sa.insert(SignedInSession), batch)
        session.commit()
        session.expunge(user)
    with engine.connect() as conn:
        conn.execute(sa.text("ANALYZE"))
    engine.dispose()
    return user


def server_side(url: str, page_params: dict[str, dict], runs: int = 300) -> dict[str, float]:
    """PostgreSQL's execution time of the files page's statement, each shape, median in ms."""
    engine = sa.create_engine(url)
    medians = {}
    with engine.connect() as conn:
        for label, (checked, params) in page_params.items():
            statement, _ = files._page_statements("-created_at", None, False, checked)
            compiled = statement.compile(engine, compile_kwargs={"render_postcompile": True})
            seen = []
            for _ in range(runs):
                plan = conn.exec_driver_sql(
                    f"EXPLAIN (ANALYZE, FORMAT JSON) {compiled.string}",
                    compiled.construct_params(params),
                ).scalar_one()
                seen.append(plan[0]["Execution Time"])
            medians[label] = statistics.median(seen)
    engine.dispose()
    return medians


def check(label: str, times: dict[str, list[float]], before: str) -> bool:
    for name, seen in times.items():
        print("  " + row(name, seen))
    overhead = paired(times)
    ratio = overhead / percentile(times[before], 50)
    passed = overhead <= TARGET_MS or ratio <= TARGET_RATIO
    print(
        f"  {label}: overhead per request (median of paired differences) {overhead:+.3f} ms "
        f"({ratio:+.1%} of the p50); target at most {TARGET_MS} ms or {TARGET_RATIO:.0%}: "
        f"{word(passed)}"
    )
    return passed


def measure(url: str, settings: Settings, user: User, requests: int) -> bool:
    from app.web import create_app

    engine = make_engine(url)
    with make_session_factory(engine)() as session:
        started = sessions.start_session(
            session, settings, user, user_agent="bench", address="127.0.0.1", remember=False
        )
    engine.dispose()
    with_sid = tokens.verify(settings, started.access_token)
    without_sid = tokens.verify(settings, tokens.issue(settings, user.id)[0])
    base = {"owner_id": user.id, "limit": 21}
    shapes = {
        "page with the session's column": (
            "session", {**base, **users.session_holds_params(with_sid)}),
        "page as before": ("token", {**base, **users.session_holds_params(without_sid)}),
    }  # fmt: skip
    print("PostgreSQL's own execution time (EXPLAIN ANALYZE), median of 300, in ms")
    for label, ms in server_side(url, shapes).items():
        print(f"  {label:<30} {ms:7.4f}")

    app = create_app(settings)
    bearer = {
        "with the session": {"Authorization": f"Bearer {started.access_token}"},
        "as before": {"Authorization": f"Bearer {tokens.issue(settings, user.id)[0]}"},
    }
    account_now = users.session_account
    passed = True
    with app.test_client() as client:

        def get(path: str, headers: dict[str, str], lookup=None):
            def once() -> object:
                if lookup is not None:
                    users.session_account = lookup  # what app.http.security calls
                response = client.get(path, headers=headers)
                assert response.status_code == 200, response.text
                return response

            return once

        print(f"GET /api/v1/files?limit=20 through the app in-process, in ms ({requests} each)")
        variants = {label: get("/api/v1/files?limit=20", h) for label, h in bearer.items()}
        alternating(variants, 200)  # warm up
        passed &= check("the files page", alternating(variants, requests), "as before")

        print(f"GET /api/v1/users/me through the app in-process, in ms ({requests} each)")
        variants = {
            "joining the session": get("/api/v1/users/me", bearer["with the session"], account_now),
            "as before": get("/api/v1/users/me", bearer["as before"], account_before),
        }
        alternating(variants, 200)  # warm up
        passed &= check("the account lookup", alternating(variants, requests), "as before")
    users.session_account = account_now
    return passed


def main() -> int:
    parser = arguments(__doc__, keep=False)
    parser.add_argument("--requests", type=int, default=3000, help="per variant")
    parser.add_argument("--sessions", type=int, default=100_000, help="session rows stored")
    args = parser.parse_args()
    logging.disable(logging.INFO)  # one access line per request is not what is measured
    with (
        scratch_database("instashare_bench_sessions") as url,
        tempfile.TemporaryDirectory() as data,
    ):
        upgrade(url)
        user = seed(url, args.sessions)
        print(f"PostgreSQL scratch database with {args.sessions} sessions")
        settings = Settings.from_env(
            {}, database_url=url, data_dir=data, secret_key="b" * 40, validate_responses=False
        )
        return 0 if measure(url, settings, user, args.requests) else 1


if __name__ == "__main__":
    sys.exit(main())
