"""archives per attempt: the key and the generation of the archive a job verified

Revision ID: 0012_archive_per_attempt
Revises: 0011_job_delivery
Create Date: 2026-12-07

Two nullable columns on `files`, no default: PostgreSQL adds them without rewriting the
table, under a lock taken patiently (`app.migrations.locking`). Rows from before keep both
empty, and their archive is where it always was (`<owner>/<id>.zip`, see
`app.models.archive_key_for`).
"""

import sqlalchemy as sa
from alembic import op

from app.migrations.locking import patiently

revision = "0012_archive_per_attempt"
down_revision = "0011_job_delivery"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        # Plain ADD COLUMN (see 0003): on SQLite a batch would rebuild the table.
        op.add_column("files", sa.Column("archive_object", sa.String(300), nullable=True))
        op.add_column("files", sa.Column("archive_generation", sa.BigInteger(), nullable=True))
        return
    with op.get_context().autocommit_block():
        patiently(
            "ALTER TABLE files "
            "ADD COLUMN IF NOT EXISTS archive_object varchar(300), "
            "ADD COLUMN IF NOT EXISTS archive_generation bigint"
        )


def downgrade() -> None:
    # Rows completed since name archives by attempt: pointing them back at `<id>.zip`
    # would lose them, so a downgrade leaves what it cannot express to the operator.
    op.drop_column("files", "archive_generation")
    op.drop_column("files", "archive_object")
