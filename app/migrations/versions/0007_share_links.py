"""share links: a link per file that anyone who has it may download from

Revision ID: 0007_share_links
Revises: 0006_file_status_counts
Create Date: 2026-12-10
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_share_links"
down_revision = "0006_file_status_counts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shares",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("file_id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("serves", sa.String(length=8), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("max_downloads", sa.Integer(), nullable=True),
        sa.Column("downloads", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_downloaded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"], ["files.id"], name=op.f("fk_shares_file_id_files"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_shares_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shares")),
    )
    op.create_index("ix_shares_owner_id_created_at", "shares", ["owner_id", "created_at", "id"])
    op.create_index("ix_shares_file_id_created_at", "shares", ["file_id", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_shares_file_id_created_at", table_name="shares")
    op.drop_index("ix_shares_owner_id_created_at", table_name="shares")
    op.drop_table("shares")
