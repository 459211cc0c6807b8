"""share downloads: a row per counted download of a link with a limit, for its resumes

Revision ID: 0009_share_downloads
Revises: 0008_seek_index
Create Date: 2026-12-07

A new table with a foreign key to `shares`. On PostgreSQL the table comes first, with no
foreign key, and the key is added in a transaction of its own with
`app.migrations.locking.patiently`, as 0007 does: adding it locks `shares` against writes,
and a busy link's download must not queue behind a migration waiting for that lock.
"""

import contextlib

import sqlalchemy as sa
from alembic import op

from app.migrations.locking import patiently

revision = "0009_share_downloads"
down_revision = "0008_seek_index"
branch_labels = None
depends_on = None

FOREIGN_KEY = "fk_share_downloads_share_id_shares"


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    key = sa.ForeignKeyConstraint(
        ["share_id"], ["shares.id"], name=op.f(FOREIGN_KEY), ondelete="CASCADE"
    )
    with op.get_context().autocommit_block() if postgresql else contextlib.nullcontext():
        op.create_table(
            "share_downloads",
            sa.Column("share_id", sa.Uuid(), nullable=False),
            sa.Column("number", sa.Integer(), nullable=False),
            sa.Column("began_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("resumed_bytes", sa.BigInteger(), nullable=False, server_default="0"),
            *([] if postgresql else [key]),  # SQLite adds no constraint to a table later
            sa.PrimaryKeyConstraint("share_id", "number", name=op.f("pk_share_downloads")),
            if_not_exists=True,  # a run cut short after it is run again
        )
        op.create_index(
            "ix_share_downloads_began_at", "share_downloads", ["began_at"], if_not_exists=True
        )
        if postgresql:
            found = op.get_bind().execute(
                sa.text("SELECT 1 FROM pg_constraint WHERE conname = :name"),
                {"name": FOREIGN_KEY},
            )
            if found.first() is None:
                patiently(
                    f"ALTER TABLE share_downloads ADD CONSTRAINT {FOREIGN_KEY} "
                    "FOREIGN KEY (share_id) REFERENCES shares (id) ON DELETE CASCADE"
                )


def downgrade() -> None:
    op.drop_index("ix_share_downloads_began_at", table_name="share_downloads")
    op.drop_table("share_downloads")
