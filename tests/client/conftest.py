"""A live Instashare server for the client to talk to, and the client run as a real process.

The server is the production one (`instashare-server serve`: gunicorn + uvicorn) with a
worker of its own, on a database of their own (`fresh_database()`: the worker's --beat
sweeps the whole database it is given, and nothing else may take or sweep their jobs).
They share a `filesystem://` broker under the session's temporary directory: no other
worker can take their jobs, not even one of another test session running at the same time.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

import pytest

from tests.client.support import Cli, FlakyLink, LiveServer
from tests.helpers import (
    WorkerProcess,
    free_port,
    fresh_database,
    make_settings,
    start_server,
)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory, redis_url) -> Iterator[LiveServer]:
    """`instashare-server serve` on a free loopback port, with a worker for its jobs."""
    tmp = tmp_path_factory.mktemp("cli-server")
    with fresh_database("instashare_client") as database_url:
        # Its worker writes mails to files (`mail_files`): the CLI's password reset sends one.
        settings = make_settings(
            tmp, database_url, broker_url="filesystem://", mail_outbox=tmp / "mail"
        )
        log_path = tmp / "server.log"
        worker = WorkerProcess(settings, tmp / "worker.log", concurrency=1).start()
        try:
            with open(log_path, "ab") as log:
                server, url = start_server(settings, log=log)
            try:
                yield LiveServer(url, log_path, database_url, tmp / "mail")
            finally:
                # The session is over: no graceful shutdown to wait for (tests/test_shutdown.py
                # is about that), and the database goes next.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=30)
        finally:
            worker.stop(sig=signal.SIGKILL)


@pytest.fixture
def cli(live_server, tmp_path) -> Cli:
    """The client, not logged in, pointed at the live server."""
    return Cli(live_server.url, tmp_path)


@pytest.fixture
def stranger(live_server, tmp_path) -> Cli:
    """Someone with no account, in a home of their own."""
    return Cli(live_server.url, tmp_path / "stranger")


@pytest.fixture
def offline_cli(tmp_path) -> Cli:
    """The client pointed at a port nobody listens on: for what never reaches a server."""
    return Cli(f"http://127.0.0.1:{free_port()}", tmp_path)


@pytest.fixture
def user(cli) -> Cli:
    """The client, logged in to a fresh account."""
    return cli.login()


@pytest.fixture
def flaky_link(live_server) -> Iterator[FlakyLink]:
    link = FlakyLink(int(live_server.url.rsplit(":", 1)[1]))
    yield link
    link.close()
