"""Fixtures for the browser tests: Debian's Chromium driven by Playwright, against a real
server (uvicorn, committing for real, publishing to a real broker) and a real worker.

The server runs in this process, so that a test can count the request-body bytes it has
received (`BodyCounter`); the worker is an `instashare-server worker` process, so files
go from pending to ready as they do in production. Screenshots go to
`.artifacts/screenshots/` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from playwright.sync_api import sync_playwright

from app.runtime import build_runtime
from app.settings import Settings
from app.web import create_app
from tests.handlers.conftest import BodyCounter
from tests.helpers import (
    ROOT,
    Account,
    WorkerProcess,
    free_port,
    fresh_database,
    make_settings,
    redis_db,
    wait_until,
)
from tests.mailbox import Mailbox

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = ROOT / ".artifacts" / "screenshots"
AXE = ROOT / "tests" / "browser" / "vendor" / "axe-core" / "axe.min.js"
# A broker database of their own on the run's private redis-server, one per xdist process:
# a worker must never take another site's jobs.
BROKER_DB = 12 + int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}


class SlowLink:
    """ASGI wrapper: while `rate` (bytes per second) is set, request bodies arrive no faster
    (a slow uplink, so that a test can interrupt an upload part of the way through)."""

    def __init__(self, app):
        self.app = app
        self.rate = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def slowed():
            message = await receive()
            if self.rate and message.get("body"):
                await asyncio.sleep(len(message["body"]) / self.rate)
            return message

        await self.app(scope, slowed, send)


@dataclasses.dataclass
class Site:
    url: str
    app: object
    counter: BodyCounter
    link: SlowLink
    settings: Settings
    worker: WorkerProcess
    mailbox: Mailbox  # the SMTP server the worker sends the site's mail to


@pytest.fixture(scope="session")
def site(redis_url, tmp_path_factory) -> Iterator[Site]:
    """The app on a loopback port, its own database and broker, a worker beside it, and
    an SMTP server (aiosmtpd, in this process) that the worker's mails go to."""
    tmp = tmp_path_factory.mktemp("browser")
    mailbox = Mailbox().start()
    with fresh_database("instashare_browser") as url:
        settings = make_settings(
            tmp,
            url,
            "local",
            broker_url=redis_db(BROKER_DB),
            smtp_host="127.0.0.1",
            smtp_port=mailbox.port,
            smtp_security="none",
            mail_from="Instashare <noreply@example.com>",
        )
        worker = WorkerProcess(settings, tmp / "worker.log").start()
        counter = BodyCounter(create_app(settings, runtime=build_runtime(settings)))
        link = SlowLink(counter)
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(link, host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, name="browser-server", daemon=True)
        thread.start()
        try:
            wait_until(lambda: server.started or not thread.is_alive(), 30, what="uvicorn")
            assert server.started, "the server did not start"
            yield Site(
                f"http://127.0.0.1:{port}", counter.app, counter, link, settings, worker, mailbox
            )
        finally:
            server.should_exit = True
            thread.join(timeout=30)
            worker.stop(signal.SIGKILL)
            mailbox.stop()


# Per module, not per run: while Playwright's sync API is open it keeps an event loop
# running on the main thread, and a later test in the same xdist process that calls
# `asyncio.run` would fail ("cannot be called from a running event loop").
@pytest.fixture(scope="module")
def browser(site) -> Iterator:
    """Debian's Chromium (Playwright cannot download its own build here)."""
    if CHROMIUM is None:
        pytest.fail("Chromium is not installed (Debian: apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def context(browser, site) -> Iterator:
    """A fresh browser profile (no storage, no session) at desktop size."""
    ctx = browser.new_context(base_url=site.url, viewport=DESKTOP, accept_downloads=True)
    ctx.set_default_timeout(20_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context) -> Iterator:
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    assert not errors, f"the page threw: {errors}"


@pytest.fixture
def account(site) -> Account:
    """A new account registered over the API."""
    with httpx.Client(base_url=site.url, timeout=30) as client:
        return Account.register(client)


def sign_in(page, account: Account) -> None:
    """Log in through the app's form; returns once the file list is there."""
    page.goto("/")
    page.get_by_label("E-mail", exact=True).fill(account.email)
    page.get_by_label("Password", exact=True).fill(account.password)
    page.get_by_role("button", name="Log in", exact=True).click()
    page.locator("#app-view[data-loaded]").wait_for()


def screenshot(page, name: str) -> None:
    """Save the page at phone and desktop width (for a person to look at)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    before = page.viewport_size
    for label, size in (("390", PHONE), ("1440", DESKTOP)):
        page.set_viewport_size(size)
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(before)


def axe_violations(page) -> list[dict]:
    """axe-core's serious and critical violations on the page as it is."""
    page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate("async () => JSON.stringify(await axe.run(document))")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["html"] for n in v["nodes"]][:3]}
        for v in json.loads(result)["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def write_file(path: Path, size: int, seed: int = 0) -> Path:
    """A file of `size` pseudo-random bytes (compressible poorly, like real media)."""
    block = bytes((seed + i * 7919) % 251 for i in range(65536))
    with path.open("wb") as f:
        left = size
        while left:
            f.write(block[: min(left, len(block))])
            left -= min(left, len(block))
    return path


def drop_files(page, paths: list[Path], target: str = "#dropzone") -> None:
    """Drop files from disk on `target`, as a person dragging them from a file manager."""
    page.evaluate(
        "() => { const i = document.createElement('input'); i.type = 'file'; i.multiple = true;"
        " i.id = '__drag_source'; i.hidden = true; document.body.append(i); }"
    )
    page.set_input_files("#__drag_source", [str(p) for p in paths])
    page.evaluate(
        """(target) => {
            const source = document.getElementById('__drag_source');
            const data = new DataTransfer();
            for (const file of source.files) data.items.add(file);
            source.remove();
            const zone = document.querySelector(target);
            for (const type of ['dragenter', 'dragover', 'drop']) {
                const init = {bubbles: true, cancelable: true, dataTransfer: data};
                zone.dispatchEvent(new DragEvent(type, init));
            }
        }""",
        target,
    )


def requests_to(page, ending: str, method: str | None = None) -> list[str]:
    """The URLs of the requests the page makes from now on whose URL ends with `ending`
    (and whose method is `method`, when given), as they are made."""
    made: list[str] = []

    def seen(request) -> None:
        if request.url.endswith(ending) and method in (None, request.method):
            made.append(request.url)

    page.on("request", seen)
    return made


@contextlib.contextmanager
def no_dialogs(page) -> Iterator[list[str]]:
    """Collect any alert/confirm the page opens (an injected script would show here)."""
    opened: list[str] = []

    def on_dialog(dialog) -> None:
        opened.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    yield opened
    page.remove_listener("dialog", on_dialog)
