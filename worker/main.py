"""`celery -A worker.main` entry point: the Celery app built from the environment's settings."""

from app.queue.celery import make_celery
from app.settings import Settings

celery = make_celery(Settings.from_env())
