"""SIGTERM: in-flight requests finish, and in-flight jobs finish (or go back to the queue)."""

import contextlib
import os
import signal
import socket

import pytest

from app.db import make_session_factory
from tests.helpers import (
    WorkerProcess,
    account_in,
    committed_account,
    committing_app,
    fresh_database,
    make_settings,
    redis_db,
    spooled_files,
    start_server,
    upload,
    wait_for_status,
    wait_until,
)

pytestmark = pytest.mark.slow  # every test here starts a server or a worker, to stop it

# The broker of the worker below; no other test's worker consumes this database.
SHUTDOWN_BROKER_DB = 11


def _accepts_connections(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


def test_sigterm_lets_an_inflight_upload_finish(tmp_path, database_url, engine, redis_url):
    # The run's database (the server commits there); its upload's job goes to a queue under
    # tmp_path that no worker reads.
    settings = make_settings(tmp_path, database_url, broker_url="filesystem://")
    account = committed_account(make_session_factory(engine), settings)
    server, base = start_server(settings)
    port = int(base.rsplit(":", 1)[1])
    try:
        boundary = "x-boundary-x"
        payload = b"y" * 2_000_000
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="slow.bin"'
                "\r\nContent-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + payload
            + f"\r\n--{boundary}--\r\n".encode()
        )
        head = (
            f"POST /api/v1/upload_files HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {account.token}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            conn.sendall(head + body[:1000])
            # The request is in flight once the server spools the start of the file part.
            wait_until(lambda: spooled_files(settings), 30, what="the upload being spooled")
            server.send_signal(signal.SIGTERM)
            # Shutting down: no process listens any more, while this request is still open.
            wait_until(lambda: not _accepts_connections(port), 30, what="the server closing")
            conn.sendall(body[1000:])
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 202"), answer[:300]
        assert server.wait(timeout=40) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


@pytest.mark.parametrize(
    "send",
    [
        # As a container runtime does: SIGTERM to the main process only.
        pytest.param(os.kill, id="main-process"),
        # As systemd (KillMode=control-group) and some supervisors do: to the main process
        # and its pool processes at once. The job must not die with its pool process
        # (WorkerLostError).
        pytest.param(os.killpg, id="process-group"),
    ],
)
def test_sigterm_lets_an_inflight_job_finish(tmp_path, redis_url, send):
    # Celery's warm shutdown waits for the running job. A database of its own: the
    # worker's --beat sweeps the whole database it is given.
    with fresh_database() as url:
        settings = make_settings(tmp_path, url, broker_url=redis_db(SHUTDOWN_BROKER_DB))
        worker = WorkerProcess(settings, tmp_path / "worker.log", concurrency=1).start()
        try:
            with committing_app(settings) as app, app.test_client() as api:
                account = account_in(app)
                big = b"".join(
                    b"%08d some log text that compresses well\n" % i for i in range(3_000_000)
                )
                created = upload(api, account, big, filename="big.log")
                assert created.status_code == 202
                file_id = created.json()["id"]
                wait_for_status(api, account, file_id, {"processing", "ready"})
                send(worker.proc.pid, signal.SIGTERM)
                assert worker.proc.wait(timeout=120) == 0, worker.log()[-2000:]
                body = api.get(f"/api/v1/files/{file_id}", headers=account.headers).json()
                assert body["status"] == "ready", (body, worker.log()[-2000:])
                assert "WorkerLostError" not in worker.log()
        finally:
            worker.stop(signal.SIGKILL)
