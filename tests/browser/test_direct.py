"""The web app on a GCS server: the browser sends a file's bytes straight to the storage's
session (none through the API) and downloads the ZIP through a signed redirect."""

from __future__ import annotations

import signal
import threading
import zipfile
from collections.abc import Iterator

import pytest
import uvicorn
from playwright.sync_api import expect

from app.runtime import build_runtime
from app.web import create_app
from tests.browser.conftest import (
    BROKER_DB,
    Site,
    SlowLink,
    requests_to,
    sign_in,
    write_file,
)
from tests.handlers.conftest import BodyCounter
from tests.helpers import (
    WorkerProcess,
    free_port,
    fresh_database,
    make_settings,
    proxied_gcs,
    redis_db,
    wait_until,
)
from tests.mailbox import Mailbox
from tests.signing import service_account_key

MIB = 1024 * 1024
READY_TIMEOUT = 90_000


@pytest.fixture(scope="module")
def site(redis_url, tmp_path_factory, _fault_proxy) -> Iterator[Site]:
    """The app on GCS (the emulator; the API's requests, and so its sessions, through the
    fault proxy, which answers CORS for this page's origin as GCS does for a session's),
    signing downloads, with a worker beside it."""
    tmp = tmp_path_factory.mktemp("browser-gcs")
    key, _ = service_account_key(tmp)
    port = free_port()
    _fault_proxy.cors = f"http://127.0.0.1:{port}"
    mailbox = Mailbox().start()  # a Site has one; this test sends no mail
    with fresh_database("instashare_browser_gcs") as url:
        settings = make_settings(
            tmp, url, "gcs", broker_url=redis_db(BROKER_DB), gcs_signing_key=str(key)
        )
        worker = WorkerProcess(settings, tmp / "worker.log").start()
        rt = build_runtime(settings)
        rt.storage = proxied_gcs(_fault_proxy, signing_key=str(key))
        counter = BodyCounter(create_app(settings, runtime=rt))
        link = SlowLink(counter)
        server = uvicorn.Server(
            uvicorn.Config(link, host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, name="browser-gcs-server", daemon=True)
        thread.start()
        try:
            wait_until(lambda: server.started or not thread.is_alive(), 30, what="uvicorn")
            yield Site(
                f"http://127.0.0.1:{port}", counter.app, counter, link, settings, worker, mailbox
            )
        finally:
            server.should_exit = True
            thread.join(timeout=30)
            worker.stop(signal.SIGKILL)
            mailbox.stop()
            _fault_proxy.cors = None


def test_the_browser_uploads_straight_to_storage_and_downloads_through_a_signed_url(
    page, site, account, tmp_path
):
    path = write_file(tmp_path / "direct.bin", 3 * MIB + 12345, seed=5)
    sign_in(page, account)
    before = site.counter.delivered
    puts = requests_to(page, "", "PUT")
    page.set_input_files("#picker", str(path))
    row = page.locator("#files-body tr", has_text="direct.bin")
    expect(row.locator(".badge")).to_have_text("Ready", timeout=READY_TIMEOUT)
    assert puts and all("upload_id=" in url for url in puts)  # to the session, not the API
    assert site.counter.delivered - before < 64 * 1024  # the API got JSON, not the file

    signed: list[str] = []
    page.on("request", lambda r: signed.append(r.url) if "X-Goog-Signature=" in r.url else None)
    with page.expect_download() as download:
        row.get_by_role("button", name="Download the ZIP of direct.bin").click()
    [location] = signed  # the grant answered 302 to it, and the browser followed
    assert "X-Goog-Signature=" in location
    with zipfile.ZipFile(download.value.path()) as archive:
        assert archive.read("direct.bin") == path.read_bytes()
