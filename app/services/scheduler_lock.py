"""One scheduler at a time: a lock row that its holder renews and a newcomer waits for.

Two schedulers (a `worker --beat` started twice by mistake, or one restarted beside a
beat that outlived its worker) would each send every sweep. The one that holds the row
sends them; another one waits, and takes the row over once its holder stopped renewing
it for `ttl_seconds`.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import rowcount, utcnow
from app.models import SchedulerLock


def hold(session: Session, name: str, holder: str, ttl_seconds: float) -> bool:
    """Take or renew lock `name` for `holder`; False while someone else holds it."""
    now = utcnow()
    expires_at = now + dt.timedelta(seconds=ttl_seconds)
    taken = session.execute(
        update(SchedulerLock)
        .where(
            SchedulerLock.name == name,
            or_(SchedulerLock.holder == holder, SchedulerLock.expires_at < now),
        )
        .values(holder=holder, expires_at=expires_at)
    )
    session.commit()
    if rowcount(taken) == 1:
        return True
    try:
        session.add(SchedulerLock(name=name, holder=holder, expires_at=expires_at))
        session.commit()
    except IntegrityError:  # held by another, alive
        session.rollback()
        return False
    return True


def release(session: Session, name: str, holder: str) -> None:
    """Let go of lock `name` (if `holder` has it), so another scheduler takes it at once."""
    session.execute(
        delete(SchedulerLock).where(SchedulerLock.name == name, SchedulerLock.holder == holder)
    )
    session.commit()
