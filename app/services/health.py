"""Is each dependency reachable? Used by /ready and by `instashare-server check`."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from app.settings import Settings
from app.storage import Storage


def _database(sessions: sessionmaker) -> None:
    with sessions() as session:
        session.execute(text("SELECT 1"))


def _broker(settings: Settings) -> None:
    if settings.broker_url.startswith("filesystem"):
        return
    from kombu import Connection

    with Connection(settings.broker_url, connect_timeout=2) as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


def _redis(settings: Settings) -> None:
    import redis

    redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2).ping()


def check(settings: Settings, sessions: sessionmaker, storage: Storage) -> dict[str, str | None]:
    """Each dependency's name mapped to None when it answers, or to why it does not."""
    probes: dict[str, Callable[[], None]] = {
        "database": lambda: _database(sessions),
        "broker": lambda: _broker(settings),
        "storage": storage.ping,
    }
    if settings.redis_url:
        probes["redis"] = lambda: _redis(settings)
    results: dict[str, str | None] = {}
    for name, probe in probes.items():
        try:
            probe()
            results[name] = None
        except Exception as exc:
            results[name] = reason(exc)
    return results


def openid_provider(settings: Settings) -> str | None:
    """None when the single sign-on provider's discovery document reads as it should, or why not."""
    from app.services import oidc

    try:
        oidc.discover(settings)
    except Exception as exc:
        return reason(exc)
    return None


def reason(exc: BaseException) -> str:
    """Why a dependency failed, on one line: the driver's own message, not SQLAlchemy's wrap."""
    cause = getattr(exc, "orig", None) or exc  # SQLAlchemy keeps the driver's error there
    text = " ".join(str(cause).split()) or type(cause).__name__
    return f"{type(cause).__name__}: {text}"[:300]
