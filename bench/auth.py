"""What ending sessions costs an authenticated request: the revocation check, measured.

Run from the repository root:  python bench/auth.py [--requests 3000] [--revoked 100000]

Every authenticated request loads its account once (`app.http.security.account`); the
same query now also reads whether the token was revoked (logout) and the account's token
generation (password change): `SELECT users.*, revoked_tokens.jti FROM users LEFT JOIN
revoked_tokens ON revoked_tokens.jti = :jti WHERE users.id = :id`. This script measures
that against the lookup it replaced (`session.get(User, id)`, no revocation check), in
the same run, on a scratch PostgreSQL database holding `--revoked` revoked tokens:

- PostgreSQL's own execution time of each statement (EXPLAIN ANALYZE);
- the lookup alone: each in a fresh session, as a request does;
- whole requests: `GET /api/v1/users/me` (nothing but the account lookup touches the
  database, so the check weighs the most there) through the app in-process.

The two take turns call by call, so that whatever else the machine does falls on both
alike. It prints p50, p90 and p99 of each in ms and the median of the paired differences,
and checks the request overhead against the target: at most 0.5 ms or 10 % of the p50.
The scratch database is dropped at the end.
"""

from __future__ import annotations

import datetime as dt
import logging
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable

import sqlalchemy as sa
from support.processes import ROOT
from support.report import percentile, word
from support.stack import arguments, scratch_database

sys.path.insert(0, str(ROOT))

from app.db import make_engine, make_session_factory, utcnow
from app.errors import Unauthorized
from app.migrate import upgrade
from app.models import RevokedToken, User
from app.services import tokens, users
from app.settings import Settings

TARGET_MS = 0.5
TARGET_RATIO = 0.10


def without_revocation(session, claims: tokens.Claims) -> User:
    """The lookup before sessions could end: the account by its id, nothing else."""
    user = session.get(User, claims.user_id)
    if user is None:
        raise Unauthorized("The account for this token no longer exists.")
    return user


def seed(url: str, revoked: int) -> User:
    """One account, and `revoked` revoked tokens of which half are still live."""
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    with sessions() as session:
        user = User(email="bench@example.com", password_hash="-")  # noqa: S106 - no login
        session.add(user)
        now = utcnow()
        rows = [
            {"jti": uuid.uuid4().hex, "expires_at": now + dt.timedelta(seconds=n % 7200 - 3600)}
            for n in range(revoked)
        ]
        for start in range(0, len(rows), 10_000):
            session.execute(sa.insert(RevokedToken), rows[start : start + 10_000])
        session.commit()
    with engine.connect() as conn:
        conn.execute(sa.text("ANALYZE"))
    engine.dispose()
    return user


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def alternating(variants: dict[str, Callable[[], object]], n: int) -> dict[str, list[float]]:
    """`n` timings of each variant, taking turns call by call (in both orders), so that
    whatever else the machine does falls on both alike; pair i of each list ran together."""
    times: dict[str, list[float]] = {label: [] for label in variants}
    order = list(variants)
    for i in range(n):
        for label in order if i % 2 else reversed(order):
            times[label].append(timed(variants[label]))
    return times


def row(label: str, times: list[float]) -> str:
    return (
        f"{label:<30} p50 {percentile(times, 50):7.3f}  p90 {percentile(times, 90):7.3f}"
        f"  p99 {percentile(times, 99):7.3f}  (n={len(times)})"
    )


def paired(times: dict[str, list[float]]) -> float:
    """The median of the per-pair differences, checked minus plain."""
    checked, plain = times.values()
    return statistics.median(a - b for a, b in zip(checked, plain, strict=True))


