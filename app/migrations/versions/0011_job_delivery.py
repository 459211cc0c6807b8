"""jobs that know who holds them and which request sent them; one scheduler at a time

Revision ID: 0011_job_delivery
Revises: 0010_pending_deletions
Create Date: 2026-12-12

`files.lease_holder` names the delivery that holds a file's lease (the message's task id,
its retry, and the worker process): a redelivery of the same message after its worker
process died takes the lease over at once instead of waiting for it to run out.
`files.request_id` keeps the id of the request that uploaded the file, so a job the sweep
sends again carries it too. Both are nullable columns with no default: on PostgreSQL
adding one changes only the catalogue. `scheduler_locks` holds one row per lock, which
the scheduler sending the sweeps renews: a second scheduler waits while it lives.
"""

import sqlalchemy as sa
from alembic import op

from app.migrations.locking import patiently

revision = "0011_job_delivery"
down_revision = "0010_pending_deletions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scheduler_locks",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=255), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_scheduler_locks")),
        if_not_exists=True,  # a run cut short after it is run again
    )
    if op.get_bind().dialect.name != "postgresql":
        # Plain ADD COLUMN (see 0003): on SQLite a batch would rebuild `files`.
        op.add_column("files", sa.Column("lease_holder", sa.String(length=255), nullable=True))
        op.add_column("files", sa.Column("request_id", sa.String(length=128), nullable=True))
        return
    with op.get_context().autocommit_block():
        patiently(
            "ALTER TABLE files "
            "ADD COLUMN IF NOT EXISTS lease_holder varchar(255), "
            "ADD COLUMN IF NOT EXISTS request_id varchar(128)"
        )


def downgrade() -> None:
    op.drop_table("scheduler_locks")
    op.drop_column("files", "request_id")
    op.drop_column("files", "lease_holder")
