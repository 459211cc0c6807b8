"""Operators' routes: liveness, readiness, metrics, request ids and JSON logs."""

import dataclasses
import json
import logging
import shutil
import signal
import subprocess
import time

import pytest

from tests.helpers import (
    WorkerProcess,
    account_in,
    assert_problem,
    committing_app,
    free_port,
    fresh_database,
    make_settings,
    upload,
    wait_for_port,
    wait_for_status,
    wait_until,
)


@pytest.fixture
def private_redis(tmp_path):
    """A Redis server of this test's own, so the test can stop it."""
    port = free_port()
    proc = subprocess.Popen(
        [shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for_port(port)
    yield port, proc
    proc.terminate()
    proc.wait(timeout=10)


def test_health_touches_nothing(local_client):
    answer = local_client.get("/api/v1/health")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok"}


def test_ready_when_everything_answers(client):
    answer = client.get("/api/v1/ready")
    assert answer.status_code == 200
    assert answer.json()["checks"] == {
        "database": "ok",
        "broker": "ok",
        "storage": "ok",
        "redis": "ok",
    }


def test_ready_names_redis_when_it_is_stopped(make_app, local_settings, private_redis, caplog):
    port, proc = private_redis
    settings = dataclasses.replace(
        local_settings,
        broker_url=f"redis://127.0.0.1:{port}/0",
        redis_url=f"redis://127.0.0.1:{port}/1",
    )
    with make_app(settings).test_client() as client:
        assert client.get("/api/v1/ready").status_code == 200
        proc.terminate()
        proc.wait(timeout=10)
        with caplog.at_level(logging.WARNING, logger="app.handlers.ops"):
            answer = client.get("/api/v1/ready")
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body["type"] == "/problems/not-ready"
    assert body["checks"] == {
        "database": "ok",
        "storage": "ok",
        "redis": "unavailable",
        "broker": "unavailable",
    }
    assert body["detail"] == "Unavailable: broker, redis."
    # Anyone may ask: the driver's message, with its host and port, is for the log only.
    assert str(port) not in answer.text
    assert "127.0.0.1" not in answer.text
    logged = [r.getMessage() for r in caplog.records if r.name == "app.handlers.ops"]
    assert any(m.startswith("not ready: redis: ") and str(port) in m for m in logged), logged
    assert any(m.startswith("not ready: broker: ") for m in logged), logged


def test_request_id_is_echoed_or_generated(local_client):
    given = local_client.get("/api/v1/health", headers={"X-Request-ID": "trace-42"})
    assert given.headers["x-request-id"] == "trace-42"
    generated = local_client.get("/api/v1/health")
    assert len(generated.headers["x-request-id"]) == 32
    unsafe = local_client.get("/api/v1/health", headers={"X-Request-ID": "a b\tc"})
    assert unsafe.headers["x-request-id"] != "a b\tc"


def test_one_json_access_line_per_request(local_client, make_account, caplog):
    account = make_account()
    with caplog.at_level(logging.INFO, logger="instashare.access"):
        local_client.get("/api/v1/files", headers={**account.headers, "X-Request-ID": "rid-1"})
    (record,) = [r for r in caplog.records if getattr(r, "request_id", None) == "rid-1"]
    assert record.operation == "app.handlers.files.list_files"
    assert record.status == 200
    assert record.user_id == account.id
    assert record.duration_ms >= 0
    from app.observability import JsonFormatter

    line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == "rid-1"
    assert line["status"] == 200


def test_the_access_log_keeps_no_share_token_or_download_grant(local_client, caplog):
    secret = "pCkPjpxJSZa0bPWcIz1-jSkvJAnMEnPFZp6YRCkig0k"
    with caplog.at_level(logging.INFO, logger="instashare.access"):
        for path in (f"/s/{secret}", f"/s/{secret}/content", f"/api/v1/downloads/{secret}"):
            local_client.get(path)
        local_client.get("/s/-/share.css")
    paths = [r.path for r in caplog.records if r.name == "instashare.access"]
    assert paths == ["/s/…", "/s/…/content", "/api/v1/downloads/…", "/s/-/share.css"]
    assert not any(secret in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "path",
    [
        "/S/{secret}",
        "/S/{secret}/content",
        "/s//{secret}",
        "/API/v1/downloads/{secret}",
        "/api/v1/Downloads/{secret}",
    ],
)
def test_the_access_log_keeps_no_token_from_a_misspelled_path(local_client, caplog, path):
    secret = "pCkPjpxJSZa0bPWcIz1-jSkvJAnMEnPFZp6YRCkig0k"
    from app.observability import JsonFormatter

    with caplog.at_level(logging.INFO, logger="instashare.access"):
        assert local_client.get(path.format(secret=secret)).status_code == 404
    (record,) = [r for r in caplog.records if r.name == "instashare.access"]
    line = JsonFormatter().format(record)
    assert secret not in line
    assert json.loads(line)["path"] == path.format(secret="…")


def test_metrics_count_requests_by_operation_and_status(local_client, make_account):
    account = make_account()
    upload(local_client, account, b"x" * 1000)
    local_client.get("/api/v1/files/not-a-uuid", headers=account.headers)
    page = local_client.get("/metrics")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/plain")
    text = page.text
    assert (
        'instashare_http_requests_total{method="POST",operation="app.handlers.files.upload_multipart",'
        'status="202"}' in text
    )
    assert 'operation="app.handlers.files.get_file",status="400"' in text
    assert "instashare_http_request_duration_seconds_bucket" in text
    assert "instashare_uploaded_bytes_total" in text
    assert 'instashare_files{status="pending"}' in text
    assert "instashare_queue_depth" in text


@pytest.mark.slow  # a worker
def test_request_id_reaches_the_worker_log(settings, tmp_path):
    # A real worker, and an API that publishes to it, on a database and a broker of their
    # own: a worker with --beat sweeps its whole database.
    with fresh_database() as url:
        own = make_settings(tmp_path, url, settings.storage_backend, broker_url="filesystem://")
        worker = WorkerProcess(own, tmp_path / "worker.log").start()
        try:
            with committing_app(own) as app, app.test_client() as client:
                alice = account_in(app)
                created = client.post(
                    "/api/v1/upload_files",
                    headers={**alice.headers, "X-Request-ID": "upload-trace-7"},
                    files={"file": ("a.txt", b"abc" * 100, "text/plain")},
                )
                assert created.status_code == 202
                file_id = created.json()["id"]
                wait_for_status(client, alice, file_id, "ready")

                def traced() -> bool:
                    # The job's lines may still be on their way to the log when the file
                    # is ready (Celery logs the outcome after the task returns).
                    return any(
                        '"request_id": "upload-trace-7"' in line and file_id in line
                        for line in worker.log().splitlines()
                    )

                wait_until(traced, timeout=30, what="the request id in the worker's log")
        finally:
            # Killed outright: nothing of this worker (its database, its queue directory)
            # outlives the test, and a filesystem broker's warm shutdown can be slow.
            worker.stop(signal.SIGKILL)


def test_ready_needs_only_object_permissions(proxied_app, fault_proxy, gcs_settings):
    """The documented role (`roles/storage.objectUser`) has no `storage.buckets.get`."""
    bucket = gcs_settings.gcs_bucket
    # What IAM answers a service account without bucket permissions.
    fault_proxy.fail("GET", rf"^/storage/v1/b/{bucket}(\?|$)", status=403, times=None)
    with proxied_app.test_client() as client:
        answer = client.get("/api/v1/ready")

    assert answer.status_code == 200, answer.text
    assert answer.json()["checks"]["storage"] == "ok"
    calls = fault_proxy.requests()
    assert calls, "the probe made no storage request"
    # Object-level calls only: objects.list (or get) under the bucket, never the bucket.
    assert all(c.path.startswith(f"/storage/v1/b/{bucket}/o") for c in calls), calls
    assert len(calls) == 1, calls
    assert calls[0].param("maxResults") == "1"


def test_ready_answers_within_seconds_when_storage_stalls(proxied_app, fault_proxy):
    with proxied_app.test_client() as client:
        fault_proxy.stall(None, "", seconds=60, times=None)
        started = time.monotonic()
        answer = client.get("/api/v1/ready")
        took = time.monotonic() - started
        fault_proxy.release()

    body = assert_problem(answer, 503)
    assert body["checks"]["storage"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert took < 10, f"/ready took {took:.1f}s"


def test_ready_says_storage_is_down_when_it_answers_503(proxied_app, fault_proxy):
    with proxied_app.test_client() as client:
        fault_proxy.fail(None, "", status=503, times=None)
        started = time.monotonic()
        answer = client.get("/api/v1/ready")
        took = time.monotonic() - started

    assert assert_problem(answer, 503)["checks"]["storage"] == "unavailable"
    # One attempt, no retries: the library's default would retry for 120 s.
    assert took < 10, f"/ready took {took:.1f}s"
    assert len(fault_proxy.requests("GET", "/o")) == 1
