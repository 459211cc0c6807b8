"""Celery tasks. They take ids, and running one twice is harmless (see app.services.leases)."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import Callable
from typing import NoReturn

from celery import shared_task
from celery.exceptions import MaxRetriesExceededError, SoftTimeLimitExceeded
from celery.signals import worker_process_init
from google.api_core import exceptions as gexc
from google.auth.exceptions import TransportError
from google.cloud.storage.exceptions import DataCorruption, InvalidResponse
from requests import exceptions as rexc
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from app import mail as transports
from app.archive import ArchiveMismatch
from app.observability import MAILS
from app.queue import (
    COMPRESS_UPLOAD,
    EXPIRE_UPLOADS,
    FINISH_DELETIONS,
    FORGET_SESSIONS,
    FORGET_SHARE_DOWNLOADS,
    INDEX_ARCHIVE,
    SEND_MAIL,
    SWEEP_JOBS,
)
from app.queue.jobs import DRAIN, mail_argsrepr
from app.runtime import Runtime, build_runtime
from app.services import (
    archive_index,
    compress_job,
    deletions,
    leases,
    mail,
    resumable_uploads,
    sessions,
    shares,
)
from app.storage import BackendUnavailable, ObjectMissing

log = logging.getLogger(__name__)

# Errors worth retrying with backoff: the database or the storage may come back.
TRANSIENT = (
    OperationalError,
    # Storage that stayed down past the backend's own retries (its deadline): the GCS
    # backend says BackendUnavailable; the library's own types in case one slips through.
    BackendUnavailable,
    gexc.ServerError,
    gexc.TooManyRequests,
    gexc.RetryError,
    InvalidResponse,
    DataCorruption,
    TransportError,
    rexc.ConnectionError,
    rexc.Timeout,
    ConnectionError,
    TimeoutError,
)


_runtimes: dict[int, Runtime] = {}


def runtime(celery_app) -> Runtime:
    """This process's connections, built on first use (after the pool forked)."""
    rt = _runtimes.get(id(celery_app))
    if rt is None:
        rt = build_runtime(celery_app.conf.instashare_settings, celery=celery_app)
        _runtimes[id(celery_app)] = rt
    return rt


@worker_process_init.connect
def _fresh_connections_after_fork(**_kwargs) -> None:
    _runtimes.clear()


def _unavailable(exc: Exception) -> str:
    """What a transient error means to the file's owner (the details go to the log)."""
    if isinstance(exc, (OperationalError, DBAPIError)):
        return "The database did not answer."
    return "The storage did not answer."


def _backoff(retries: int) -> int:
    return min(2 ** (retries + 1), 60)


# A job on one file: acknowledged once it is done, handed back when its worker dies,
# retried at most as often as a file gets attempts.
FILE_JOB = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "max_retries": leases.MAX_ATTEMPTS,
}


@shared_task(name=COMPRESS_UPLOAD, **FILE_JOB)
def compress_upload(self, file_id: str) -> str:
    """Compress one uploaded file into its ZIP archive (idempotent)."""

    def retry(exc: Exception) -> NoReturn:
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc

    delivery = leases.Delivery.here(self.request.id, self.request.retries)
    return compress_file(runtime(self.app), uuid.UUID(file_id), retry, delivery)


