"""The job queue both paths share: task names, the Celery app, and sending jobs after commit.

The API imports this package to send a job; only the worker (`worker/`) imports the tasks.
The names are the messages' task names on the broker: changing one strands queued jobs.
"""

COMPRESS_UPLOAD = "worker.tasks.compress_upload"
SWEEP_JOBS = "worker.tasks.sweep_jobs"
EXPIRE_UPLOADS = "worker.tasks.expire_uploads"
INDEX_ARCHIVE = "worker.tasks.index_archive"
FORGET_SHARE_DOWNLOADS = "worker.tasks.forget_share_downloads"
FINISH_DELETIONS = "worker.tasks.finish_deletions"
FORGET_SESSIONS = "worker.tasks.forget_sessions"
SEND_MAIL = "worker.tasks.send_mail"
QUEUE = "instashare"
# Files up to this size are compressed from a lane of their own, which a slot of every
# worker keeps free for them: behind another account's backlog of large files, a small
# file waits for no large one (`instashare-server worker`, `bench/fairness.py`).
SMALL_QUEUE = "instashare.small"
SMALL_JOB_BYTES = 4 * 1024 * 1024
