"""Login throttling: guessing slows down, and nobody can lock the owner out from elsewhere.

The rules run on the in-process store with a clock the test moves; the Redis store is
checked to keep the same counters (tests/handlers/test_users.py drives it over HTTP).
"""

from __future__ import annotations

import uuid

import pytest
import redis

from app.errors import TooManyRequests
from app.services.throttle import (
    FIRST_DELAY_SECONDS,
    LoginThrottle,
    MemoryCounters,
    RedisCounters,
    client_network,
)

WINDOW = 900
STRANGER, OWNER = "198.51.100.7", "203.0.113.20"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


def throttle(clock: Clock, **limits: int) -> LoginThrottle:
    values = {"per_account_address": 3, "per_address": 50, "per_account": 100, **limits}
    return LoginThrottle(MemoryCounters(clock), window=WINDOW, **values)


def refused(throttle: LoginThrottle, account: str, address: str) -> int | None:
    """The Retry-After of a refusal, or None when the login may go ahead."""
    try:
        throttle.check(account, address)
    except TooManyRequests as exc:
        return int(exc.headers["Retry-After"])
    return None


def fail(throttle: LoginThrottle, account: str, address: str, times: int = 1) -> None:
    for _ in range(times):
        assert refused(throttle, account, address) is None
        throttle.failed(account, address)


def test_an_address_waits_longer_after_each_failure_beyond_the_limit(clock):
    t = throttle(clock)
    fail(t, "ann@example.com", STRANGER, 3)
    waits = []
    for _ in range(7):
        wait = refused(t, "ann@example.com", STRANGER)
        assert wait is not None
        waits.append(wait)
        clock.advance(wait - 1)
        assert refused(t, "ann@example.com", STRANGER) is not None  # not a second early
        clock.advance(1)
        fail(t, "ann@example.com", STRANGER)
    first = FIRST_DELAY_SECONDS
    assert waits == [first, 2 * first, 4 * first, 8 * first, WINDOW, WINDOW, WINDOW]


def test_the_longest_wait_and_a_quiet_window_forget_the_failures(clock):
    t = throttle(clock)
    fail(t, "ann@example.com", STRANGER, 3)
    clock.advance(2 * WINDOW - 1)
    assert refused(t, "ann@example.com", STRANGER) is None
    t.failed("ann@example.com", STRANGER)  # the fourth failure, within the count's life
    assert refused(t, "ann@example.com", STRANGER) == 2 * FIRST_DELAY_SECONDS
    clock.advance(2 * WINDOW)
    fail(t, "ann@example.com", STRANGER, 2)  # counting from zero again: no wait yet
    assert refused(t, "ann@example.com", STRANGER) is None


def test_a_stranger_hammering_an_account_does_not_hold_up_its_owner(clock):
    t = throttle(clock)
    fail(t, "ann@example.com", STRANGER, 3)
    for _ in range(10):
        clock.advance(refused(t, "ann@example.com", STRANGER) or 0)
        fail(t, "ann@example.com", STRANGER)
    assert refused(t, "ann@example.com", STRANGER) == WINDOW
    # The owner, from another address, is never made to wait, first login or not.
    assert refused(t, "ann@example.com", OWNER) is None
    t.succeeded("ann@example.com", OWNER)
    assert refused(t, "ann@example.com", STRANGER) is not None


def test_a_success_from_the_address_ends_its_wait(clock):
    t = throttle(clock)
    fail(t, "ann@example.com", OWNER, 2)
    t.succeeded("ann@example.com", OWNER)
    fail(t, "ann@example.com", OWNER, 2)
    assert refused(t, "ann@example.com", OWNER) is None


def test_one_address_is_limited_across_accounts(clock):
    t = throttle(clock, per_address=5)
    for n in range(5):
        fail(t, f"user{n}@example.com", STRANGER)
    assert refused(t, "someone-else@example.com", STRANGER) == WINDOW
    assert refused(t, "someone-else@example.com", OWNER) is None


def test_a_campaign_from_many_addresses_leaves_known_addresses_in(clock):
    t = throttle(clock, per_account=10)
    t.succeeded("ann@example.com", OWNER)  # the owner logged in from here before
    for n in range(10):
        fail(t, "ann@example.com", f"192.0.2.{n}")
    assert refused(t, "ann@example.com", "192.0.2.200") == WINDOW  # a new address waits
    assert refused(t, "ann@example.com", OWNER) is None
    assert refused(t, "bob@example.com", "192.0.2.200") is None  # other accounts go on


def test_an_ipv6_host_counts_as_its_64_network(clock):
    assert client_network("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert client_network("::ffff:198.51.100.7") == "198.51.100.7"
    assert client_network("testclient") == "testclient"
    t = throttle(clock)
    for n in range(3):  # three addresses of one /64 are one client
        fail(t, "ann@example.com", f"2001:db8:1:2::{n + 1}")
    assert refused(t, "ann@example.com", "2001:db8:1:2::99") == FIRST_DELAY_SECONDS
    assert refused(t, "ann@example.com", "2001:db8:1:3::1") is None


def test_the_in_process_store_forgets_expired_keys(clock):
    store = MemoryCounters(clock)
    for n in range(MemoryCounters.SWEEP_EVERY - 1):
        store.hit(f"old-{n}", 10)
    clock.advance(11)
    store.hit("new", 10)  # the sweep runs at this hit
    assert len(store._data) == 1


def test_redis_keeps_the_same_counters(redis_url):
    client = redis.Redis.from_url(f"{redis_url}/2")
    store = RedisCounters(client)
    fixed, sliding, mark = (f"test-throttle:{kind}:{uuid.uuid4().hex}" for kind in "fsm")
    assert store.count(fixed) == (0, 0)
    assert store.hit(fixed, 900) == 1
    client.expire(fixed, 100)  # as if 800 s went by
    assert store.hit(fixed, 900) == 2
    assert store.count(fixed)[0] == 2
    assert 1 <= store.count(fixed)[1] <= 100  # a fixed window does not move
    store.hit(sliding, 900, sliding=True)
    client.expire(sliding, 100)
    assert store.hit(sliding, 900, sliding=True) == 2
    assert store.count(sliding)[1] > 800  # a sliding one starts again at each failure
    assert not store.marked(mark)
    store.mark(mark, 60)
    assert store.marked(mark)
    store.clear(fixed)
    assert store.count(fixed) == (0, 0)
    client.delete(sliding, mark)
