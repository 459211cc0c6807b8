"""Values a request leaves for one later request to take, once, within a short time.

Single sign-on keeps a sign-in's state (its nonce and PKCE verifier) from the redirect to
the provider until the provider sends the browser back, and the outcome of that from the
callback until the web app collects it (app.services.sso). Each is taken at most once: a
replayed callback or a reused code finds nothing. With Redis (every production process
shares it) a take is one GETDEL; without (`dev`, one process) a dict does the same.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

import redis

# Redis keys of this store begin with it (the throttle's counters have their own).
PREFIX = "instashare:once:"


class OneTimeValues(Protocol):
    def put(self, key: str, value: str, ttl_seconds: int) -> None:
        """Keep `value` under `key` for `ttl_seconds` (a new value replaces an old one)."""

    def take(self, key: str) -> str | None:
        """The value under `key`, removed in the same step; None when gone or never there."""


class RedisOneTime:
    def __init__(self, client: redis.Redis):
        self.client = client

    def put(self, key: str, value: str, ttl_seconds: int) -> None:
        self.client.set(PREFIX + key, value, ex=ttl_seconds)

    def take(self, key: str) -> str | None:
        raw = self.client.getdel(PREFIX + key)
        return None if raw is None else bytes(raw).decode()  # type: ignore[arg-type]


class MemoryOneTime:
    """In-process, for a single process (`dev`). Bounded: at most `limit` values at once,
    the expired ones dropped as new ones come (a flood of sign-ins cannot grow it)."""

    def __init__(self, limit: int = 10_000):
        self.limit = limit
        self._values: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def put(self, key: str, value: str, ttl_seconds: int) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._values) >= self.limit:
                self._values = {k: v for k, v in self._values.items() if v[0] > now}
                while len(self._values) >= self.limit:  # all alive: the oldest goes first
                    del self._values[next(iter(self._values))]
            self._values[key] = (now + ttl_seconds, value)

    def take(self, key: str) -> str | None:
        with self._lock:
            held = self._values.pop(key, None)
        if held is None or held[0] <= time.monotonic():
            return None
        return held[1]
