"""INSTASHARE_COMPRESSION reaches a real worker: the archives it makes are that setting's.

The worker runs as `instashare-server worker` with the setting in its environment, on a
database and a `filesystem://` broker of its own (as in test_lifecycle.py).
"""

from __future__ import annotations

import dataclasses
import zipfile

import pytest

from app.archive.deflate import DEFLATERS
from app.runtime import build_runtime
from app.storage.base import CHUNK_SIZE
from app.web import create_app
from tests.helpers import (
    WorkerProcess,
    committed_account,
    fresh_database,
    upload,
    wait_for_status,
)
from tests.worker.support import unzip_test

pytestmark = pytest.mark.slow  # every test here starts a worker


def log_text(size: int) -> bytes:
    lines = (
        b"2024-05-17T09:%02d:%02d.%03dZ INFO req=%08x GET /api/v1/files/%d -> 200 in %d ms\n"
        % (i // 60 % 60, i % 60, i % 1000, i * 2654435761 % 2**32, i % 9973, i % 311)
        for i in range(size // 60 + 1)
    )
    return b"".join(lines)[:size]


def deflated_size(setting: str, data: bytes) -> int:
    """What that setting's library and level make of `data`, read in the worker's chunks."""
    compressor = DEFLATERS[setting].compressobj()
    size = sum(
        len(compressor.compress(data[at : at + CHUNK_SIZE]))
        for at in range(0, len(data), CHUNK_SIZE)
    )
    return size + len(compressor.flush())


def test_a_worker_set_to_small_makes_small_archives(local_settings, tmp_path):
    content = log_text(3 * 1024 * 1024)
    assert deflated_size("small", content) != deflated_size("fast", content)
    with fresh_database("instashare_compression") as url:
        own = dataclasses.replace(
            local_settings,
            database_url=url,
            broker_url="filesystem://",
            data_dir=tmp_path / "data",
            compression="small",
        )
        worker = WorkerProcess(own, tmp_path / "worker.log", concurrency=1).start()
        rt = build_runtime(own)
        try:
            account = committed_account(rt.sessions, own)
            with create_app(own, runtime=rt).test_client() as client:
                created = upload(client, account, content, filename="server.log")
                assert created.status_code == 202, created.text
                file_id = created.json()["id"]
                wait_for_status(client, account, file_id, "ready")
                zipped = client.get(f"/api/v1/files/{file_id}/content", headers=account.headers)
            assert zipped.status_code == 200
            path = tmp_path / "server.log.zip"
            path.write_bytes(zipped.content)
            unzip_test(path)
            with zipfile.ZipFile(path) as archive:
                (entry,) = archive.infolist()
                assert archive.read(entry) == content
            assert entry.compress_size == deflated_size("small", content)
        finally:
            worker.kill()
            rt.sessions.kw["bind"].dispose()
