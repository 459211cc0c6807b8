"""direct uploads: an upload whose bytes go straight to the bucket through a GCS session

Revision ID: 0022_direct_uploads
Revises: 0020_api_tokens
Create Date: 2026-12-08

Four nullable columns on `uploads` (app.services.direct_uploads): whether the upload is
direct, the SHA-256 of its session URL (the URL is the client's capability: only its hash
is kept, to recognise it when the client cancels), and the CRC32C and MD5 the client
declared, if it did. Nullable without defaults: nothing is rewritten, the lock is brief.
"""

import sqlalchemy as sa
from alembic import op

revision = "0022_direct_uploads"
down_revision = "0021_sessions"
branch_labels = None
depends_on = None

COLUMNS = (
    ("direct", sa.Boolean()),
    ("session_sha256", sa.String(64)),
    ("declared_crc32c", sa.String(8)),
    ("declared_md5", sa.String(24)),
)


def upgrade() -> None:
    for name, kind in COLUMNS:
        op.add_column("uploads", sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    # Not a batch (see 0017): SQLite drops a column in place since 3.35.
    for name, _ in reversed(COLUMNS):
        op.drop_column("uploads", name)
