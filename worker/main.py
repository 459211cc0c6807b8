"""`celery -A worker.main` entry point: the Celery app built from the environment's settings."""

from app.settings import Settings
from worker.celery_app import make_celery

celery = make_celery(Settings.from_env())
