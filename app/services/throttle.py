"""Counting failed logins per account and per client address, in Redis or in-process."""

from __future__ import annotations

import math
import threading
import time
from typing import Protocol

from app.errors import TooManyRequests


class CounterStore(Protocol):
    def hit(self, key: str, window: int) -> None: ...
    def count(self, key: str) -> tuple[int, int]: ...
    def clear(self, key: str) -> None: ...


class RedisCounters:
    """Fixed windows in Redis, shared by every API process and node."""

    def __init__(self, client):
        self.client = client

    def hit(self, key: str, window: int) -> None:
        pipe = self.client.pipeline()
        pipe.incr(key)
        pipe.expire(key, window, nx=True)
        pipe.execute()

    def count(self, key: str) -> tuple[int, int]:
        pipe = self.client.pipeline()
        pipe.get(key)
        pipe.ttl(key)
        raw, ttl = pipe.execute()
        return int(raw or 0), max(int(ttl), 1)

    def clear(self, key: str) -> None:
        self.client.delete(key)


class MemoryCounters:
    """The embedded default's store: one process, so one dictionary is enough."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, window: int) -> None:
        with self._lock:
            count, expires = self._data.get(key, (0, 0.0))
            now = time.monotonic()
            if expires <= now:
                count, expires = 0, now + window
            self._data[key] = (count + 1, expires)

    def count(self, key: str) -> tuple[int, int]:
        with self._lock:
            count, expires = self._data.get(key, (0, 0.0))
            remaining = expires - time.monotonic()
            if remaining <= 0:
                return 0, 0
            return count, max(math.ceil(remaining), 1)

    def clear(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)


class LoginThrottle:
    """Refuses logins for an account or an address after too many recent failures."""

    def __init__(self, store: CounterStore, *, per_account: int, per_address: int, window: int):
        self.store = store
        self.limits = {"account": per_account, "address": per_address}
        self.window = window

    @staticmethod
    def _keys(email: str, address: str) -> dict[str, str]:
        return {"account": f"login-fail:acct:{email}", "address": f"login-fail:addr:{address}"}

    def check(self, email: str, address: str) -> None:
        """Raise TooManyRequests (with Retry-After) while either counter is at its limit."""
        for kind, key in self._keys(email, address).items():
            count, retry_after = self.store.count(key)
            if count >= self.limits[kind]:
                raise TooManyRequests(
                    f"Too many failed logins for this {kind}; try again in {retry_after} s.",
                    headers={"Retry-After": str(retry_after)},
                )

    def failed(self, email: str, address: str) -> None:
        for key in self._keys(email, address).values():
            self.store.hit(key, self.window)

    def succeeded(self, email: str, address: str) -> None:
        self.store.clear(self._keys(email, address)["account"])
