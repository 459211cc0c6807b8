"""SIGTERM: in-flight requests finish, and in-flight jobs finish (or go back to the queue)."""

import os
import signal
import socket
import time

from tests.conftest import (
    Account,
    WorkerProcess,
    make_settings,
    new_email,
    start_server,
    upload,
    wait_for_status,
)


def test_sigterm_lets_an_inflight_upload_finish(tmp_path, database_url, redis_client):
    server, base = start_server(make_settings(tmp_path, database_url))
    port = int(base.rsplit(":", 1)[1])
    try:
        import httpx

        with httpx.Client(base_url=base) as http:
            account = Account(http, new_email())
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
            time.sleep(0.5)  # the request is now in flight
            server.send_signal(signal.SIGTERM)
            time.sleep(0.5)
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


def test_sigterm_lets_an_inflight_job_finish(make_account, tmp_path, database_url, redis_client):
    settings = make_settings(tmp_path, database_url, broker_url="redis://127.0.0.1:6379/11")
    from app.web import create_app

    with create_app(settings).test_client() as api:
        account = make_account(api)
        big = b"".join(b"%08d some log text that compresses well\n" % i for i in range(3_000_000))
        created = upload(api, account, big, filename="big.log")
        assert created.status_code == 202
        worker = WorkerProcess(settings, tmp_path / "worker.log", concurrency=1).start()
        try:
            wait_for_status(api, account, created.json()["id"], {"processing", "ready"})
            # As a container runtime does: SIGTERM to the main process only. Celery's warm
            # shutdown waits for the running job.
            os.kill(worker.proc.pid, signal.SIGTERM)
            assert worker.proc.wait(timeout=120) == 0, worker.log()[-2000:]
            body = api.get(f"/api/v1/files/{created.json()['id']}", headers=account.headers).json()
            assert body["status"] == "ready", (body, worker.log()[-2000:])
        finally:
            worker.stop(signal.SIGKILL)
