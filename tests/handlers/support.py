"""Helpers shared by the API contract tests: problem checks and apps with other settings."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path

import redis

from app.settings import Settings
from tests.conftest import REDIS_URL, WorkerProcess, fresh_database, make_settings

FILE_FIELDS = {
    "id",
    "name",
    "status",
    "size",
    "compressed_size",
    "content_type",
    "sha256",
    "error",
    "created_at",
    "updated_at",
    "processed_at",
}

# The "quiet" apps keep uploads `pending`, and their ETags still, for as long as a test
# likes. The session's workers cannot do that: each one sweeps the whole database it
# shares with the `app` fixtures, and sends itself the job of any pending file (even one of
# the other backend, which it then marks failed). So a quiet app has a database of its own,
# and a broker database no worker consumes.
QUIET_BROKER = REDIS_URL.rsplit("/", 1)[0] + "/12"


def assert_problem(response, status: int) -> dict:
    """`response` is an RFC 9457 problem with `status`; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body = response.json()
    assert {"type", "title", "status", "detail"} <= set(body), body
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def quiet_settings(settings: Settings, database_url: str, spool_dir: Path, **overrides):
    """`settings` on another database, with a broker nobody consumes and its own spool."""
    return make_settings(
        settings.data_dir,
        database_url,
        settings.storage_backend,
        broker_url=QUIET_BROKER,
        spool_dir=spool_dir,
        **overrides,
    )


@contextlib.contextmanager
def running_app(settings: Settings) -> Iterator:
    """A Connexion app for `settings`; its database pool is closed afterwards."""
    from app.web import create_app

    app = create_app(settings)
    try:
        yield app
    finally:
        runtime(app).sessions.kw["bind"].dispose()
        with contextlib.suppress(redis.RedisError):
            # Undelivered jobs for files the tests have finished with.
            redis.Redis.from_url(QUIET_BROKER).delete("instashare")


@contextlib.contextmanager
def app_with_worker(settings: Settings, tmp: Path) -> Iterator[tuple]:
    """An app and a real worker process that only have each other: (app, worker).

    The session's `worker` fixture shares its Redis queue with every other test run on the
    machine, and any of their workers may take (and skip) this run's jobs, which then wait
    for the sweep; with a few runs at once a file can stay pending for minutes. This pair
    has a database of its own and a filesystem broker under `tmp`, so nothing else takes
    its jobs and its sweep touches nothing else.
    """
    with fresh_database() as url:
        own = make_settings(tmp, url, settings.storage_backend, broker_url="filesystem://")
        worker = WorkerProcess(own, tmp / "worker.log").start()
        try:
            with running_app(own) as app:
                yield app, worker
        finally:
            # Killed outright: with the filesystem broker neither a warm (SIGTERM) nor a cold
            # (SIGQUIT) shutdown reliably ends before the 30 s grace period, and nothing of
            # this worker (its database, its queue directory) outlives the fixture anyway.
            worker.stop(signal.SIGKILL)


def runtime(app):
    return app.app.extensions["instashare"]


def spooled_files(settings: Settings) -> list[Path]:
    """Files left in the spool directory (none once every request has finished)."""
    root = settings.spool_root
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def stored_keys(app, user_id: str) -> list[str]:
    """Every storage key in the user's folder."""
    return sorted(runtime(app).storage.list(f"{user_id}/"))
