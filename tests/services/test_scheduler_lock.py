"""The scheduler lock: one holder at a time, renewed by it, taken over once it lapses."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import update

from app.db import utcnow
from app.models import SchedulerLock
from app.services import scheduler_lock


def test_one_holder_at_a_time_until_it_lapses_or_lets_go(session):
    assert scheduler_lock.hold(session, "beat-test", "a", 30)
    assert scheduler_lock.hold(session, "beat-test", "a", 30)  # renewed
    assert not scheduler_lock.hold(session, "beat-test", "b", 30)  # a lives: b waits

    # a stops renewing (killed with its host): once the lock lapses, b takes it.
    session.execute(
        update(SchedulerLock)
        .where(SchedulerLock.name == "beat-test")
        .values(expires_at=utcnow() - dt.timedelta(seconds=1))
    )
    session.commit()
    assert scheduler_lock.hold(session, "beat-test", "b", 30)
    assert not scheduler_lock.hold(session, "beat-test", "a", 30)  # a is back: it waits

    scheduler_lock.release(session, "beat-test", "a")  # not a's to let go
    assert not scheduler_lock.hold(session, "beat-test", "a", 30)
    scheduler_lock.release(session, "beat-test", "b")  # b stops: a takes over at once
    assert scheduler_lock.hold(session, "beat-test", "a", 30)