def compress_file(
    rt: Runtime,
    fid: uuid.UUID,
    retry: Callable[[Exception], NoReturn],
    delivery: leases.Delivery | None = None,
) -> str:
    """The compression job, outside Celery: the outcome (ready, failed, skipped, ...).

    After a transient error the lease is released and `retry` raises (Celery's retry, or
    MaxRetriesExceededError once the retries are spent, which fails the file). The retry,
    or this message redelivered after its process died, takes over the lease it held.
    """
    lease = rt.settings.job_lease_seconds
    with rt.sessions() as session:
        try:
            job = leases.claim(session, fid, lease, delivery)
        except DBAPIError as exc:
            # A dropped connection (a database restart, a failover): try again shortly
            # rather than leave the file to the sweep, a lease's length later.
            session.rollback()
            log.warning("compress %s: the database failed, will retry: %s", fid, exc)
            try:
                retry(exc)
            except MaxRetriesExceededError:
                log.warning("compress %s: gave up for now; the sweep sends it again", fid)
                return "skipped"
        if job is None:
            log.info("compress %s: nothing to do (done, gone, or held by another job)", fid)
            return "skipped"
        if job.attempts > leases.MAX_ATTEMPTS:
            leases.fail(
                session,
                fid,
                f"Compression did not finish after {leases.MAX_ATTEMPTS} attempts.",
                job,
            )
            return "failed"
        try:
            done = compress_job.compress(
                session,
                rt.storage,
                job,
                lease_seconds=lease,
                compression=rt.settings.compression,
            )
        except leases.LeaseLost:
            log.warning("compress %s: lease lost to another job", fid)
            return "lease-lost"
        except ObjectMissing:
            session.rollback()
            leases.fail(session, fid, "The uploaded bytes are missing from storage.", job)
            return "failed"
        except ArchiveMismatch as exc:
            session.rollback()
            leases.fail(session, fid, f"The archive did not verify: {exc}", job)
            return "failed"
        except SoftTimeLimitExceeded:
            session.rollback()
            leases.fail(session, fid, "Compression ran past its time limit.", job)
            return "failed"
        except (*TRANSIENT, DBAPIError) as exc:
            session.rollback()
            reason = f"{type(exc).__name__}: {exc}"
            log.warning("compress %s: transient failure, will retry: %s", fid, reason)
            # If even this fails, the lease expires and the sweep sends the job again.
            with contextlib.suppress(SQLAlchemyError):
                leases.release(session, job, f"{_unavailable(exc)} It will be tried again shortly.")
            try:
                retry(exc)
            except MaxRetriesExceededError:
                leases.fail(session, fid, f"{_unavailable(exc)} Processing was given up.")
                return "failed"
        except Exception as exc:
            log.exception("compress %s failed", fid)
            session.rollback()
            leases.fail(session, fid, f"Compression failed: {type(exc).__name__}: {exc}", job)
            return "failed"
    return "ready" if done else "deleted"


@shared_task(name=INDEX_ARCHIVE, ignore_result=True, **FILE_JOB)
def index_archive(self, file_id: str) -> str:
    """Make the seek index of an archive written before there were any (idempotent)."""
    fid = uuid.UUID(file_id)
    with runtime(self.app).sessions() as session:
        try:
            done = archive_index.index_archive(session, runtime(self.app).storage, fid)
        except ObjectMissing:
            log.error("index %s: the archive is missing from storage", fid)
            return "missing"
        except ArchiveMismatch as exc:
            # Left without an index: its ranges are still served, inflated from the start.
            log.error("index %s: the archive did not verify: %s", fid, exc)
            return "mismatch"
        except (*TRANSIENT, DBAPIError) as exc:
            session.rollback()
            log.warning("index %s: transient failure, will retry: %s", fid, exc)
            raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc
    return "indexed" if done else "skipped"


def _sweep(celery_app, sweep: Callable[[Runtime, Session], int], done: str) -> int:
    """Run `sweep` in a session of this process's runtime; log `done` % its count, if any."""
    rt = runtime(celery_app)
    with rt.sessions() as session:
        count = sweep(rt, session)
    if count:
        log.info(done, count)
    return count


@shared_task(bind=True, name=SWEEP_JOBS, ignore_result=True)
def sweep_jobs(self) -> int:
    """Send the jobs of files that are unsent, lost with a dead worker, or stuck."""
    rt = runtime(self.app)
    with rt.sessions() as session:
        failed = leases.fail_exhausted(session)
        due = leases.due_for_delivery(session, lease_seconds=rt.settings.job_lease_seconds)
        sent = sum(
            rt.jobs.send_compression(session, d.file_id, d.request_id, size=d.size) for d in due
        )
    if due or failed:
        log.info("sweep: %d job(s) sent of %d due, %d file(s) failed", sent, len(due), failed)
    return sent


