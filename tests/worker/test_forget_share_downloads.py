"""The worker forgets link downloads past their resume hours (a real worker process, with a
broker of its own under its data dir, on this run's PostgreSQL database)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
import sqlalchemy as sa

from app.db import make_session_factory, utcnow
from app.models import File, FileStatus, Share, ShareDownload, User
from app.queue import FORGET_SHARE_DOWNLOADS
from app.queue.celery import make_celery
from tests.factories import PASSWORD_HASH
from tests.helpers import WorkerProcess, make_settings, wait_until


@pytest.mark.slow  # a worker
def test_the_worker_forgets_link_downloads_past_their_hours(
    tmp_path, engine, database_url, redis_url
):
    settings = make_settings(tmp_path, database_url, broker_url="filesystem://")
    celery = make_celery(settings)
    schedule = {entry["task"] for entry in celery.conf.beat_schedule.values()}
    assert FORGET_SHARE_DOWNLOADS in schedule

    sessions = make_session_factory(engine)
    owner = User(id=uuid.uuid4(), email=f"{uuid.uuid4().hex}@example.com")
    owner.password_hash = PASSWORD_HASH
    file = File(
        id=uuid.uuid4(),
        owner_id=owner.id,
        name="data.bin",
        status=FileStatus.READY,
        size=10,
        crc32=0,
        content_type="application/octet-stream",
        attempts=0,
    )
    share = Share(id=uuid.uuid4(), file_id=file.id, owner_id=owner.id, max_downloads=3, downloads=2)
    hours = dt.timedelta(hours=settings.share_resume_hours)
    with sessions() as session:
        session.add(owner)
        session.flush()
        session.add(file)
        session.flush()
        session.add(share)
        session.flush()
        session.add(ShareDownload(share_id=share.id, number=1, began_at=utcnow() - hours * 2))
        session.add(ShareDownload(share_id=share.id, number=2, began_at=utcnow()))
        session.commit()

    def numbers() -> list[int]:
        with sessions() as session:
            query = sa.select(ShareDownload.number).where(ShareDownload.share_id == share.id)
            return sorted(session.scalars(query))

    worker = WorkerProcess(settings, tmp_path / "worker.log", concurrency=1).start()
    try:
        celery.send_task(FORGET_SHARE_DOWNLOADS)
        wait_until(lambda: numbers() == [2], 90, 0.2, what="the worker's sweep")
        assert "forgot 1 link download(s) past their resume hours" in worker.log()
    finally:
        worker.kill()
        with sessions() as session:
            session.execute(sa.delete(User).where(User.id == owner.id))  # cascades
            session.commit()
