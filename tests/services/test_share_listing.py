"""Listing links: a page is one statement, an index walk bounded by the cursor."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa

from app.models import Share
from app.services import shares
from tests.factories import FileFactory, UserFactory


def _plan_nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from _plan_nodes(child)


def _links(session, owner, file, n: int) -> None:
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    for i in range(n):
        session.add(
            Share(
                file_id=file.id,
                owner_id=owner.id,
                serves="zip",
                downloads=0,
                created_at=start + dt.timedelta(seconds=i),
            )
        )
    session.commit()


@pytest.mark.parametrize("of_file", [False, True], ids=["all", "of-a-file"])
def test_a_page_is_one_statement_whose_cursor_bounds_the_index_walk(session, factories, of_file):
    owner = UserFactory()
    file = FileFactory(owner=owner)
    _links(session, owner, file, 30)
    scope = {"file_id": file.id} if of_file else {}
    first = shares.list_shares(session, owner.id, limit=10, **scope)
    statements = []

    def record(_conn, _cursor, statement, parameters, *_args):
        statements.append((statement, parameters))

    connection = session.connection()
    sa.event.listen(connection, "before_cursor_execute", record)
    try:
        page = shares.list_shares(session, owner.id, limit=10, cursor=first.next_cursor, **scope)
    finally:
        sa.event.remove(connection, "before_cursor_execute", record)
    assert len(page.items) == 10 and page.total == 30
    assert page.items[0].created_at < first.items[-1].created_at
    # The page and its total in one statement (a file's ownership may be checked first).
    [(statement, parameters)] = [s for s in statements if "FROM shares" in s[0]]

    # Statistics that know these rows (in this test's transaction, rolled back with it),
    # and however few they are, a plain index scan as for many.
    session.execute(sa.text("ANALYZE shares"))
    session.execute(sa.text("SET LOCAL enable_seqscan = off"))
    session.execute(sa.text("SET LOCAL enable_bitmapscan = off"))
    cursor = connection.connection.dbapi_connection.cursor()
    cursor.execute("EXPLAIN (FORMAT JSON) " + statement, parameters)
    [[explained]] = cursor.fetchall()
    plan = explained[0]["Plan"]
    scans = [
        n
        for n in _plan_nodes(plan)
        if n.get("Relation Name") == "shares" and "created_at" in n.get("Index Cond", "")
    ]
    # The cursor's condition bounds the page's index scan; none is left to filter rows with.
    assert len(scans) == 1, json.dumps(plan, indent=1)
    assert "created_at" not in scans[0].get("Filter", ""), json.dumps(scans[0], indent=1)


def test_the_total_of_an_empty_page_is_still_the_count(session, factories):
    owner = UserFactory()
    _links(session, owner, FileFactory(owner=owner), 3)
    last = shares.list_shares(session, owner.id, limit=3)
    assert last.next_cursor is None and last.total == 3
    beyond = shares._encode_cursor(last.items[-1])
    page = shares.list_shares(session, owner.id, limit=3, cursor=beyond)
    assert page.items == [] and page.total == 3
    assert shares.list_shares(session, UserFactory().id, limit=3).total == 0
