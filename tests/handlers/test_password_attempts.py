"""Password checks under attack, against real servers on real sockets: each guess is counted
before it is verified (parallel guesses get no more than the limit), a campaign from many
addresses slows a login or a link down but locks nobody out, and a throttle whose Redis is
gone keeps working (per process) instead of answering 500.

Client addresses are told apart by the source address of the test's own sockets: any of
127.0.0.0/8 reaches the server on 127.0.0.1 from that address.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis

from app.db import make_session_factory
from app.settings import Settings
from tests.handlers.conftest import serve_live
from tests.helpers import (
    Account,
    committed_account,
    free_port,
    remove_account,
    run_jobs,
    start_server,
    upload,
    wait_for_port,
    wait_until,
)

pytestmark = pytest.mark.slow  # every test here starts a live server (or `serve`)

PASSWORD = "correct horse"
LIMIT = 5  # login_max_failures in the tests' settings


def _address() -> str:
    """A loopback address no other test uses (counters in Redis outlive a test)."""
    n = uuid.uuid4().int
    return f"127.{n % 250 + 1}.{n // 250 % 250 + 1}.{n // 62500 % 250 + 1}"


@contextlib.contextmanager
def _from(base: str, address: str | None = None) -> Iterator[httpx.Client]:
    """An HTTP client whose connections come from `address` (a fresh one by default)."""
    transport = httpx.HTTPTransport(local_address=address or _address())
    limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
    with httpx.Client(base_url=base, transport=transport, timeout=60, limits=limits) as client:
        yield client


def _all_at_once(count: int, send: Callable[[], httpx.Response]) -> list[httpx.Response]:
    """`count` requests released together from as many threads; their responses."""
    barrier = threading.Barrier(count)

    def one() -> httpx.Response:
        barrier.wait()
        return send()

    with ThreadPoolExecutor(count) as pool:
        return [f.result() for f in [pool.submit(one) for _ in range(count)]]


@dataclasses.dataclass
class Target:
    """A server, an account on it and one of its password links."""

    base: str
    account: Account
    link: str  # /s/{token}


@contextlib.contextmanager
def _target(base: str, engine, settings: Settings) -> Iterator[Target]:
    sessions = make_session_factory(engine)
    account = committed_account(sessions, settings)
    try:
        with httpx.Client(base_url=base, timeout=60) as http:
            made = upload(http, account, b"shared bytes " * 100, "report.txt")
            assert made.status_code == 202, made.text
            share = http.post(
                f"/api/v1/files/{made.json()['id']}/shares",
                headers=account.headers,
                json={"password": PASSWORD},
            )
            assert share.status_code == 201, share.text
        yield Target(base, account, "/s/" + share.json()["url"].rsplit("/s/", 1)[1])
    finally:
        remove_account(sessions, account)


def _login(client: httpx.Client, email: str, password: str) -> httpx.Response:
    return client.post("/api/v1/users/login", json={"email": email, "password": password})


# --- counted before they are checked ----------------------------------------------------------


@pytest.fixture(scope="module", params=["embedded", "serve"])
def serving(request, engine, local_settings, tmp_path_factory) -> Iterator[tuple[str, Settings]]:
    """`embedded`: the default without Redis (one process, counters in it); `serve`: two
    gunicorn workers sharing their counters in Redis. Once per module: each test guesses
    from addresses of its own at an account and a link of its own (`server`)."""
    if request.param == "embedded":
        settings = dataclasses.replace(local_settings, redis_url="")
        with serve_live(engine, settings) as live:
            yield live.url, settings
        return
    log = (tmp_path_factory.mktemp("serve") / "server.log").open("wb")
    process, base = start_server(local_settings, workers=2, log=log)
    try:
        yield base, local_settings
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.fixture
def server(serving, engine) -> Iterator[Target]:
    base, settings = serving
    with _target(base, engine, settings) as target:
        yield target


@pytest.mark.parametrize("route", ["", "/content", "login"])
def test_forty_parallel_wrong_guesses_from_one_address_verify_only_the_limit(server, route):
    with _from(server.base) as guesser:
        if route == "login":
            responses = _all_at_once(
                40, lambda: _login(guesser, server.account.email, "a wrong guess")
            )
        else:
            path = server.link + route
            responses = _all_at_once(
                40, lambda: guesser.get(path, headers={"X-Share-Password": "a wrong guess"})
            )
        statuses = sorted(r.status_code for r in responses)
        # Each 401 is a password verified (and found wrong); the rest were refused unchecked.
        assert statuses == [401] * LIMIT + [429] * (40 - LIMIT), statuses
        refused = next(r for r in responses if r.status_code == 429)
        assert "from your address" in refused.json()["detail"]
        assert int(refused.headers["Retry-After"]) > 0


# --- no lock-out ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def campaign_live(engine, local_settings) -> Iterator[tuple[object, Settings]]:
    """A server whose links and accounts reach their cap after 10 wrong guesses, checked
    then one every 0.5 s. Once per module: the caps are per link and per account, and each
    test has its own (`campaign_server`)."""
    settings = dataclasses.replace(
        local_settings,
        login_max_failures_per_account=10,
        login_campaign_interval_seconds=0.5,
    )
    with serve_live(engine, settings) as live:
        yield live, settings


@pytest.fixture
def campaign_server(campaign_live, engine) -> Iterator[tuple[Target, Settings]]:
    live, settings = campaign_live
    with _target(live.url, engine, settings) as target:
        run_jobs(live.app)  # the file is ready: the link downloads
        yield target, settings


def _campaign(base: str, guess: Callable[[httpx.Client], httpx.Response]) -> list[str]:
    """Four addresses guess five times each, all at once (twice the cap); the addresses."""
    addresses = [_address() for _ in range(4)]

    def five(address: str) -> list[int]:
        with _from(base, address) as bot:
            return [guess(bot).status_code for _ in range(LIMIT)]

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(five, addresses))
    assert outcomes == [[401] * LIMIT] * 4, outcomes  # every guess was checked, none refused
    return addresses


def test_a_campaign_from_many_addresses_does_not_lock_a_link_out(campaign_server):
    target, _settings = campaign_server

    def guess(bot: httpx.Client) -> httpx.Response:
        return bot.get(target.link, headers={"X-Share-Password": "a wrong guess"})

    addresses = _campaign(target.base, guess)
    # The rightful visitor, from an address never seen, gets in within a few seconds.
    with _from(target.base) as visitor:
        started = time.monotonic()
        for route in ("", "/content"):
            opened = visitor.get(target.link + route, headers={"X-Share-Password": PASSWORD})
            assert opened.status_code == 200, opened.text
        assert time.monotonic() - started < 10
    # A guesser is refused, and the refusal says why: its own address's guesses.
    with _from(target.base, addresses[0]) as bot:
        refused = guess(bot)
        assert refused.status_code == 429
        assert refused.json()["detail"].startswith(
            "Too many wrong passwords for this link from your address"
        )


def test_a_campaign_from_many_addresses_does_not_lock_an_account_out(campaign_server):
    target, _settings = campaign_server
    email = target.account.email
    addresses = _campaign(target.base, lambda bot: _login(bot, email, "a wrong guess"))
    with _from(target.base) as owner:
        started = time.monotonic()
        assert _login(owner, email, target.account.password).status_code == 200
        assert time.monotonic() - started < 10
    with _from(target.base, addresses[1]) as bot:
        refused = _login(bot, email, "a wrong guess")
        assert refused.status_code == 429
        assert refused.json()["detail"].startswith(
            "Too many failed logins for this account from your address"
        )


def test_beyond_the_cap_a_link_is_checked_once_per_interval_whatever_the_addresses(
    campaign_server,
):
    target, settings = campaign_server

    def guess(bot: httpx.Client) -> httpx.Response:
        return bot.get(target.link, headers={"X-Share-Password": "a wrong guess"})

    def turn_waits() -> float:
        """How many guesses this server has made wait for their turn, from /metrics."""
        with _from(target.base) as ops:
            metrics = ops.get("/metrics").text
        waits = re.search(r"^instashare_password_turn_wait_seconds_count (\S+)$", metrics, re.M)
        assert waits is not None, metrics
        return float(waits.group(1))

    _campaign(target.base, guess)  # the cap is reached
    waited_before = turn_waits()  # the server is the module's: other tests' guesses waited too
    # 24 more guesses at once, each from an address of its own: none is refused, and they
    # are checked one at a time, an interval apart (so they take at least 23 of them).
    count = 24
    with contextlib.ExitStack() as stack:
        bots = [stack.enter_context(_from(target.base)) for _ in range(count)]
        owner = stack.enter_context(_from(target.base))
        barrier = threading.Barrier(count + 1)

        def one(bot: httpx.Client) -> int:
            barrier.wait()
            return guess(bot).status_code

        def meanwhile() -> float:
            """How long another request takes while the guesses wait for their turns."""
            barrier.wait()
            time.sleep(1.0)
            started = time.monotonic()
            answered = owner.get("/api/v1/shares", headers=target.account.headers)
            assert answered.status_code == 200
            return time.monotonic() - started

        started = time.monotonic()
        with ThreadPoolExecutor(count + 1) as pool:
            other = pool.submit(meanwhile)
            statuses = list(pool.map(one, bots))
            took = time.monotonic() - started
            other_took = other.result()
    assert statuses == [401] * count
    assert took >= (count - 1) * settings.login_campaign_interval_seconds * 0.95, took
    # Operators see the campaign: the waits are in /metrics.
    assert turn_waits() - waited_before >= count - 1
    # The waiting guesses hold none of the server's 10 handler threads: had they, this
    # request would have queued behind the 14 beyond them, for 7 s at least.
    assert other_took < 4, other_took


# --- Redis away -------------------------------------------------------------------------------


class PrivateRedis:
    """A redis-server of this test's own, to stop and start again on the same port."""

    def __init__(self, directory) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        assert exe, "redis-server is not installed"
        self.process = subprocess.Popen(
            [exe, "--save", "", "--appendonly", "no", "--dir", str(self.directory),
             "--port", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


def test_without_redis_password_checks_go_on_and_count_in_redis_again_once_it_is_back(
    engine, local_settings, tmp_path
):
    store = PrivateRedis(tmp_path)
    store.start()
    settings = dataclasses.replace(local_settings, redis_url=store.url)
    try:
        with serve_live(engine, settings) as live, _target(live.url, engine, settings) as t:
            run_jobs(live.app)
            store.stop()
            link = t.link
            with _from(t.base) as visitor:
                # Nobody gets a 500: the right password opens the link, none asks for it.
                right = {"X-Share-Password": PASSWORD}
                assert visitor.get(link, headers=right).status_code == 200
                assert visitor.get(link + "/content", headers=right).status_code == 200
                assert visitor.get(link).status_code == 401
                assert _login(visitor, t.account.email, t.account.password).status_code == 200
            with _from(t.base) as guesser:
                # Guesses are still limited, by this process's own counters.
                wrong = {"X-Share-Password": "a wrong guess"}
                statuses = [guesser.get(link, headers=wrong).status_code for _ in range(7)]
                assert statuses == [401] * LIMIT + [429, 429], statuses
            store.start()  # back, empty, on the same port
            counted = redis.Redis.from_url(store.url)

            def counted_in_redis() -> bool:
                fresh = _address()
                with _from(t.base, fresh) as guesser:
                    wrong = {"X-Share-Password": "a wrong guess"}
                    assert guesser.get(link, headers=wrong).status_code == 401
                return counted.get(f"login-fail:addr:{fresh}") is not None

            # Within the throttle's retry time (5 s) Redis is asked again.
            wait_until(counted_in_redis, 20, 0.5, what="guesses counted in Redis again")
            counted.close()
    finally:
        store.stop()
