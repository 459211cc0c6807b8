"""The one composition root: what the API and the worker build from the settings, per process."""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery
from sqlalchemy.orm import sessionmaker

from app.db import make_engine, make_session_factory
from app.queue.celery import make_celery
from app.queue.jobs import JobQueue, celery_sender, redis_queue_depth
from app.services.once import MemoryOneTime, OneTimeValues, RedisOneTime
from app.services.throttle import (
    CounterStore,
    LoginThrottle,
    MemoryCounters,
    RedisCounters,
    ResilientCounters,
)
from app.settings import Settings
from app.storage import Storage, make_storage


@dataclass
class Runtime:
    """The process's connections: database sessions, storage, the job queue, login counters,
    and the values a request leaves for one later request (single sign-on's)."""

    settings: Settings
    sessions: sessionmaker
    storage: Storage
    jobs: JobQueue
    throttle: LoginThrottle
    once: OneTimeValues


def _throttle(settings: Settings) -> LoginThrottle:
    store: CounterStore
    if settings.redis_url:
        import redis

        client = redis.Redis.from_url(
            settings.redis_url, socket_timeout=2, socket_connect_timeout=2
        )
        store = ResilientCounters(RedisCounters(client), MemoryCounters())
    else:
        store = MemoryCounters()
    return LoginThrottle(
        store,
        per_account_address=settings.login_max_failures,
        per_address=settings.login_max_failures_per_ip,
        per_account=settings.login_max_failures_per_account,
        window=settings.login_window_seconds,
        interval=settings.login_campaign_interval_seconds,
    )


def _one_time_values(settings: Settings) -> OneTimeValues:
    if not settings.redis_url:
        return MemoryOneTime()
    import redis

    return RedisOneTime(
        redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    )


def build_runtime(
    settings: Settings,
    *,
    celery: Celery | None = None,
    sessions: sessionmaker | None = None,
    jobs: JobQueue | None = None,
) -> Runtime:
    """Everything a request or a job needs, from `settings`.

    The worker passes its own Celery app (jobs it sends go through it); the tests pass
    sessions bound to one transaction and a queue that runs jobs in-process.
    """
    if jobs is None:
        jobs = JobQueue(
            celery_sender(celery or make_celery(settings)), redis_queue_depth(settings.broker_url)
        )
    return Runtime(
        settings=settings,
        sessions=sessions or make_session_factory(make_engine(settings.database_url)),
        storage=make_storage(settings),
        jobs=jobs,
        throttle=_throttle(settings),
        once=_one_time_values(settings),
    )
