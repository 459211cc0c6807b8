"""The Celery application: broker settings, reliability options and the periodic sweeps."""

from __future__ import annotations

from celery import Celery

from app.overrides import check_versions
from app.queue import (
    EXPIRE_UPLOADS,
    FINISH_DELETIONS,
    FORGET_SESSIONS,
    FORGET_SHARE_DOWNLOADS,
    QUEUE,
    SWEEP_JOBS,
)
from app.settings import Settings

# Abandoned resumable uploads are removed this often (they expire after hours, not seconds).
EXPIRE_UPLOADS_EVERY_SECONDS = 600.0
FORGET_SHARE_DOWNLOADS_EVERY_SECONDS = 3600.0
FORGET_SESSIONS_EVERY_SECONDS = 3600.0
# Deletions a crash or a storage error left half-done are finished this often.
FINISH_DELETIONS_EVERY_SECONDS = 60.0


def make_celery(settings: Settings) -> Celery:
    """A Celery app for `settings` (used by the worker to consume and the API to publish).

    Raises UnsupportedVersion first if a library whose internals app.overrides replaces is
    not a version it was written for: the worker does not start.
    """
    check_versions()
    celery = Celery("instashare", set_as_current=False)
    transport_options: dict = {}
    transport = None
    if settings.broker_url.startswith("filesystem"):
        # The embedded default: queues are files under the data dir, no broker server.
        queue_dir = (settings.data_dir / "queue").resolve()
        (queue_dir / "control").mkdir(parents=True, exist_ok=True)
        transport_options = {
            "data_folder_in": str(queue_dir),
            "data_folder_out": str(queue_dir),
            "control_folder": str(queue_dir / "control"),
            "store_processed": False,
            "polling_interval": 0.1,
        }
        transport = "app.overrides.kombu:Transport"  # kombu's, publishing atomically
    else:
        transport_options = {
            # Unacked jobs come back after this long if their worker vanished; the lease
            # sweep usually re-queues them much sooner.
            "visibility_timeout": settings.job_time_limit_seconds + 600,
            "socket_connect_timeout": 2,
            "socket_timeout": 10,
        }
    celery.conf.update(
        broker_url=settings.broker_url,
        broker_transport=transport,
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_time_limit=settings.job_time_limit_seconds,
        task_soft_time_limit=max(settings.job_time_limit_seconds - 60, 5),
        task_default_queue=QUEUE,
        worker_prefetch_multiplier=1,
        # A broker blip must not throw away a long compression: the database lease, not the
        # broker, decides who finishes a job. (Celery 6 turns this on by default.)
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_hijack_root_logger=False,
        worker_send_task_events=True,
        task_send_sent_event=True,
        # Only one scheduler sends the sweeps, however many run (app.queue.scheduler).
        beat_scheduler="app.queue.scheduler:LockedScheduler",
        beat_schedule={
            "sweep-jobs": {
                "task": SWEEP_JOBS,
                "schedule": settings.sweep_interval_seconds,
                "options": {"expires": settings.sweep_interval_seconds * 2},
            },
            "expire-uploads": {
                "task": EXPIRE_UPLOADS,
                "schedule": EXPIRE_UPLOADS_EVERY_SECONDS,
                "options": {"expires": EXPIRE_UPLOADS_EVERY_SECONDS},
            },
            "forget-share-downloads": {
                "task": FORGET_SHARE_DOWNLOADS,
                "schedule": FORGET_SHARE_DOWNLOADS_EVERY_SECONDS,
                "options": {"expires": FORGET_SHARE_DOWNLOADS_EVERY_SECONDS},
            },
            "forget-sessions": {
                "task": FORGET_SESSIONS,
                "schedule": FORGET_SESSIONS_EVERY_SECONDS,
                "options": {"expires": FORGET_SESSIONS_EVERY_SECONDS},
            },
            "finish-deletions": {
                "task": FINISH_DELETIONS,
                "schedule": FINISH_DELETIONS_EVERY_SECONDS,
                "options": {"expires": FINISH_DELETIONS_EVERY_SECONDS},
            },
        },
        # Only a worker loads these: the API sends jobs by name and never imports them.
        include=["worker.tasks", "worker.signals"],
    )
    celery.conf.instashare_settings = settings
    return celery
