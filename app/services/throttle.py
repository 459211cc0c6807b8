"""Throttling password guesses (logins, and share links' passwords) without locking anyone out.

Every password check is an *attempt*, counted before the password is verified: each counter
is raised by one atomic step whose result decides, so requests sent at the same moment
cannot all pass a check that reads the count. An attempt that turns out to be right gives
its counts back; one that never reached a password (a link gone meanwhile) gives them back
too. Three limits, each for the throttling window:

- per key (an account, a link) and client address: the `per_account_address`-th attempt
  makes that address wait before its next one, 1 minute at first and twice as long after
  each further one (up to the window). The count is forgotten once the longest wait and
  then a whole window passed without an attempt. Nobody elsewhere is affected. An address
  the key let in before (in the last 30 days) is not held to it.
- per client address: `per_address` attempts (at any keys) at most.
- per key, from every address together: beyond `per_account` attempts (a guessing campaign
  spread over many addresses) nobody is refused, but the key's checks are slowed down:
  they are run one at a time, `interval` seconds apart, in the order they came, each
  request waiting on the event loop for its turn (no thread, no connection slot). A key
  so gets at most `per_account + window / interval` checks per window however many
  addresses guess, and a rightful visitor waits for the guesses queued before them. A
  request that would wait more than `MAX_QUEUE_SECONDS` is refused (429) with the time
  its turn would come. An address the key let in before (a login, a link unlocked) skips
  the queue.

An IPv6 address counts by its /64 network: one host usually holds a whole /64.

The counters live in Redis, shared by every API process; when Redis cannot be reached each
process keeps them itself (`ResilientCounters`) until it can again: the limits then hold
per process, and nobody is refused or gets an error for it.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import ipaddress
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Protocol, cast

from app.errors import TooManyRequests

log = logging.getLogger(__name__)

FIRST_DELAY_SECONDS = 60
# How long a success makes its address a known one for the key.
KNOWN_ADDRESS_SECONDS = 30 * 24 * 3600
# The longest a request waits for its turn at a key under a campaign.
MAX_QUEUE_SECONDS = 30.0


class CounterStore(Protocol):
    """Atomic counters: each method is one indivisible step (a Lua script, or under a lock)."""

    def take(self, key: str, limit: int, window: int) -> int:
        """Count one more in a fixed window unless `limit` are counted: 0, or the seconds
        until the window ends (nothing counted)."""
        ...

    def give_back(self, key: str) -> None: ...

    def hit(self, key: str, window: int) -> int:
        """Count one more in a fixed window; the new count."""
        ...

    def step(
        self, key: str, limit: int, lifetime: int, first_delay: int, max_delay: int
    ) -> tuple[float, float]:
        """One attempt of a pair (see the module doc): (0, the pair's wait before it) when
        it may go, or (seconds to wait, that same wait) when not. From the `limit`-th
        attempt on, each one sets the wait for the next (first_delay, doubling, up to
        max_delay). The pair is forgotten `lifetime` seconds after its last attempt."""
        ...

    def unstep(self, key: str, previous: float) -> None:
        """Undo one `step` that went ahead, putting back the wait it replaced."""
        ...

    def reserve(self, key: str, interval: float, max_wait: float) -> float:
        """A turn at `key`, turns `interval` apart: the seconds until it comes, or minus the
        seconds it would have taken when that is over `max_wait` (no turn taken)."""
        ...

    def clear(self, key: str) -> None: ...
    def mark(self, key: str, seconds: int) -> None: ...
    def marked(self, key: str) -> bool: ...


# --- Redis ------------------------------------------------------------------------------

_TAKE = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then
  local ttl = redis.call('TTL', KEYS[1])
  if ttl < 1 then ttl = 1 end
  return ttl
end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2], 'NX')
return 0
"""
_GIVE_BACK = """
if redis.call('DECR', KEYS[1]) <= 0 then redis.call('DEL', KEYS[1]) end
return 0
"""
# Redis' own clock, so that API processes whose clocks differ agree on every wait.
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""
_STEP = (
    _NOW
    + """
local wait_until = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if wait_until > now then
  return {tostring(wait_until - now), tostring(wait_until)}
end
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
local limit = tonumber(ARGV[1])
if n >= limit then
  local delay = tonumber(ARGV[3]) * 2 ^ math.min(n - limit, 32)
  redis.call('HSET', KEYS[1], 'until', tostring(now + math.min(delay, tonumber(ARGV[4]))))
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {'0', tostring(wait_until)}
"""
)
_UNSTEP = """
if redis.call('HINCRBY', KEYS[1], 'n', -1) <= 0 then
  redis.call('DEL', KEYS[1])
else
  redis.call('HSET', KEYS[1], 'until', ARGV[1])
end
return 0
"""
_RESERVE = (
    _NOW
    + """
local turn = tonumber(redis.call('GET', KEYS[1]) or '0')
if turn < now then turn = now end
local wait = turn - now
if wait > tonumber(ARGV[2]) then return tostring(-math.max(wait, 0.001)) end
local interval = tonumber(ARGV[1])
redis.call('SET', KEYS[1], tostring(turn + interval), 'PX',
           math.ceil((wait + interval) * 1000) + 1000)
return tostring(wait)
"""
)


class RedisCounters:
    """Counters in Redis, shared by every API process and node."""

    def __init__(self, client):
        self.client = client
        self._take = client.register_script(_TAKE)
        self._give_back = client.register_script(_GIVE_BACK)
        self._step = client.register_script(_STEP)
        self._unstep = client.register_script(_UNSTEP)
        self._reserve = client.register_script(_RESERVE)

    def take(self, key: str, limit: int, window: int) -> int:
        return int(self._take(keys=[key], args=[limit, window]))

    def give_back(self, key: str) -> None:
        self._give_back(keys=[key])

    def hit(self, key: str, window: int) -> int:
        pipe = self.client.pipeline()
        pipe.incr(key)
        pipe.expire(key, window, nx=True)
        count, _ = pipe.execute()
        return int(count)

    def step(
        self, key: str, limit: int, lifetime: int, first_delay: int, max_delay: int
    ) -> tuple[float, float]:
        wait, previous = self._step(keys=[key], args=[limit, lifetime, first_delay, max_delay])
        return float(wait), float(previous)

    def unstep(self, key: str, previous: float) -> None:
        self._unstep(keys=[key], args=[repr(previous)])

    def reserve(self, key: str, interval: float, max_wait: float) -> float:
        return float(self._reserve(keys=[key], args=[repr(interval), repr(max_wait)]))

    def clear(self, key: str) -> None:
        self.client.delete(key)

    def mark(self, key: str, seconds: int) -> None:
        self.client.set(key, b"1", ex=seconds)

    def marked(self, key: str) -> bool:
        return bool(self.client.exists(key))


# --- in process -------------------------------------------------------------------------


class MemoryCounters:
    """The embedded default's store, and each process's while Redis is out of reach."""

    SWEEP_EVERY = 1024  # writes between removals of expired entries: memory stays bounded

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        # key -> (value, expires at); a pair's value is (count, wait until).
        self._data: dict[str, tuple[object, float]] = {}
        self._lock = threading.Lock()
        self._writes = 0
        self._clock = clock

    def _get(self, key: str, now: float, default: object) -> tuple[object, float]:
        value, expires = self._data.get(key, (default, 0.0))
        return (value, expires) if expires > now else (default, 0.0)

    def _put(self, key: str, value: object, expires: float, now: float) -> None:
        self._data[key] = (value, expires)
        self._writes += 1
        if self._writes % self.SWEEP_EVERY == 0:
            self._data = {k: v for k, v in self._data.items() if v[1] > now}

    def take(self, key: str, limit: int, window: int) -> int:
        with self._lock:
            now = self._clock()
            count, expires = self._get(key, now, 0)
            assert isinstance(count, int)
            if count >= limit:
                return max(math.ceil(expires - now), 1)
            self._put(key, count + 1, expires if count else now + window, now)
            return 0

    def give_back(self, key: str) -> None:
        with self._lock:
            now = self._clock()
            count, expires = self._get(key, now, 0)
            assert isinstance(count, int)
            if count > 1:
                self._data[key] = (count - 1, expires)
            else:
                self._data.pop(key, None)

    def hit(self, key: str, window: int) -> int:
        with self._lock:
            now = self._clock()
            count, expires = self._get(key, now, 0)
            assert isinstance(count, int)
            self._put(key, count + 1, expires if count else now + window, now)
            return count + 1

    def step(
        self, key: str, limit: int, lifetime: int, first_delay: int, max_delay: int
    ) -> tuple[float, float]:
        with self._lock:
            now = self._clock()
            value, _ = self._get(key, now, (0, 0.0))
            count, wait_until = cast(tuple[int, float], value)
            if wait_until > now:
                return wait_until - now, wait_until
            count += 1
            until = wait_until
            if count >= limit:
                until = now + min(max_delay, first_delay * 2 ** min(count - limit, 32))
            self._put(key, (count, until), now + lifetime, now)
            return 0.0, wait_until

    def unstep(self, key: str, previous: float) -> None:
        with self._lock:
            now = self._clock()
            value, expires = self._get(key, now, (0, 0.0))
            count = cast(tuple[int, float], value)[0]
            if count > 1:
                self._data[key] = ((count - 1, previous), expires)
            else:
                self._data.pop(key, None)

    def reserve(self, key: str, interval: float, max_wait: float) -> float:
        with self._lock:
            now = self._clock()
            turn, _ = self._get(key, now, now)
            assert isinstance(turn, float | int)
            turn = max(turn, now)
            wait = turn - now
            if wait > max_wait:
                return -max(wait, 0.001)
            self._put(key, turn + interval, turn + interval + 1, now)
            return wait

    def clear(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def mark(self, key: str, seconds: int) -> None:
        with self._lock:
            now = self._clock()
            self._put(key, 1, now + seconds, now)

    def marked(self, key: str) -> bool:
        with self._lock:
            return self._get(key, self._clock(), 0)[0] != 0


class ResilientCounters:
    """Redis while it answers; this process's own counters while it does not.

    A throttle must never turn a password check into a 500: when Redis cannot be reached
    (a restart, a network fault) every step goes to `fallback` for `retry_seconds`, then
    Redis is tried again. The limits meanwhile hold per API process.
    """

    def __init__(
        self,
        primary: RedisCounters,
        fallback: MemoryCounters,
        *,
        retry_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        import redis

        self.primary = primary
        self.fallback = fallback
        self.retry_seconds = retry_seconds
        self._clock = clock
        self._errors = (redis.RedisError, OSError)
        self._down_until = 0.0

    def _call(self, name: str, *args, **kwargs):
        if self._clock() >= self._down_until:
            try:
                return getattr(self.primary, name)(*args, **kwargs)
            except self._errors as exc:
                if self._down_until == 0.0 or self._clock() >= self._down_until:
                    log.warning(
                        "login throttling: Redis unreachable (%s); counting in this process",
                        exc,
                    )
                self._down_until = self._clock() + self.retry_seconds
        return getattr(self.fallback, name)(*args, **kwargs)

    def take(self, key: str, limit: int, window: int) -> int:
        return self._call("take", key, limit, window)

    def give_back(self, key: str) -> None:
        self._call("give_back", key)

    def hit(self, key: str, window: int) -> int:
        return self._call("hit", key, window)

    def step(
        self, key: str, limit: int, lifetime: int, first_delay: int, max_delay: int
    ) -> tuple[float, float]:
        return self._call("step", key, limit, lifetime, first_delay, max_delay)

    def unstep(self, key: str, previous: float) -> None:
        self._call("unstep", key, previous)

    def reserve(self, key: str, interval: float, max_wait: float) -> float:
        return self._call("reserve", key, interval, max_wait)

    def clear(self, key: str) -> None:
        self._call("clear", key)

    def mark(self, key: str, seconds: int) -> None:
        self._call("mark", key, seconds)

    def marked(self, key: str) -> bool:
        return self._call("marked", key)


# --- the rules --------------------------------------------------------------------------


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


class Subject(enum.Enum):
    """What a password opens, for the words of a refusal."""

    ACCOUNT = "account"
    LINK = "link"


_SAYS = {
    # (the address's own limit, the address's limit for this key, the key's queue is full)
    Subject.ACCOUNT: (
        "Too many failed logins from your address",
        "Too many failed logins for this account from your address",
        "This account is getting more login attempts than can be checked (a guessing "
        "campaign from many addresses); your turn would come too late",
    ),
    Subject.LINK: (
        "Too many wrong passwords from your address",
        "Too many wrong passwords for this link from your address",
        "This link is getting more password attempts than can be checked (a guessing "
        "campaign from many addresses); your turn would come too late",
    ),
}


@dataclasses.dataclass(frozen=True)
class _Keys:
    address: str
    pair: str
    key: str
    turns: str
    known: str


@dataclasses.dataclass
class Attempt:
    """One password check, counted: wait `wait` seconds, call `admit()`, verify, then say
    how it went (`failed()` or `succeeded()`); `abandon()` when no password was verified."""

    throttle: LoginThrottle
    keys: _Keys | None
    refusal: TooManyRequests | None = None
    wait: float = 0.0
    _previous_wait: float = 0.0
    _stepped: bool = True
    _open: bool = True

    @property
    def open(self) -> bool:
        """Whether it is still to be settled."""
        return self._open and self.keys is not None

    def admit(self) -> None:
        """Raise the refusal (429, with Retry-After) if this attempt may not verify."""
        if self.refusal is not None:
            self._open = False
            raise self.refusal

    def failed(self) -> None:
        """The password was wrong: the attempt stays counted."""
        self._open = False

    def succeeded(self) -> None:
        """The password was right: the counts go back, and the address is known from now."""
        if keys := self._settle():
            store = self.throttle.store
            store.give_back(keys.address)
            store.give_back(keys.key)
            store.clear(keys.pair)
            store.mark(keys.known, KNOWN_ADDRESS_SECONDS)

    def abandon(self) -> None:
        """No password was verified (the request ended first): give the counts back."""
        if keys := self._settle():
            store = self.throttle.store
            store.give_back(keys.address)
            if self._stepped:
                store.unstep(keys.pair, self._previous_wait)
            store.give_back(keys.key)

    def _settle(self) -> _Keys | None:
        """Its counters' keys, the first time it is settled; None after (or if uncounted)."""
        if not self.open:
            return None
        self._open = False
        return self.keys


@dataclasses.dataclass(eq=False)
class LoginThrottle:
    """Counts password attempts and decides their fate; see the module docstring."""

    store: CounterStore
    _: dataclasses.KW_ONLY
    per_account_address: int
    per_address: int
    per_account: int
    window: int
    interval: float = 2.0
    max_queue_seconds: float = MAX_QUEUE_SECONDS

    @staticmethod
    def _keys(key: str, address: str) -> _Keys:
        network = client_network(address)
        return _Keys(
            address=f"login-fail:addr:{network}",
            pair=f"login-fail:pair:{_digest(key, network)}",
            key=f"login-fail:acct:{key}",
            turns=f"login-turn:{_digest(key)}",
            known=f"login-ok:{_digest(key, network)}",
        )

    def forgive(self, key: str, address: str) -> None:
        """`address` proved another way that it holds `key` (a password reset link): its
        failed attempts at the key are forgotten, and it is known to the key from now."""
        keys = self._keys(key, address)
        self.store.clear(keys.pair)
        self.store.mark(keys.known, KNOWN_ADDRESS_SECONDS)

    def delay(self, attempts: int) -> int:
        """How long an address waits after its `attempts`-th attempt at one key."""
        if attempts < self.per_account_address:
            return 0
        doublings = min(attempts - self.per_account_address, 32)
        return min(self.window, FIRST_DELAY_SECONDS * 2**doublings)

    @staticmethod
    def _refusal(says: str, seconds: float) -> TooManyRequests:
        seconds = max(math.ceil(seconds), 1)
        return TooManyRequests(
            f"{says}; try again in {seconds} s.", headers={"Retry-After": str(seconds)}
        )

    def begin(self, key: str, address: str, *, subject: Subject, may_wait: bool) -> Attempt:
        """Count an attempt at `key` from `address`, before its password is verified.

        The attempt says how long to wait for its turn (only when `may_wait`: a caller that
        cannot wait without holding a thread is refused instead when its turn is not now),
        or carries its refusal.
        """
        keys = self._keys(key, address)
        says = _SAYS[subject]
        store = self.store
        left = store.take(keys.address, self.per_address, self.window)
        if left:
            return Attempt(self, None, refusal=self._refusal(says[0], left))
        # An address the key let in before knows its password: its attempts at it are not
        # held to the pair's limit (a download manager's parallel requests, each with the
        # password, would otherwise trip it), only to the address's own.
        known = store.marked(keys.known)
        previous = 0.0
        if not known:
            wait, previous = store.step(
                keys.pair,
                self.per_account_address,
                2 * self.window,
                FIRST_DELAY_SECONDS,
                self.window,
            )
            if wait > 0:
                store.give_back(keys.address)
                return Attempt(self, None, refusal=self._refusal(says[1], wait))
        attempt = Attempt(self, keys, _previous_wait=previous, _stepped=not known)
        if store.hit(keys.key, self.window) > self.per_account and not known:
            max_wait = self.max_queue_seconds if may_wait else 0.0
            turn = store.reserve(keys.turns, self.interval, max_wait)
            if turn < 0:
                attempt.abandon()
                return Attempt(self, None, refusal=self._refusal(says[2], -turn))
            attempt.wait = turn
        return attempt
