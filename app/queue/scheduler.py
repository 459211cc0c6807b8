"""Celery beat's scheduler, sending the sweeps only while it holds the scheduler lock."""

from __future__ import annotations

import logging
import os
import socket
import uuid

from celery.beat import PersistentScheduler
from sqlalchemy.exc import SQLAlchemyError

from app.db import make_engine, make_session_factory
from app.services import scheduler_lock

log = logging.getLogger(__name__)

LOCK = "beat"
# A holder that stopped renewing (killed with its host) is replaced after three sweep
# intervals, within these bounds; it renews three times as often.
MIN_LOCK_SECONDS = 10.0
MAX_LOCK_SECONDS = 60.0


class LockedScheduler(PersistentScheduler):
    """Sends what is due only while holding the lock (app.services.scheduler_lock)."""

    def setup_schedule(self) -> None:
        super().setup_schedule()
        settings = self.app.conf.instashare_settings
        self.lock_seconds = min(
            max(3 * settings.sweep_interval_seconds, MIN_LOCK_SECONDS), MAX_LOCK_SECONDS
        )
        self.holder = f"{socket.gethostname()} {os.getpid()} {uuid.uuid4().hex[:8]}"
        self.engine = make_engine(settings.database_url)
        self.sessions = make_session_factory(self.engine)
        self.holding: bool | None = None

    def _hold(self) -> bool:
        try:
            with self.sessions() as session:
                held = scheduler_lock.hold(session, LOCK, self.holder, self.lock_seconds)
        except SQLAlchemyError as exc:
            log.warning("beat: cannot reach the database for the scheduler lock: %s", exc)
            held = False
        if held != self.holding:
            if held:
                log.info("beat: holding the scheduler lock; sending the sweeps")
            else:
                log.warning("beat: another scheduler holds the lock; waiting (it sends the sweeps)")
            self.holding = held
        return held

    def tick(self, *args, **kwargs) -> float:
        renew_in = self.lock_seconds / 3
        if not self._hold():
            return renew_in
        return min(super().tick(*args, **kwargs), renew_in)

    def close(self) -> None:
        if self.holding:
            try:
                with self.sessions() as session:
                    scheduler_lock.release(session, LOCK, self.holder)
            except SQLAlchemyError as exc:
                log.warning("beat: could not release the scheduler lock: %s", exc)
        self.engine.dispose()
        super().close()
