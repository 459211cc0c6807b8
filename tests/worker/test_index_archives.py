"""`instashare-server index-archives` sends a job per archive lacking its seek index, and a
real worker (Celery, prefork) makes each.

The embedded setup, so nothing else takes the jobs: SQLite, the `filesystem://` broker
and local storage under a temp data dir. The archive is made as main made them (no flush
points, no index on the row).
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid
import zlib

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.archive import seek_index, writer
from app.archive.seek_index import SeekIndex
from app.models import File, FileStatus, User
from app.storage.local import LocalStorage
from tests.archive.test_reader import text_log
from tests.helpers import ROOT, wait_until

pytestmark = pytest.mark.slow  # every test here starts the command and a worker


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.server", *args],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_index_archives_sends_the_jobs_and_a_worker_makes_the_indexes(tmp_path, monkeypatch):
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSTASHARE_")}
    env.update(
        INSTASHARE_DATA_DIR=str(tmp_path),
        INSTASHARE_DATABASE_URL=f"sqlite:///{tmp_path}/instashare.db",
        INSTASHARE_WORKER_METRICS_PORT="0",
    )
    assert run_cli("migrate", env=env).returncode == 0
    engine = sa.create_engine(env["INSTASHARE_DATABASE_URL"])
    storage = LocalStorage(tmp_path / "storage")
    data = text_log(9 * 1024 * 1024)
    with Session(engine) as session:
        user = User(email="old@example.com", password_hash="-")
        session.add(user)
        session.flush()
        file = File(
            id=uuid.uuid4(), owner_id=user.id, name="old.log", status=FileStatus.READY,
            size=len(data), crc32=zlib.crc32(data), content_type="text/plain", attempts=1,
            compression="deflate",
        )  # fmt: skip
        with storage.writer(file.staged_key, "text/plain") as sink:
            sink.write(data)
        monkeypatch.setattr(seek_index, "SPAN", 1 << 50)  # as archives were written before
        result = writer.write_archive(
            storage, source_key=file.staged_key, archive_key=file.archive_key,
            entry_name="old.log", size=len(data), crc32=file.crc32, content_type="text/plain",
            modified_at=dt.datetime.now(dt.UTC), threads=1,
        )  # fmt: skip
        storage.delete(file.staged_key)
        file.compressed_size = result.compressed_size
        session.add(file)
        session.commit()
        file_id = file.id

    sent = run_cli("index-archives", env=env)
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.strip() == "sent 1 indexing job(s)"

    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - closed below
    worker = subprocess.Popen(
        [sys.executable, "-m", "app.server", "worker", "--concurrency", "1"],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:

        def indexed():
            with engine.connect() as conn:
                return conn.execute(
                    sa.select(File.seek_index).where(File.id == file_id)
                ).scalar_one()

        try:
            stored = wait_until(indexed, 60, what="the archive's seek index")
        except AssertionError:
            pytest.fail((tmp_path / "worker.log").read_text()[-3000:])
    finally:
        os.killpg(worker.pid, 9)
        worker.wait(timeout=30)
        log.close()
    index = SeekIndex.from_bytes(stored)
    assert index.size == len(data) and len(index.points) >= 2
    again = run_cli("index-archives", env=env)
    assert again.stdout.strip() == "every archive has its index"
    engine.dispose()
