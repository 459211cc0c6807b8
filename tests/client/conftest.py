"""A live Instashare server for the client to talk to, and the client run as a real process.

The server is the production one (`instashare-server serve`: gunicorn + uvicorn) with a
worker of its own. They share a `filesystem://` broker under the session's temporary
directory: no other worker can take their jobs, not even one of another test session
running at the same time (a Redis database would be shared with it).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.cli.support import Cli, FlakyLink, LiveServer
from tests.conftest import (
    WorkerProcess,
    make_settings,
    start_server,
)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory, database_url, redis_client) -> Iterator[LiveServer]:
    """`instashare-server serve` on a free loopback port, with a worker for its jobs."""
    tmp = tmp_path_factory.mktemp("cli-server")
    settings = make_settings(tmp, database_url, broker_url="filesystem://")
    log_path = tmp / "server.log"
    with open(log_path, "ab") as log:
        server, url = start_server(settings, log=log)
    worker = WorkerProcess(settings, tmp / "worker.log", concurrency=1).start()
    try:
        deadline = time.monotonic() + 30
        while httpx.get(f"{url}/api/v1/health").status_code != 200:
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        yield LiveServer(url, log_path)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
        worker.stop()


@pytest.fixture
def cli(live_server, tmp_path) -> Cli:
    """The client, not logged in, pointed at the live server."""
    return Cli(live_server.url, tmp_path)


@pytest.fixture
def user(cli) -> Cli:
    """The client, logged in to a fresh account."""
    return cli.login()


@pytest.fixture
def flaky_link(live_server) -> Iterator[FlakyLink]:
    link = FlakyLink(int(live_server.url.rsplit(":", 1)[1]))
    yield link
    link.close()
