"""The CLI against a GCS server: uploads go straight to the bucket (a kill mid-way resumes
from what the session holds), downloads follow the signed redirect; tus is the fallback."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import zipfile
from collections.abc import Iterator

import pytest

from app.services.sizes import iec
from tests.client.support import Cli, LiveServer
from tests.helpers import (
    WorkerProcess,
    fresh_database,
    make_settings,
    proxied_env,
    start_server,
    wait_until,
)
from tests.signing import service_account_key

CHUNK = 256 * 1024  # the smallest chunk a session takes
SIZE = 12 * CHUNK + 4321  # 13 PUTs
SESSION_PUTS = r"upload_id="


@pytest.fixture(scope="module")
def live_server(tmp_path_factory, redis_url, _fault_proxy) -> Iterator[LiveServer]:
    """`instashare-server serve` on the GCS emulator (its sessions through the fault proxy,
    so that a test can stall them), signing downloads, with a worker of its own."""
    tmp = tmp_path_factory.mktemp("cli-gcs-server")
    key, _ = service_account_key(tmp)
    with fresh_database("instashare_client_gcs") as database_url:
        settings = make_settings(
            tmp, database_url, "gcs", broker_url="filesystem://", gcs_signing_key=str(key)
        )
        log_path = tmp / "server.log"
        worker = WorkerProcess(settings, tmp / "worker.log", concurrency=1).start()
        try:
            with open(log_path, "ab") as log:
                server, url = start_server(settings, log=log, extra_env=proxied_env(_fault_proxy))
            try:
                yield LiveServer(url, log_path, database_url, tmp / "mail")
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=30)
        finally:
            worker.stop(sig=signal.SIGKILL)


def _session_ranges(proxy) -> list[tuple[int, int]]:
    """(first, last) byte of every chunk PUT to a session, in order."""
    found = []
    for request in proxy.requests("PUT", SESSION_PUTS):
        spec = request.headers.get("content-range", "").split(" ", 1)[-1].split("/")[0]
        if spec != "*":
            first, last = spec.split("-")
            found.append((int(first), int(last)))
    return found


def test_upload_goes_straight_to_storage_and_get_follows_the_signed_url(
    live_server, fault_proxy, tmp_path
):
    cli = Cli(live_server.url, tmp_path).login()
    data = os.urandom(SIZE)
    (cli.cwd / "big.bin").write_bytes(data)
    done = cli.ok("upload", "big.bin", "--wait", INSTASHARE_CHUNK_SIZE=str(CHUNK))
    assert f"uploaded big.bin ({iec(SIZE)})" in done.stdout
    assert _session_ranges(fault_proxy)[-1][1] == SIZE - 1
    log = live_server.access_log()
    assert not [e for e in log if e["method"] == "PATCH"]
    assert sum(e.get("bytes_in", 0) for e in log) < 64 * 1024  # no file byte came through
    cli.ok("get", "big.bin", "-o", "back.zip")
    [redirect] = [e for e in live_server.access_log() if e["path"].endswith("/content")]
    assert redirect["status"] == 302
    with zipfile.ZipFile(cli.cwd / "back.zip") as archive:
        assert archive.read("big.bin") == data


def test_a_killed_upload_resumes_from_what_the_session_holds(live_server, fault_proxy, tmp_path):
    cli = Cli(live_server.url, tmp_path).login()
    data = os.urandom(SIZE)
    (cli.cwd / "big.bin").write_bytes(data)
    # The fifth chunk's PUT (after the session's first four) never gets through.
    fault_proxy.stall("PUT", SESSION_PUTS, seconds=60, nth=5)
    proc = cli.popen("upload", "big.bin", INSTASHARE_CHUNK_SIZE=str(CHUNK))
    try:
        wait_until(lambda: len(fault_proxy.requests("PUT", SESSION_PUTS)) >= 5, 60, what="stall")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    fault_proxy.clear()
    [saved] = json.loads((cli.config_dir / "instashare" / "uploads.json").read_text()).values()
    assert saved["url"].startswith("direct ")
    resumed = cli.ok("upload", "big.bin", "--wait", INSTASHARE_CHUNK_SIZE=str(CHUNK))
    # The stalled PUT was read whole by the proxy, which forwards it once released: the
    # session holds four chunks, or five. The second run asks, then sends only the rest.
    sent = _session_ranges(fault_proxy)
    first = sent[0][0]
    assert first in (4 * CHUNK, 5 * CHUNK)
    assert f"resuming big.bin at {iec(first)} of {iec(SIZE)}" in resumed.stderr
    assert sum(last - begin + 1 for begin, last in sent) == SIZE - first
    cli.ok("get", "big.bin", "--original", "-o", "back.bin")
    assert (cli.cwd / "back.bin").read_bytes() == data
