"""Login throttling: guessing slows down, and nobody can lock the owner out from elsewhere.

The rules run on the in-process store with a clock the test moves; the Redis store is
checked to keep the same counters (tests/handlers/test_users.py drives it over HTTP).
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from app.errors import TooManyRequests
from app.services.throttle import (
    FIRST_DELAY_SECONDS,
    Attempt,
    LoginThrottle,
    MemoryCounters,
    RedisCounters,
    ResilientCounters,
    Subject,
    client_network,
)
from tests.helpers import free_port

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


def throttle(clock: Clock, **limits) -> LoginThrottle:
    values = {"per_account_address": 3, "per_address": 50, "per_account": 100, **limits}
    return LoginThrottle(MemoryCounters(clock), window=WINDOW, **values)


def attempt(throttle: LoginThrottle, account: str, address: str, *, may_wait=False) -> Attempt:
    return throttle.begin(account, address, subject=Subject.ACCOUNT, may_wait=may_wait)


def refused(throttle: LoginThrottle, account: str, address: str) -> int | None:
    """The Retry-After of a refusal, or None when the login may go ahead (then abandoned)."""
    tried = attempt(throttle, account, address)
    try:
        tried.admit()
    except TooManyRequests as exc:
        return int(exc.headers["Retry-After"])
    tried.abandon()
    return None


def fail(throttle: LoginThrottle, account: str, address: str, times: int = 1) -> None:
    for _ in range(times):
        tried = attempt(throttle, account, address)
        tried.admit()
        tried.failed()


def succeed(throttle: LoginThrottle, account: str, address: str) -> None:
    tried = attempt(throttle, account, address)
    tried.admit()
    tried.succeeded()


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
    fail(t, "ann@example.com", STRANGER)  # the fourth failure, within the count's life
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
    succeed(t, "ann@example.com", OWNER)
    assert refused(t, "ann@example.com", STRANGER) is not None


def test_a_success_from_the_address_ends_its_wait(clock):
    t = throttle(clock)
    fail(t, "ann@example.com", OWNER, 2)
    succeed(t, "ann@example.com", OWNER)
    fail(t, "ann@example.com", OWNER, 2)
    assert refused(t, "ann@example.com", OWNER) is None


def test_one_address_is_limited_across_accounts(clock):
    t = throttle(clock, per_address=5)
    for n in range(5):
        fail(t, f"user{n}@example.com", STRANGER)
    assert refused(t, "someone-else@example.com", STRANGER) == WINDOW
    assert refused(t, "someone-else@example.com", OWNER) is None


def test_a_campaign_from_many_addresses_slows_the_account_down_for_strangers_only(clock):
    t = throttle(clock, per_account=10, interval=2.0)
    succeed(t, "ann@example.com", OWNER)  # the owner logged in from here before
    for n in range(10):
        fail(t, "ann@example.com", f"192.0.2.{n}")
    # Beyond the cap nobody is refused: each check waits for its turn, 2 s after the last.
    waits = []
    for n in range(4):
        tried = attempt(t, "ann@example.com", f"192.0.2.{100 + n}", may_wait=True)
        assert tried.refusal is None
        waits.append(tried.wait)
        tried.failed()
    assert waits == [0.0, 2.0, 4.0, 6.0]
    # An address the account let in before does not queue; other accounts go on.
    assert attempt(t, "ann@example.com", OWNER, may_wait=True).wait == 0
    assert attempt(t, "bob@example.com", "192.0.2.200", may_wait=True).wait == 0
    # A caller that cannot wait is told when the turn would come, and not blamed for it.
    refusal = attempt(t, "ann@example.com", "192.0.2.201").refusal
    assert refusal is not None and refusal.headers["Retry-After"] == "8"
    assert "from your address" not in refusal.detail
    assert "campaign" in refusal.detail and "try again in 8 s" in refusal.detail
    clock.advance(8)
    assert attempt(t, "ann@example.com", "192.0.2.201").refusal is None  # its turn now


def test_the_queue_for_a_turn_is_bounded(clock):
    t = throttle(clock, per_account=0, interval=2.0, max_queue_seconds=10.0)
    waits = [attempt(t, "ann@example.com", f"192.0.2.{n}", may_wait=True) for n in range(7)]
    assert [w.wait for w in waits[:6]] == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    refusal = waits[6].refusal  # its turn would come in 12 s: too long to hold the request
    assert refusal is not None and refusal.headers["Retry-After"] == "12"


@pytest.mark.parametrize("kind", ["in-process", "redis"])
def test_parallel_attempts_are_counted_before_they_are_checked(kind, redis_url):
    """Forty guesses at once from one address: only the limit's worth verify."""
    store: MemoryCounters | RedisCounters = (
        MemoryCounters()
        if kind == "in-process"
        else RedisCounters(redis.Redis.from_url(f"{redis_url}/2"))
    )
    t = LoginThrottle(store, per_account_address=5, per_address=50, per_account=100, window=60)
    account = f"{uuid.uuid4().hex}@example.com"
    verified = []

    def guess() -> None:
        tried = t.begin(account, STRANGER, subject=Subject.ACCOUNT, may_wait=False)
        if tried.refusal is None:
            time.sleep(0.05)  # an argon2 verification's time
            verified.append(1)
            tried.failed()

    with ThreadPoolExecutor(40) as pool:
        for future in [pool.submit(guess) for _ in range(40)]:
            future.result()
    assert len(verified) == 5


