"""Fixtures for the handler tests that need a real server on real sockets."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import uuid
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from sqlalchemy import delete

from app.db import make_session_factory
from app.http import protocol
from app.models import User
from app.runtime import build_runtime
from app.settings import Settings
from app.web import create_app
from tests.helpers import Account, InlineJobs, committed_account, free_port, runtime, wait_until

# --- a real server, committing for real -------------------------------------------------


class BodyCounter:
    """ASGI wrapper: how many request-body bytes the server has handed to the app so far."""

    def __init__(self, app):
        self.app = app
        self.delivered = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counted():
            message = await receive()
            self.delivered += len(message.get("body", b""))
            return message

        await self.app(scope, counted, send)


@dataclasses.dataclass
class LiveServer:
    url: str
    app: object  # the Connexion app it serves: its jobs wait in InlineJobs
    counter: BodyCounter


@contextlib.contextmanager
def serve_live(engine, settings: Settings) -> Iterator[LiveServer]:
    """uvicorn, in a thread, serving an app for `settings` that commits for real.

    Its sessions are the run's engine's (not a test's transaction), so the server's
    requests and the test's own sessions race on separate connections; its compression
    jobs wait for `run_jobs`.
    """
    rt = build_runtime(settings, sessions=make_session_factory(engine), jobs=InlineJobs())
    counter = BodyCounter(create_app(settings, runtime=rt))
    port = free_port()
    config = uvicorn.Config(
        counter, host="127.0.0.1", port=port, log_level="warning", http=protocol.HTTP
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="tus-live-server", daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), 30, what="uvicorn starting")
        assert server.started, "the live server did not start"
        yield LiveServer(f"http://127.0.0.1:{port}", counter.app, counter)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def live_server(engine, settings) -> Iterator[LiveServer]:
    """`serve_live` for this backend's settings, once per module."""
    with serve_live(engine, settings) as server:
        yield server


@dataclasses.dataclass
class Live:
    """One test's view of the live server: an HTTP client, the app's runtime, its accounts."""

    url: str
    http: httpx.Client
    app: object
    counter: BodyCounter
    settings: Settings
    user_ids: list[uuid.UUID] = dataclasses.field(default_factory=list)

    @property
    def rt(self):
        return runtime(self.app)

    @property
    def storage(self):
        return self.rt.storage

    def account(self) -> Account:
        """A new committed account with a token (removed, with all it owns, after the test)."""
        account = committed_account(self.rt.sessions, self.settings)
        self.user_ids.append(uuid.UUID(account.id))
        return account

    def remove_accounts(self) -> None:
        with self.rt.sessions() as session:
            session.execute(delete(User).where(User.id.in_(self.user_ids)))  # cascades
            session.commit()
        for user_id in self.user_ids:
            for key in list(self.storage.list(f"{user_id}/")):
                self.storage.delete(key)


@pytest.fixture
def live(live_server, settings) -> Iterator[Live]:
    runtime(live_server.app).jobs.waiting.clear()
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        view = Live(live_server.url, http, live_server.app, live_server.counter, settings)
        try:
            yield view
        finally:
            view.remove_accounts()


@pytest.fixture
def carol(live) -> Account:
    return live.account()
