"""app.services.admin at scale: the users' listing stays an index walk at 100,000 accounts."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

from app.services import admin

USERS = 100_000
QUOTA = 10**12


@pytest.fixture
def many(session):
    """100,000 accounts, inserted in one statement, in this test's transaction."""
    session.execute(
        text(
            "INSERT INTO users (id, email, password_hash, bytes_stored, created_at, updated_at) "
            "SELECT gen_random_uuid(), 'bulk-' || n || '@scale.example', 'x', (n * 7919) % 100003, "
            "now() - n * interval '1 second', now() FROM generate_series(1, :n) AS n"
        ),
        {"n": USERS},
    )
    session.execute(text("ANALYZE users"))
    return session


def _timed(fn):
    began = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - began


def test_at_100000_accounts_every_order_and_the_search_stay_index_walks(many):
    """One insert for every check (the 100,000 rows take seconds to write)."""
    for sort in admin.SORTS:
        first, _ = _timed(lambda sort=sort: admin.list_users(many, QUOTA, limit=50, sort=sort))
        assert first.total >= USERS and len(first.items) == 50
        cursor = first.next_cursor
        for _ in range(3):
            cursor = admin.list_users(many, QUOTA, limit=50, sort=sort, cursor=cursor).next_cursor
        page, took = _timed(
            lambda sort=sort, cursor=cursor: admin.list_users(
                many, QUOTA, limit=50, sort=sort, cursor=cursor
            )
        )
        keys = [admin._cursor_value(sort, row) for row in page.items]
        assert keys == sorted(keys, reverse=sort.startswith("-")), sort
        print(f"{sort}: a page with its total in {took * 1000:.1f} ms")
        assert took < 0.25, f"{sort}: a page took {took:.3f}s"

    page, took = _timed(lambda: admin.list_users(many, QUOTA, limit=20, search="BULK-4242"))
    assert {row.email for row in page.items} >= {"bulk-4242@scale.example"}
    assert page.total == 11  # 4242 and 42420..42429
    print(f"search: {took * 1000:.1f} ms")
    assert took < 0.25, f"a search took {took:.3f}s"
    plan = many.execute(
        text("EXPLAIN SELECT count(*) FROM users WHERE lower(email) LIKE '%bulk-4242%'")
    ).scalars()
    assert "ix_users_email_trgm" in "\n".join(plan)
    # Wildcards are text.
    assert admin.list_users(many, QUOTA, limit=20, search="%").total == 0
    assert admin.list_users(many, QUOTA, limit=20, search="bulk_1@").total == 0
