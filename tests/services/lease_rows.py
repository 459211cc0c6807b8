"""Helpers for the lease and compression-job tests: read a row afresh, age a lease."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import update
from sqlalchemy.orm import Session

from app.archive.writer import ArchiveResult
from app.db import utcnow
from app.models import File

LEASE = 30
RESULT = ArchiveResult(method="deflate", compressed_size=7, crc32=0, size=11, sha256="ab" * 32)


def fresh(session: Session, file: File) -> File:
    """The file's row as the database has it now."""
    session.expire_all()
    return session.get(File, file.id)


def ago(seconds: float) -> dt.datetime:
    return utcnow() - dt.timedelta(seconds=seconds)


def expire_lease(session: Session, file: File) -> None:
    session.execute(update(File).where(File.id == file.id).values(lease_expires_at=ago(1)))
    session.commit()
