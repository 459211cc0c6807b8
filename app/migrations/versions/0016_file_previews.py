"""file previews: the worker's thumbnail of an image, beside its file's row

Revision ID: 0016_file_previews
Revises: 0015_share_items
Create Date: 2026-12-07

A new table keyed by the file (app.services.previews): a preview goes with its file's row,
whatever deletes it, so it is never an object to clean up. Nothing else is locked.
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_file_previews"
down_revision = "0015_share_items"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "file_previews",
        sa.Column("file_id", sa.Uuid(), nullable=False),
        sa.Column("media_type", sa.String(length=64), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"],
            ["files.id"],
            name=op.f("fk_file_previews_file_id_files"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("file_id", name=op.f("pk_file_previews")),
        if_not_exists=True,
    )


def downgrade() -> None:
    op.drop_table("file_previews")