@shared_task(bind=True, name=EXPIRE_UPLOADS, ignore_result=True)
def expire_uploads(self) -> int:
    """Remove resumable uploads past their expiry, with their part objects."""
    return _sweep(
        self.app,
        lambda rt, session: resumable_uploads.expire(session, rt.storage),
        "expired %d abandoned upload(s)",
    )


@shared_task(bind=True, name=FORGET_SHARE_DOWNLOADS, ignore_result=True)
def forget_share_downloads(self) -> int:
    """Delete the rows of link downloads whose tickets resume nothing any more."""
    return _sweep(
        self.app,
        lambda rt, session: shares.forget_downloads(
            session, dt.timedelta(hours=rt.settings.share_resume_hours)
        ),
        "forgot %d link download(s) past their resume hours",
    )


@shared_task(bind=True, name=FORGET_SESSIONS, ignore_result=True)
def forget_sessions(self) -> int:
    """Delete the rows of sessions that are over (ended, or expired unused)."""
    return _sweep(
        self.app,
        lambda rt, session: sessions.forget_over(session),
        "forgot %d session(s) that are over",
    )


@shared_task(bind=True, name=FINISH_DELETIONS, ignore_result=True)
def finish_deletions(self, mode: str | None = None) -> int:
    """Remove the objects of deleted files and uploads that a crash or an outage left;
    with `drain` (a large folder delete sent it), every recorded object now."""
    if mode == DRAIN:
        return _sweep(
            self.app,
            lambda rt, session: deletions.drain(session, rt.storage),
            "removed the objects of %d deletion record(s)",
        )
    return _sweep(
        self.app,
        lambda rt, session: deletions.sweep(session, rt.storage),
        "finished %d deletion(s) left half-done",
    )


# A mail is tried this often after its first attempt, 2 s after it and twice as long after
# each (about 8.5 minutes in all): an SMTP server's restart is waited out, not its outage.
MAIL_RETRIES = 8


def _mail_backoff(retries: int) -> int:
    return min(2 ** (retries + 1), 300)


@shared_task(
    bind=True,
    name=SEND_MAIL,
    ignore_result=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=MAIL_RETRIES,
)
def send_mail(self, *fields: str) -> str:
    """Send one mail (app.services.mail.Mail's fields) through the configured transport."""
    outcome = _send_mail(self, fields)
    MAILS.labels(outcome).inc()
    return outcome


def _send_mail(task, fields: tuple[str, ...]) -> str:
    """The outcome of one attempt; raises Celery's Retry while a retry is left."""
    message = mail.Mail.from_args(list(fields))
    settings = task.app.conf.instashare_settings
    where = f"mail {message.message_id} ({message.subject!r})"
    if message.expired():
        log.warning("%s: not sent, its link expired before the server took it", where)
        return "expired"
    transport = transports.make_transport(settings)
    if transport is None:
        log.error("%s: not sent, no mail is configured (INSTASHARE_SMTP_HOST)", where)
        return "unconfigured"
    try:
        transport.send(message.as_email(transports.sender(settings)))
    except transports.MailRefused as exc:
        log.error("%s: refused for good: %s", where, exc)
        return "refused"
    except transports.MailDeferred as exc:
        if task.request.retries >= MAIL_RETRIES:
            log.error("%s: given up after %d attempts: %s", where, MAIL_RETRIES + 1, exc)
            return "given-up"
        log.warning("%s: not sent (%s), will retry", where, exc)
        MAILS.labels("retry").inc()
        raise task.retry(
            exc=exc,
            countdown=_mail_backoff(task.request.retries),
            argsrepr=mail_argsrepr(list(fields)),
        ) from exc
    log.info("%s: sent via %s", where, transport.describe())
    return "sent"
