"""seek index: where a range of a deflated original can start inflating

Revision ID: 0008_seek_index
Revises: 0007_share_links
Create Date: 2026-12-07

A nullable column, added without a default: on PostgreSQL a catalogue change only (no
table rewrite), on SQLite an ALTER TABLE ADD COLUMN. Archives written before it have
none; `instashare-server index-archives` sends the job that makes theirs.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_seek_index"
down_revision = "0007_share_links"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("files", sa.Column("seek_index", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    # Not a batch (a table rebuild on SQLite would drop the triggers of 0006): SQLite
    # drops a column in place since 3.35.
    op.drop_column("files", "seek_index")
