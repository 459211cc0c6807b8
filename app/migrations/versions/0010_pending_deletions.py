"""pending deletions: objects to remove after the rows they belonged to are gone

Revision ID: 0010_pending_deletions
Revises: 0009_share_downloads
Create Date: 2026-12-11

Deleting a file (or finishing, cancelling or expiring a resumable upload) commits the row's
removal together with a record of its objects, then removes the objects, then the record
(`app.services.deletions`). A process that dies in between leaves the record, and the
worker's sweep finishes the job. A new, empty table: nothing else is locked.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_pending_deletions"
down_revision = "0009_share_downloads"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pending_deletions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=1024), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_deletions")),
        if_not_exists=True,
    )
    op.create_index(
        op.f("ix_pending_deletions_created_at"),
        "pending_deletions",
        ["created_at"],
        if_not_exists=True,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_pending_deletions_created_at"), table_name="pending_deletions")
    op.drop_table("pending_deletions")
