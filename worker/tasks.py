"""Celery tasks. They take ids, and running one twice is harmless (see app.services.processing)."""

from __future__ import annotations

import contextlib
import logging
import uuid
from dataclasses import dataclass

from celery import shared_task
from celery.exceptions import MaxRetriesExceededError, SoftTimeLimitExceeded
from celery.signals import worker_process_init
from google.api_core import exceptions as gexc
from requests import exceptions as rexc
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import sessionmaker

from app.db import make_engine, make_session_factory
from app.services import processing, tus
from app.services.compression import ArchiveMismatch
from app.services.jobs import JobQueue, celery_sender
from app.settings import Settings
from app.storage import ObjectMissing, Storage, make_storage

log = logging.getLogger(__name__)

# Errors worth retrying with backoff: the database or the storage may come back.
TRANSIENT = (
    OperationalError,
    gexc.ServerError,
    gexc.TooManyRequests,
    rexc.ConnectionError,
    rexc.Timeout,
    ConnectionError,
    TimeoutError,
)


@dataclass
class WorkerRuntime:
    settings: Settings
    sessions: sessionmaker
    storage: Storage
    jobs: JobQueue


_runtimes: dict[int, WorkerRuntime] = {}


def runtime(celery_app) -> WorkerRuntime:
    """This process's connections, built on first use (after the pool forked)."""
    rt = _runtimes.get(id(celery_app))
    if rt is None:
        settings: Settings = celery_app.conf.instashare_settings
        rt = WorkerRuntime(
            settings=settings,
            sessions=make_session_factory(make_engine(settings.database_url)),
            storage=make_storage(settings),
            jobs=JobQueue(celery_sender(celery_app)),
        )
        _runtimes[id(celery_app)] = rt
    return rt


@worker_process_init.connect
def _fresh_connections_after_fork(**_kwargs) -> None:
    _runtimes.clear()


def _backoff(retries: int) -> int:
    return min(2 ** (retries + 1), 60)


@shared_task(
    bind=True,
    name="worker.tasks.compress_upload",
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=processing.MAX_ATTEMPTS,
)
def compress_upload(self, file_id: str) -> str:
    """Compress one uploaded file into its ZIP archive (idempotent)."""
    rt = runtime(self.app)
    fid = uuid.UUID(file_id)
    lease = rt.settings.job_lease_seconds
    with rt.sessions() as session:
        job = processing.claim(session, fid, lease)
        if job is None:
            log.info("compress %s: nothing to do (done, gone, or held by another job)", fid)
            return "skipped"
        if job.attempts > processing.MAX_ATTEMPTS:
            processing.fail(
                session,
                fid,
                f"Compression did not finish after {processing.MAX_ATTEMPTS} attempts.",
                job,
            )
            return "failed"
        try:
            done = processing.run(session, rt.storage, job, lease_seconds=lease)
        except processing.LeaseLost:
            log.warning("compress %s: lease lost to another job", fid)
            return "lease-lost"
        except ObjectMissing:
            session.rollback()
            processing.fail(session, fid, "The uploaded bytes are missing from storage.", job)
            return "failed"
        except ArchiveMismatch as exc:
            session.rollback()
            processing.fail(session, fid, f"The archive did not verify: {exc}", job)
            return "failed"
        except SoftTimeLimitExceeded:
            session.rollback()
            processing.fail(session, fid, "Compression ran past its time limit.", job)
            return "failed"
        except (*TRANSIENT, DBAPIError) as exc:
            session.rollback()
            reason = f"{type(exc).__name__}: {exc}"
            log.warning("compress %s: transient failure, will retry: %s", fid, reason)
            # If even this fails, the lease expires and the sweep sends the job again.
            with contextlib.suppress(OperationalError):
                processing.release(session, job, f"Retrying after a transient error: {reason}")
            try:
                raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc
            except MaxRetriesExceededError:
                processing.fail(session, fid, f"Gave up after repeated errors: {reason}")
                return "failed"
        except Exception as exc:
            log.exception("compress %s failed", fid)
            session.rollback()
            processing.fail(session, fid, f"Compression failed: {type(exc).__name__}: {exc}", job)
            return "failed"
    return "ready" if done else "deleted"


@shared_task(bind=True, name="worker.tasks.sweep_jobs", ignore_result=True)
def sweep_jobs(self) -> int:
    """Send the jobs of files that are unsent, lost with a dead worker, or stuck."""
    rt = runtime(self.app)
    with rt.sessions() as session:
        failed = processing.fail_exhausted(session)
        due = processing.due_for_delivery(session, lease_seconds=rt.settings.job_lease_seconds)
        sent = sum(rt.jobs.send_compression(session, fid) for fid in due)
    if due or failed:
        log.info("sweep: %d job(s) sent of %d due, %d file(s) failed", sent, len(due), failed)
    return sent


@shared_task(bind=True, name="worker.tasks.expire_uploads", ignore_result=True)
def expire_uploads(self) -> int:
    """Remove resumable uploads past their expiry, with their part objects."""
    rt = runtime(self.app)
    with rt.sessions() as session:
        removed = tus.expire(session, rt.storage)
    if removed:
        log.info("expired %d abandoned upload(s)", removed)
    return removed
