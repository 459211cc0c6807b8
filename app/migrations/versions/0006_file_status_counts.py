"""files by status on each account, kept by triggers on files

Revision ID: 0006_file_status_counts
Revises: 0005_list_indexes
Create Date: 2026-12-08

`GET /files` answers with how many files match its filter and /metrics with how many
there are in each status. Counting rows made both cost a scan of the owner's (or every)
file. Four counters on `users` hold the numbers instead, moved by triggers in the same
transaction as the row: every path that inserts, deletes or changes a file's status (the
worker's bulk sweeps and a cascading account deletion included) keeps them exact, and none
of them has to remember to. `instashare-server recount` checks them against the rows.

On PostgreSQL the counters start from the rows one account at a time: the account's row is
locked, then its files counted, so a write landing meanwhile waits for that account (a
fraction of a second for a million files) and is counted exactly once; no other account's
writes wait.
"""

import sqlalchemy as sa
from alembic import op

from app.migrations.locking import patiently

revision = "0006_file_status_counts"
down_revision = "0005_list_indexes"
branch_labels = None
depends_on = None

STATUSES = ("pending", "processing", "ready", "failed")
COLUMNS = tuple(f"files_{status}" for status in STATUSES)


POSTGRES_FUNCTION = """
CREATE OR REPLACE FUNCTION files_count_by_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE users SET
            files_pending = files_pending + (NEW.status = 'pending')::int,
            files_processing = files_processing + (NEW.status = 'processing')::int,
            files_ready = files_ready + (NEW.status = 'ready')::int,
            files_failed = files_failed + (NEW.status = 'failed')::int
        WHERE id = NEW.owner_id;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE users SET
            files_pending = files_pending - (OLD.status = 'pending')::int,
            files_processing = files_processing - (OLD.status = 'processing')::int,
            files_ready = files_ready - (OLD.status = 'ready')::int,
            files_failed = files_failed - (OLD.status = 'failed')::int
        WHERE id = OLD.owner_id;
    ELSE
        UPDATE users SET
            files_pending = files_pending
                + (NEW.status = 'pending')::int - (OLD.status = 'pending')::int,
            files_processing = files_processing
                + (NEW.status = 'processing')::int - (OLD.status = 'processing')::int,
            files_ready = files_ready
                + (NEW.status = 'ready')::int - (OLD.status = 'ready')::int,
            files_failed = files_failed
                + (NEW.status = 'failed')::int - (OLD.status = 'failed')::int
        WHERE id = NEW.owner_id;
    END IF;
    RETURN NULL;
END $$
"""

# Counted after the account's row is locked (a statement of its own, so the counts' snapshot
# is taken once the lock is held), then committed: the next account's turn.
POSTGRES_BACKFILL = """
DO $$
DECLARE
    owner uuid;
BEGIN
    FOR owner IN SELECT id FROM users LOOP
        PERFORM 1 FROM users WHERE id = owner FOR UPDATE;
        UPDATE users SET
            files_pending = (SELECT count(*) FROM files
                             WHERE owner_id = owner AND status = 'pending'),
            files_processing = (SELECT count(*) FROM files
                                WHERE owner_id = owner AND status = 'processing'),
            files_ready = (SELECT count(*) FROM files
                           WHERE owner_id = owner AND status = 'ready'),
            files_failed = (SELECT count(*) FROM files
                            WHERE owner_id = owner AND status = 'failed')
        WHERE id = owner;
        COMMIT;
    END LOOP;
END $$
"""

SQLITE_TRIGGERS = (
    """
    CREATE TRIGGER files_count_insert AFTER INSERT ON files BEGIN
        UPDATE users SET
            files_pending = files_pending + (NEW.status = 'pending'),
            files_processing = files_processing + (NEW.status = 'processing'),
            files_ready = files_ready + (NEW.status = 'ready'),
            files_failed = files_failed + (NEW.status = 'failed')
        WHERE id = NEW.owner_id;
    END
    """,
    """
    CREATE TRIGGER files_count_delete AFTER DELETE ON files BEGIN
        UPDATE users SET
            files_pending = files_pending - (OLD.status = 'pending'),
            files_processing = files_processing - (OLD.status = 'processing'),
            files_ready = files_ready - (OLD.status = 'ready'),
            files_failed = files_failed - (OLD.status = 'failed')
        WHERE id = OLD.owner_id;
    END
    """,
    """
    CREATE TRIGGER files_count_status AFTER UPDATE OF status ON files
    WHEN OLD.status IS NOT NEW.status BEGIN
        UPDATE users SET
            files_pending = files_pending + (NEW.status = 'pending') - (OLD.status = 'pending'),
            files_processing = files_processing
                + (NEW.status = 'processing') - (OLD.status = 'processing'),
            files_ready = files_ready + (NEW.status = 'ready') - (OLD.status = 'ready'),
            files_failed = files_failed + (NEW.status = 'failed') - (OLD.status = 'failed')
        WHERE id = NEW.owner_id;
    END
    """,
)

SQLITE_BACKFILL = """
UPDATE users SET
    files_pending = (SELECT count(*) FROM files
                     WHERE owner_id = users.id AND status = 'pending'),
    files_processing = (SELECT count(*) FROM files
                        WHERE owner_id = users.id AND status = 'processing'),
    files_ready = (SELECT count(*) FROM files WHERE owner_id = users.id AND status = 'ready'),
    files_failed = (SELECT count(*) FROM files WHERE owner_id = users.id AND status = 'failed')
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        # Plain ADD COLUMN (see 0003): on SQLite a batch would rebuild `users`.
        for column in COLUMNS:
            op.add_column(
                "users", sa.Column(column, sa.BigInteger(), nullable=False, server_default="0")
            )
        for trigger in SQLITE_TRIGGERS:
            op.execute(trigger)
        op.execute(SQLITE_BACKFILL)
        return
    # Each step its own short transaction. Had one transaction held both `users` (the new
    # columns) and `files` (the triggers), a write taking them the other way round (the
    # service takes both orders) would deadlock with it. The triggers count from the moment
    # they commit; only then does each account's count start from its rows.
    with op.get_context().autocommit_block():
        patiently(
            "ALTER TABLE users "
            "ADD COLUMN IF NOT EXISTS files_pending bigint NOT NULL DEFAULT 0, "
            "ADD COLUMN IF NOT EXISTS files_processing bigint NOT NULL DEFAULT 0, "
            "ADD COLUMN IF NOT EXISTS files_ready bigint NOT NULL DEFAULT 0, "
            "ADD COLUMN IF NOT EXISTS files_failed bigint NOT NULL DEFAULT 0"
        )
        op.execute(POSTGRES_FUNCTION)
        patiently(
            "CREATE OR REPLACE TRIGGER files_count_insert_delete AFTER INSERT OR DELETE ON files "
            "FOR EACH ROW EXECUTE FUNCTION files_count_by_status()"
        )
        patiently(
            "CREATE OR REPLACE TRIGGER files_count_status AFTER UPDATE OF status ON files "
            "FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) "
            "EXECUTE FUNCTION files_count_by_status()"
        )
        op.execute(POSTGRES_BACKFILL)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS files_count_status ON files")
        op.execute("DROP TRIGGER IF EXISTS files_count_insert_delete ON files")
        op.execute("DROP FUNCTION IF EXISTS files_count_by_status()")
    else:
        for name in ("files_count_status", "files_count_delete", "files_count_insert"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    for column in reversed(COLUMNS):
        op.drop_column("users", column)
