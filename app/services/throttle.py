"""Throttling failed logins, in Redis or in-process, without letting a stranger lock anyone out.

Three counters, each for the throttling window:

- per account and client address: after `per_account_address` failures that address must
  wait before its next try for this account, 1 minute at first and twice as long after
  each further failure (up to the window). The count is forgotten once the longest wait
  and then a whole window passed without a failure. The owner, elsewhere, is not affected.
- per client address: after `per_address` failures (for any accounts) it may not try at all.
- per account, from every address together: after `per_account` failures (a guessing
  campaign spread over many addresses) only addresses this account logged in from before
  may try; a stranger's failures never reach that number from one address.

An IPv6 address counts by its /64 network: one host usually holds a whole /64.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import threading
import time
from collections.abc import Callable
from typing import Protocol

from app.errors import TooManyRequests

FIRST_DELAY_SECONDS = 60
# How long a successful login makes its address a known one for the account.
KNOWN_ADDRESS_SECONDS = 30 * 24 * 3600


class CounterStore(Protocol):
    def hit(self, key: str, window: int, *, sliding: bool = False) -> int: ...
    def count(self, key: str) -> tuple[int, int]: ...
    def clear(self, key: str) -> None: ...
    def mark(self, key: str, seconds: int) -> None: ...
    def marked(self, key: str) -> bool: ...


class RedisCounters:
    """Counters in Redis, shared by every API process and node.

    `hit` starts the key's life at the first hit (a fixed window), or at every hit
    (`sliding`: forgotten `window` seconds after the last one); `count` is the value and
    the seconds it has left.
    """

    def __init__(self, client):
        self.client = client

    def hit(self, key: str, window: int, *, sliding: bool = False) -> int:
        pipe = self.client.pipeline()
        pipe.incr(key)
        if sliding:
            pipe.expire(key, window)
        else:
            pipe.expire(key, window, nx=True)
        count, _ = pipe.execute()
        return int(count)

    def count(self, key: str) -> tuple[int, int]:
        pipe = self.client.pipeline()
        pipe.get(key)
        pipe.ttl(key)
        raw, ttl = pipe.execute()
        if raw is None:
            return 0, 0
        return int(raw), max(int(ttl), 1)

    def clear(self, key: str) -> None:
        self.client.delete(key)

    def mark(self, key: str, seconds: int) -> None:
        self.client.set(key, b"1", ex=seconds)

    def marked(self, key: str) -> bool:
        return bool(self.client.exists(key))


class MemoryCounters:
    """The embedded default's store: one process, so one dictionary is enough."""

    SWEEP_EVERY = 1024  # hits between removals of expired entries: memory stays bounded

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._data: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()
        self._hits = 0
        self._clock = clock

    def _live(self, key: str, now: float) -> tuple[int, float]:
        count, expires = self._data.get(key, (0, 0.0))
        return (count, expires) if expires > now else (0, 0.0)

    def hit(self, key: str, window: int, *, sliding: bool = False) -> int:
        with self._lock:
            now = self._clock()
            count, expires = self._live(key, now)
            if sliding or not count:
                expires = now + window
            self._data[key] = (count + 1, expires)
            self._hits += 1
            if self._hits % self.SWEEP_EVERY == 0:
                self._data = {k: v for k, v in self._data.items() if v[1] > now}
            return count + 1

    def count(self, key: str) -> tuple[int, int]:
        with self._lock:
            now = self._clock()
            count, expires = self._live(key, now)
            return (count, max(math.ceil(expires - now), 1)) if count else (0, 0)

    def clear(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def mark(self, key: str, seconds: int) -> None:
        with self._lock:
            self._data[key] = (1, self._clock() + seconds)

    def marked(self, key: str) -> bool:
        return self.count(key)[0] > 0


def client_network(address: str) -> str:
    """What a client address counts as: itself, or for IPv6 its /64 network."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address  # not an address (a test client, a unix socket): itself
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


class LoginThrottle:
    """Refuses logins that come too fast after failures; see the module docstring."""

    def __init__(
        self,
        store: CounterStore,
        *,
        per_account_address: int,
        per_address: int,
        per_account: int,
        window: int,
    ):
        self.store = store
        self.per_account_address = per_account_address
        self.per_address = per_address
        self.per_account = per_account
        self.window = window

    @staticmethod
    def _keys(account: str, address: str) -> dict[str, str]:
        network = client_network(address)
        return {
            "address": f"login-fail:addr:{network}",
            "pair": f"login-fail:pair:{_digest(account, network)}",
            "account": f"login-fail:acct:{account}",
            "known": f"login-ok:{_digest(account, network)}",
        }

    @property
    def _pair_lifetime(self) -> int:
        return 2 * self.window  # the longest wait, then a quiet window

    def delay(self, failures: int) -> int:
        """How long an address waits after its `failures`-th failure for one account."""
        if failures < self.per_account_address:
            return 0
        doublings = min(failures - self.per_account_address, 32)
        return min(self.window, FIRST_DELAY_SECONDS * 2**doublings)

    @staticmethod
    def _refuse(why: str, seconds: int) -> TooManyRequests:
        seconds = max(int(seconds), 1)
        return TooManyRequests(
            f"Too many failed logins {why}; try again in {seconds} s.",
            headers={"Retry-After": str(seconds)},
        )

    def check(self, account: str, address: str) -> None:
        """Raise TooManyRequests (with Retry-After) while this login has to wait."""
        keys = self._keys(account, address)
        count, left = self.store.count(keys["address"])
        if count >= self.per_address:
            raise self._refuse("from this address", left)
        count, left = self.store.count(keys["pair"])
        # The pair's counter lives `_pair_lifetime` seconds from its last failure.
        wait = self.delay(count) - (self._pair_lifetime - left)
        if count and wait > 0:
            raise self._refuse("for this account from this address", wait)
        count, left = self.store.count(keys["account"])
        if count >= self.per_account and not self.store.marked(keys["known"]):
            raise self._refuse(
                "for this account (an address it logged in from before may still try)", left
            )

    def failed(self, account: str, address: str) -> None:
        keys = self._keys(account, address)
        self.store.hit(keys["address"], self.window)
        self.store.hit(keys["pair"], self._pair_lifetime, sliding=True)
        self.store.hit(keys["account"], self.window)

    def succeeded(self, account: str, address: str) -> None:
        keys = self._keys(account, address)
        self.store.clear(keys["pair"])
        self.store.mark(keys["known"], KNOWN_ADDRESS_SECONDS)