def test_an_address_let_in_before_may_send_many_checks_at_once(clock):
    """A download manager's parallel requests, each with the link's password."""
    t = throttle(clock, per_address=50)
    succeed(t, "share:1", OWNER)
    in_flight = [attempt(t, "share:1", OWNER) for _ in range(20)]
    assert all(a.refusal is None for a in in_flight)
    for a in in_flight:
        a.succeeded()
    # A stranger's parallel requests are held to the limit (3 here) until one succeeds.
    strangers = [attempt(t, "share:1", STRANGER) for _ in range(5)]
    assert [a.refusal is None for a in strangers] == [True] * 3 + [False] * 2


def test_a_right_password_or_no_check_gives_the_counts_back(clock):
    t = throttle(clock, per_address=3)
    for _ in range(5):  # started and never checked (the request ended first)
        attempt(t, "ann@example.com", STRANGER).abandon()
    for _ in range(5):
        succeed(t, "ann@example.com", STRANGER)
    fail(t, "ann@example.com", STRANGER, 2)  # two wrong ones still go
    assert refused(t, "ann@example.com", STRANGER) is None


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
    fixed, pair, turns, mark = (f"test-throttle:{kind}:{uuid.uuid4().hex}" for kind in "fptm")
    assert store.take(fixed, 2, 900) == 0
    client.expire(fixed, 100)  # as if 800 s went by
    assert store.take(fixed, 2, 900) == 0
    assert 1 <= store.take(fixed, 2, 900) <= 100  # full: the window's end, which does not move
    store.give_back(fixed)
    assert store.take(fixed, 2, 900) == 0
    assert store.hit(fixed, 900) == 3

    assert store.step(pair, 2, 1800, 60, 900) == (0.0, 0.0)
    assert store.step(pair, 2, 1800, 60, 900)[0] == 0.0  # the second sets the first wait
    wait, until = store.step(pair, 2, 1800, 60, 900)
    assert 59 <= wait <= 60 and until > 0
    store.unstep(pair, 0.0)
    assert store.step(pair, 2, 1800, 60, 900)[0] == 0.0

    assert store.reserve(turns, 2.0, 30.0) == 0.0
    assert 1.9 <= store.reserve(turns, 2.0, 30.0) <= 2.0
    assert -4.0 <= store.reserve(turns, 2.0, 1.0) <= -3.9  # too long a wait: no turn taken

    assert not store.marked(mark)
    store.mark(mark, 60)
    assert store.marked(mark)
    store.clear(fixed)
    assert store.take(fixed, 1, 900) == 0
    client.delete(fixed, pair, turns, mark)


def test_without_redis_each_process_counts_and_nobody_gets_an_error(clock):
    dead = redis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    store = ResilientCounters(RedisCounters(dead), MemoryCounters(clock), clock=clock)
    t = LoginThrottle(store, per_account_address=3, per_address=50, per_account=100, window=WINDOW)
    fail(t, "ann@example.com", STRANGER, 3)  # counted in this process
    assert refused(t, "ann@example.com", STRANGER) == FIRST_DELAY_SECONDS
    succeed(t, "ann@example.com", OWNER)