def server_side(url: str, claims: tokens.Claims, runs: int = 300) -> dict[str, float]:
    """PostgreSQL's own execution time of each lookup (EXPLAIN ANALYZE), median, in ms."""
    statements = {
        "with the revocation check": (
            "SELECT users.*, revoked_tokens.jti FROM users LEFT OUTER JOIN revoked_tokens "
            "ON revoked_tokens.jti = :jti WHERE users.id = :id"
        ),
        "without it": "SELECT users.* FROM users WHERE users.id = :id",
    }
    engine = sa.create_engine(url)
    medians = {}
    with engine.connect() as conn:
        for label, sql in statements.items():
            seen = []
            for _ in range(runs):
                plan = conn.execute(
                    sa.text(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}"),
                    {"jti": claims.jti, "id": claims.user_id},
                ).scalar_one()
                seen.append(plan[0]["Execution Time"])
            medians[label] = statistics.median(seen)
    engine.dispose()
    return medians


def measure(url: str, settings: Settings, user: User, requests: int) -> bool:
    from app.web import create_app

    claims = tokens.verify(settings, tokens.issue(settings, user.id)[0])
    with_check = users.session_account
    lookups = {"with the revocation check": with_check, "without it": without_revocation}

    print("PostgreSQL's own execution time (EXPLAIN ANALYZE), median of 300, in ms")
    for label, ms in server_side(url, claims).items():
        print(f"  {label:<30} {ms:7.4f}")

    engine = make_engine(url)
    sessions = make_session_factory(engine)

    def query(lookup) -> Callable[[], object]:
        def once() -> object:
            with sessions() as session:  # a fresh session, as a request has
                return lookup(session, claims)

        return once

    alternating({label: query(lookup) for label, lookup in lookups.items()}, 300)  # warm up
    print(f"the account lookup alone, in ms ({requests} each, taking turns)")
    times = alternating({label: query(lookup) for label, lookup in lookups.items()}, requests)
    for label, seen in times.items():
        print("  " + row(label, seen))
    print(f"  {'paired difference, median':<30} {paired(times):+7.3f}")
    engine.dispose()

    app = create_app(settings)
    token, _ = tokens.issue(settings, user.id)
    headers = {"Authorization": f"Bearer {token}"}
    print(f"GET /api/v1/users/me through the app in-process, in ms ({requests} each)")
    with app.test_client() as client:

        def get(lookup) -> Callable[[], object]:
            def once() -> object:
                users.session_account = lookup  # what app.http.security calls
                response = client.get("/api/v1/users/me", headers=headers)
                assert response.status_code == 200, response.text
                return response

            return once

        variants = {label: get(lookup) for label, lookup in lookups.items()}
        alternating(variants, 200)  # warm up
        times = alternating(variants, requests)
    users.session_account = with_check
    for label, seen in times.items():
        print("  " + row(label, seen))
    overhead = paired(times)
    ratio = overhead / percentile(times["without it"], 50)
    passed = overhead <= TARGET_MS or ratio <= TARGET_RATIO
    print(
        f"overhead per request (median of paired differences): {overhead:+.3f} ms "
        f"({ratio:+.1%} of the p50); target at most {TARGET_MS} ms or {TARGET_RATIO:.0%}: "
        f"{word(passed)}"
    )
    return passed


def main() -> int:
    parser = arguments(__doc__, keep=False)
    parser.add_argument("--requests", type=int, default=3000, help="per variant")
    parser.add_argument("--revoked", type=int, default=100_000, help="revoked tokens stored")
    args = parser.parse_args()
    logging.disable(logging.INFO)  # one access line per request is not what is measured
    with scratch_database("instashare_bench_auth") as url, tempfile.TemporaryDirectory() as data:
        upgrade(url)
        user = seed(url, args.revoked)
        print(f"PostgreSQL scratch database with {args.revoked} revoked tokens")
        settings = Settings.from_env(
            {}, database_url=url, data_dir=data, secret_key="b" * 40, validate_responses=False
        )
        return 0 if measure(url, settings, user, args.requests) else 1


if __name__ == "__main__":
    sys.exit(main())
