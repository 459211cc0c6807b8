"""Crashes between GCS requests leave nothing that no sweep removes.

A real `instashare-server serve` talks to the emulator through the fault-injecting proxy
(tests/faultproxy.py), which holds one chosen request while the test kills the server
(SIGKILL, its whole process group): what the bucket and the database hold afterwards is
what a crash at that instant leaves, and the sweeps must clear it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import signal
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

from app.db import make_engine, make_session_factory
from app.models import File, PendingDeletion, Upload, User
from app.runtime import build_runtime
from app.services import deletions, resumable_uploads
from app.settings import Settings
from app.storage import Storage, make_storage
from tests.faultproxy import FaultProxy, wait_for_requests
from tests.helpers import (
    Account,
    committed_account,
    fresh_database,
    make_settings,
    proxied_env,
    redis_db,
    start_server,
    wait_until,
)
from worker.tasks import compress_file

pytestmark = pytest.mark.slow  # every test here starts `serve`, to crash it

TUS = {"Tus-Resumable": "1.0.0"}
# A broker database of its own: the server sends jobs there and no worker takes them.
BROKER_DB = 8


@dataclass
class Crashable:
    """A server whose storage requests pass through `proxy`, on a database of its own."""

    settings: Settings
    sessions: sessionmaker
    storage: Storage  # the same bucket, reached directly (not through the proxy)
    proxy: FaultProxy
    server: subprocess.Popen
    url: str

    def crash(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.server.pid, signal.SIGKILL)
        self.server.wait(timeout=30)


@pytest.fixture
def crashable(tmp_path, gcs_emulator, fault_proxy, redis_url) -> Iterator[Crashable]:
    with fresh_database() as url:
        settings = make_settings(tmp_path / "data", url, "gcs", broker_url=redis_db(BROKER_DB))
        engine = make_engine(url)
        with open(tmp_path / "server.log", "ab") as log:
            server, base = start_server(settings, log=log, extra_env=proxied_env(fault_proxy))
        try:
            yield Crashable(
                settings,
                make_session_factory(engine),
                make_storage(settings),
                fault_proxy,
                server,
                f"{base}/api/v1",
            )
        finally:
            fault_proxy.release()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
            engine.dispose()


def _in_background(request) -> threading.Thread:
    """Send a request that will never be answered (the server is about to die)."""

    def send() -> None:
        with contextlib.suppress(httpx.HTTPError):
            request()

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def _keys(storage: Storage, prefix: str) -> list[str]:
    return sorted(storage.list(prefix))


def test_a_crash_after_the_first_intermediate_compose_leaves_nothing_after_expiry(crashable):
    env = crashable
    account = committed_account(env.sessions, env.settings)
    # 70 parts: three intermediate composes of at most 32, then the final one. The first part
    # is over 8 MiB, so its PATCH streams through a resumable session (two PUTs).
    parts = [os.urandom(8 * 1024 * 1024 + 4096)] + [os.urandom(4096) for _ in range(69)]
    length = sum(map(len, parts))
    http = httpx.Client(base_url=env.url, headers={**account.headers, **TUS}, timeout=60)
    created = http.post(
        "/uploads",
        headers={"Upload-Length": str(length), "Upload-Metadata": "filename YmlnLmJpbg=="},
    )
    assert created.status_code == 201, created.text
    upload_id = uuid.UUID(created.headers["Location"].rsplit("/", 1)[1])
    offset = 0
    octets = {"Content-Type": "application/offset+octet-stream"}
    for part in parts[:-1]:
        sent = http.patch(
            f"/uploads/{upload_id}", headers={**octets, "Upload-Offset": str(offset)}, content=part
        )
        assert sent.status_code == 204, sent.text
        offset += len(part)

    # The second compose (the second intermediate) is held; the server dies meanwhile.
    env.proxy.stall("POST", r"/compose", nth=2, seconds=120)
    last = _in_background(
        lambda: http.patch(
            f"/uploads/{upload_id}",
            headers={**octets, "Upload-Offset": str(offset)},
            content=parts[-1],
            timeout=120,
        )
    )
    composes = wait_for_requests(env.proxy, "POST", r"/compose", count=2, timeout=60)
    env.crash()
    # The held compose still reaches the bucket after its client died, as a real one may.
    env.proxy.release()
    last.join(timeout=30)
    owner = account.id
    parts_prefix = f"tmp/{owner}/uploads/{upload_id}.parts/"
    steps = [re.sub(r"\?.*", "", c.target).rsplit("/o/", 1)[1] for c in composes]
    assert all(step.startswith(parts_prefix) for step in steps), steps
    wait_until(lambda: all(env.storage.exists(s.removesuffix("/compose")) for s in steps), 30)

    # What the crash left: the parts and two intermediates, all under the upload's parts
    # prefix; nothing in the owner's folder, no file, the upload still unfinished.
    left = _keys(env.storage, f"tmp/{owner}/")
    assert len(left) == 70 + 2 and all(key.startswith(parts_prefix) for key in left), left
    assert _keys(env.storage, f"{owner}/") == []
    with env.sessions() as session:
        assert session.get(File, upload_id) is None
        upload = session.get(Upload, upload_id)
        assert upload is not None and upload.completed_at is None
        upload.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        session.commit()

    # The expiry sweep (the worker's expire_uploads) removes all of it.
    with env.sessions() as session:
        assert resumable_uploads.expire(session, env.storage) == 1
    assert _keys(env.storage, f"tmp/{owner}/") == []
    assert _keys(env.storage, f"{owner}/") == []
    with env.sessions() as session:
        assert session.get(Upload, upload_id) is None
        reserved = session.scalar(sa.select(User.bytes_reserved).where(User.id == uuid.UUID(owner)))
        assert reserved == 0
        assert session.scalar(sa.select(sa.func.count()).select_from(PendingDeletion)) == 0


def _ready_file(env: Crashable, account: Account, content: bytes) -> uuid.UUID:
    created = httpx.post(
        f"{env.url}/upload_files",
        headers=account.headers,
        files={"file": ("kept.txt", content, "text/plain")},
        timeout=60,
    )
    assert created.status_code == 202, created.text
    file_id = uuid.UUID(created.json()["id"])
    # The job, run here (directly against the bucket) rather than by a worker process.
    rt = build_runtime(env.settings, sessions=env.sessions)

    def retry(exc: Exception):
        raise exc

    assert compress_file(rt, file_id, retry) == "ready"
    return file_id


def test_a_delete_that_crashed_after_its_commit_is_finished_by_the_sweep(crashable):
    env = crashable
    account = committed_account(env.sessions, env.settings)
    content = b"a file whose delete is cut short\n" * 1000
    file_id = _ready_file(env, account, content)
    archive = f"{account.id}/{file_id}.zip"
    assert env.storage.exists(archive)

    # The archive's DELETE is held: the row's removal has committed by then; the server dies.
    env.proxy.stall("DELETE", re.escape(f"/o/{archive}"), seconds=120)
    _in_background(
        lambda: httpx.delete(f"{env.url}/files/{file_id}", headers=account.headers, timeout=120)
    )
    wait_for_requests(env.proxy, "DELETE", re.escape(f"/o/{archive}"), timeout=60)
    env.crash()

    # The file is gone for its owner (no row, its quota free); its archive is still stored,
    # and the record of what to remove survived the crash.
    with env.sessions() as session:
        assert session.get(File, file_id) is None
        owner = session.get(User, uuid.UUID(account.id))
        assert (owner.file_count, owner.bytes_stored) == (0, 0)
        pending = set(session.scalars(sa.select(PendingDeletion.key)))
    assert archive in pending
    assert env.storage.exists(archive)

    with env.sessions() as session:
        assert deletions.sweep(session, env.storage, after_seconds=0) == len(pending)
    assert not env.storage.exists(archive)
    assert _keys(env.storage, f"{account.id}/") == []
    assert _keys(env.storage, f"tmp/{account.id}/") == []
    with env.sessions() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(PendingDeletion)) == 0
