"""files by status, counted once per statement: bulk writes cost in proportion

Revision ID: 0013_status_counts_per_statement
Revises: 0012_archive_per_attempt
Create Date: 2026-12-07

The triggers of 0006 ran once per file row, and each run updated the owner's `users` row.
Within one statement every such update of the same row adds a version PostgreSQL must step
over on the next, so one statement over many files of one account slowed down with the
square of their number (20,000 files inserted in one statement: 33 s; deleted: 28 s).

These triggers run once per statement, over its transition tables: one UPDATE per owner
the statement touched, with the counts grouped. PostgreSQL refuses transition tables on a
trigger with several events or a column list, so there are three, and the one on UPDATE
compares old and new rows by id itself. The counters mean what they meant; nothing is
recounted. SQLite (the embedded default) keeps its row triggers: it updates a row in place.
"""

from alembic import op

from app.migrations.locking import patiently

revision = "0013_status_counts_per_statement"
down_revision = "0012_archive_per_attempt"
branch_labels = None
depends_on = None

# Each adds, per owner the statement touched, the statuses its rows gained minus those they
# lost; an owner whose counts net to nothing is not written at all.
_APPLY = """
UPDATE users SET
    files_pending = files_pending + d.pending,
    files_processing = files_processing + d.processing,
    files_ready = files_ready + d.ready,
    files_failed = files_failed + d.failed
FROM ({deltas}) AS d
WHERE users.id = d.owner_id
  AND (d.pending <> 0 OR d.processing <> 0 OR d.ready <> 0 OR d.failed <> 0)
"""
_COUNTED = """
SELECT owner_id,
    {sign}count(*) FILTER (WHERE status = 'pending') AS pending,
    {sign}count(*) FILTER (WHERE status = 'processing') AS processing,
    {sign}count(*) FILTER (WHERE status = 'ready') AS ready,
    {sign}count(*) FILTER (WHERE status = 'failed') AS failed
FROM {rows} GROUP BY owner_id
"""
# Old and new rows of one UPDATE, paired by id; only files whose status changed count.
_CHANGED = """
SELECT n.owner_id,
    count(*) FILTER (WHERE n.status = 'pending')
        - count(*) FILTER (WHERE o.status = 'pending') AS pending,
    count(*) FILTER (WHERE n.status = 'processing')
        - count(*) FILTER (WHERE o.status = 'processing') AS processing,
    count(*) FILTER (WHERE n.status = 'ready')
        - count(*) FILTER (WHERE o.status = 'ready') AS ready,
    count(*) FILTER (WHERE n.status = 'failed')
        - count(*) FILTER (WHERE o.status = 'failed') AS failed
FROM new_rows n JOIN old_rows o ON o.id = n.id
WHERE o.status IS DISTINCT FROM n.status
GROUP BY n.owner_id
"""
FUNCTIONS = {
    "files_count_inserted": _APPLY.format(deltas=_COUNTED.format(sign="", rows="new_rows")),
    "files_count_deleted": _APPLY.format(deltas=_COUNTED.format(sign="-", rows="old_rows")),
    "files_count_updated": _APPLY.format(deltas=_CHANGED),
}
TRIGGERS = {
    "files_count_inserted": "AFTER INSERT ON files REFERENCING NEW TABLE AS new_rows",
    "files_count_deleted": "AFTER DELETE ON files REFERENCING OLD TABLE AS old_rows",
    "files_count_updated": (
        "AFTER UPDATE ON files REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
    ),
}
OLD_TRIGGERS = (
    "CREATE OR REPLACE TRIGGER files_count_insert_delete AFTER INSERT OR DELETE ON files "
    "FOR EACH ROW EXECUTE FUNCTION files_count_by_status()",
    "CREATE OR REPLACE TRIGGER files_count_status AFTER UPDATE OF status ON files "
    "FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) "
    "EXECUTE FUNCTION files_count_by_status()",
)


def _function(name: str, body: str) -> str:
    return (
        f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        f"BEGIN\n{body};\nRETURN NULL;\nEND $$"
    )


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, body in FUNCTIONS.items():
        op.execute(_function(name, body))
    # One transaction for the swap (old triggers out, new in): a write either side of it
    # is counted once, by one set of triggers. It locks `files` alone, patiently.
    with op.get_context().autocommit_block():
        statements = [
            "DROP TRIGGER IF EXISTS files_count_insert_delete ON files",
            "DROP TRIGGER IF EXISTS files_count_status ON files",
            *(
                f"CREATE OR REPLACE TRIGGER {name} {event} FOR EACH STATEMENT "
                f"EXECUTE FUNCTION {name}()"
                for name, event in TRIGGERS.items()
            ),
        ]
        patiently("; ".join(statements))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    with op.get_context().autocommit_block():
        patiently(
            "; ".join(
                [*(f"DROP TRIGGER IF EXISTS {name} ON files" for name in TRIGGERS), *OLD_TRIGGERS]
            )
        )
    for name in FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {name}()")
