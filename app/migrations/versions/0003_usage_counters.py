"""usage counters on users: files, bytes stored, bytes reserved by unfinished uploads

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

COUNTERS = ("file_count", "bytes_stored", "bytes_reserved")


def upgrade() -> None:
    # Plain ADD COLUMN, not a batch: on SQLite a batch rebuilds the table, and the rebuild
    # would drop the expression index that keeps e-mail addresses unique in any case.
    for column in COUNTERS:
        op.add_column(
            "users", sa.Column(column, sa.BigInteger(), nullable=False, server_default="0")
        )
    # The counters start from the rows (what `instashare-server recount` also does).
    op.execute(
        """
        UPDATE users SET
            file_count = (SELECT count(*) FROM files WHERE files.owner_id = users.id),
            bytes_stored = (SELECT coalesce(sum(size), 0) FROM files
                            WHERE files.owner_id = users.id),
            bytes_reserved = (SELECT coalesce(sum(length), 0) FROM uploads
                              WHERE uploads.owner_id = users.id AND uploads.completed_at IS NULL)
        """
    )


def downgrade() -> None:
    for column in reversed(COUNTERS):
        op.drop_column("users", column)
