"""Listing files: each keyset order is an index walk from the cursor, however deep."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa

from app.models import FileStatus
from app.services import files
from tests.factories import FileFactory, UserFactory


def _plan_nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from _plan_nodes(child)


@pytest.mark.parametrize("status", [None, "ready"])
@pytest.mark.parametrize("sort", list(files.SORTS))
def test_the_cursor_bounds_the_index_walk_instead_of_filtering_it(session, factories, sort, status):
    owner = UserFactory()
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    for n in range(30):
        FileFactory(
            owner=owner, name=f"f{n:02d}.txt", status=FileStatus.READY,
            created_at=start + dt.timedelta(seconds=n),
        )  # fmt: skip
    first = files.list_files(session, owner.id, limit=10, sort=sort, status=status)
    statements = []

    def record(_conn, _cursor, statement, parameters, *_args):
        statements.append((statement, parameters))

    connection = session.connection()
    sa.event.listen(connection, "before_cursor_execute", record)
    try:
        page = files.list_files(
            session, owner.id, limit=10, cursor=first.next_cursor, sort=sort, status=status
        )
    finally:
        sa.event.remove(connection, "before_cursor_execute", record)
    assert len(page.items) == 10 and page.total == 30
    [(statement, parameters)] = statements

    # Statistics that know these rows (in this test's transaction, rolled back with it),
    # and however few they are, a plan as for many: with an index, no sequential scan.
    session.execute(sa.text("ANALYZE files"))
    session.execute(sa.text("SET LOCAL enable_seqscan = off"))
    # And a plain index scan (a bitmap scan of so few rows hides the bound in a child node).
    session.execute(sa.text("SET LOCAL enable_bitmapscan = off"))
    cursor = connection.connection.dbapi_connection.cursor()
    cursor.execute("EXPLAIN (FORMAT JSON) " + statement, parameters)
    [[explained]] = cursor.fetchall()
    plan = explained[0]["Plan"]
    [scan] = [n for n in _plan_nodes(plan) if n.get("Relation Name") == "files"]
    key = "created_at" if "created_at" in sort else "name"
    assert "Index" in scan["Node Type"], json.dumps(plan, indent=1)
    # The cursor's condition bounds the index scan; none is left to filter rows with.
    assert key in scan.get("Index Cond", ""), json.dumps(scan, indent=1)
    assert key not in scan.get("Filter", ""), json.dumps(scan, indent=1)


def test_the_total_of_an_empty_page_is_still_the_owners(session, factories):
    owner = UserFactory()
    for n in range(3):
        FileFactory(owner=owner, name=f"f{n}.txt")
    last = files.list_files(session, owner.id, limit=3, sort="name")
    assert last.next_cursor is None
    beyond = files.encode_cursor("name", last.items[-1])
    page = files.list_files(session, owner.id, limit=3, sort="name", cursor=beyond)
    assert page.items == [] and page.total == 3
    assert files.list_files(session, owner.id, limit=3, status="failed").total == 0


def test_metrics_counts_sum_the_owners_counters(session, factories):
    before = files.count_by_status(session)
    owner = UserFactory()
    FileFactory(owner=owner, status=FileStatus.READY)
    FileFactory(owner=owner, status=FileStatus.FAILED)
    pending = FileFactory(owner=owner)
    after = files.count_by_status(session)
    assert {s: after[s] - before[s] for s in after} == {
        "pending": 1, "processing": 0, "ready": 1, "failed": 1
    }  # fmt: skip
    session.delete(pending)
    session.flush()
    assert files.count_by_status(session)["pending"] == before["pending"]
