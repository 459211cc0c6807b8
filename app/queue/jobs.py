"""Handing compression jobs to the broker: after commit, and never at the upload's expense."""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
import uuid
from collections.abc import Callable

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.db import utcnow
from app.models import File
from app.queue import (
    COMPRESS_UPLOAD,
    FINISH_DELETIONS,
    INDEX_ARCHIVE,
    QUEUE,
    SEND_MAIL,
    SMALL_JOB_BYTES,
    SMALL_QUEUE,
)

log = logging.getLogger(__name__)
# The id of the request (or job) being handled: set by the HTTP edge for a request and by the
# worker for a job, carried into the headers of the jobs it sends, and into every log line.
REQUEST_ID = contextvars.ContextVar[str | None]("request_id", default=None)


class JobQueue:
    """Sends jobs by task name, so the API need not import the worker's code.

    `send(task, args, queue)` publishes one message on one of the queues.
    """

    def __init__(
        self,
        send: Callable[[str, list[str], str], object],
        depth: Callable[[], int | None] = lambda: None,
    ):
        self._send = send
        self.queue_depth = depth

    def send_compression(
        self,
        session: Session,
        file_id: uuid.UUID,
        request_id: str | None = None,
        *,
        size: int | None = None,
        recorded: bool = False,
    ) -> bool:
        """Publish the job for a committed file; False (and a log line) if the broker is down.

        A file whose job was not sent keeps `enqueued_at` empty and the periodic sweep sends
        it once the broker answers again, so an upload never waits on the broker. The job
        carries `request_id` (the sweep's: the upload's), else the current request's id.
        The file's `size` picks the lane; a caller that has it saves the query for it.
        `recorded`: the file's own transaction set `enqueued_at` already (an upload that
        just finished), so a sent job costs no transaction; an unsent one clears it.
        """
        if size is None:
            size = session.scalar(select(File.size).where(File.id == file_id))
        queue = SMALL_QUEUE if size is not None and size <= SMALL_JOB_BYTES else QUEUE
        token = REQUEST_ID.set(request_id) if request_id else None
        try:
            self._send(COMPRESS_UPLOAD, [str(file_id)], queue)
        except Exception as exc:  # any broker failure: the sweep will deliver it later
            log.warning("could not enqueue compression of %s: %s", file_id, exc)
            if recorded:
                try:
                    self._record_sent(session, file_id, None)
                except SQLAlchemyError as db_exc:  # then the sweep sends it a lease later
                    session.rollback()
                    log.warning("could not mark %s unsent: %s", file_id, db_exc)
            return False
        finally:
            if token is not None:
                REQUEST_ID.reset(token)
        if not recorded:
            self._record_sent(session, file_id, utcnow())
        return True

    @staticmethod
    def _record_sent(session: Session, file_id: uuid.UUID, when: dt.datetime | None) -> None:
        # Bookkeeping only: a Core UPDATE, so the file's version (its ETag) does not move,
        # and `updated_at` is kept as it is (its column default would bump it).
        session.execute(
            update(File)
            .where(File.id == file_id)
            .values(enqueued_at=when, updated_at=File.updated_at)
        )
        session.commit()

    def send_indexing(self, file_id: uuid.UUID) -> None:
        """Publish the job that makes an old archive's seek index (app.services.archive_index).

        Raises when the broker is down: the command that sends these says so and can be run
        again (the jobs are idempotent, and an archive without an index still serves).
        """
        self._send(INDEX_ARCHIVE, [str(file_id)], QUEUE)  # whole archives: the bulk lane

    def send_deletions(self) -> bool:
        """Ask a worker to remove every object recorded for removal now (a large delete
        committed them); False (and a log line) if the broker is down: the periodic sweep
        removes them then, only later."""
        try:
            self._send(FINISH_DELETIONS, [DRAIN], QUEUE)
        except Exception as exc:
            log.warning("could not send the deletion job: %s", exc)
            return False
        return True

    def send_mail(self, fields: list[str]) -> None:
        """Publish one mail (app.services.mail.Mail's fields); raises when the broker is down.

        On the small lane: a mail is a moment's work and must not wait behind large files.
        """
        self._send(SEND_MAIL, fields, SMALL_QUEUE)


# `finish_deletions`' argument to remove every record now, young ones too, to the last.
DRAIN = "drain"


def mail_argsrepr(fields: list[str]) -> str:
    """How a mail job's arguments show in task events (Flower) and the worker's log lines:
    the recipient and subject, never the text, which holds a reset or invitation link.
    Given with the job when it is sent, and again with each retry (Celery does not carry
    it over)."""
    return repr([*fields[:2], "…"])


def celery_sender(celery_app) -> Callable[[str, list[str], str], object]:
    """Publish through a Celery app without retrying: a dead broker must not stall a request.

    The current request id travels in the message headers, so the worker's log lines for
    the job carry it.
    """

    def send(task: str, args: list[str], queue: str) -> object:
        headers = {"x_request_id": request_id} if (request_id := REQUEST_ID.get()) else {}
        options = {"argsrepr": mail_argsrepr(args)} if task == SEND_MAIL else {}
        return celery_app.send_task(
            task, args=args, queue=queue, retry=False, headers=headers, **options
        )

    return send


def redis_queue_depth(
    broker_url: str, queues: tuple[str, ...] = (QUEUE, SMALL_QUEUE)
) -> Callable[[], int | None]:
    """How many jobs wait in a Redis broker's queues (None when they cannot be read)."""
    if not broker_url.startswith(("redis://", "rediss://")):
        return lambda: None
    import redis

    client = redis.Redis.from_url(broker_url, socket_timeout=2, socket_connect_timeout=2)

    def depth() -> int | None:
        try:
            return sum(int(client.llen(queue)) for queue in queues)
        except redis.RedisError:
            return None

    return depth
