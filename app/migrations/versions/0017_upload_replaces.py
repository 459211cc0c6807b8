"""uploads that replace: a resumable upload may take the name of a file it replaces

Revision ID: 0017_upload_replaces
Revises: 0016_file_previews
Create Date: 2026-12-07

One nullable boolean on `uploads` (tus `onConflict: replace`, app.services.conflicts): when
the last byte lands, the file of the same name in the same place is deleted in the
transaction that makes the new one. Adding a nullable column without a default rewrites
nothing and holds its lock for an instant.
"""

import sqlalchemy as sa
from alembic import op

revision = "0017_upload_replaces"
down_revision = "0016_file_previews"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("uploads", sa.Column("replaces", sa.Boolean(), nullable=True))


def downgrade() -> None:
    # Not a batch (a table rebuild on SQLite would lose what 0006 added): SQLite drops a
    # column in place since 3.35.
    op.drop_column("uploads", "replaces")
