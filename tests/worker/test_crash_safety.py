"""What survives a crash: a worker killed mid-job, a broker that goes away, a duplicate job.

Each test runs its own worker (and broker) on a PostgreSQL database of this module's, with
a short lease and a fast sweep: no other worker sweeps that database, so none takes over
(and fails, with the wrong storage) the stuck jobs these tests create on purpose.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from app.db import make_engine, make_session_factory
from app.models import File, FileStatus, SchedulerLock
from app.services import compress_job, leases
from tests.helpers import (
    ROOT,
    WorkerProcess,
    committed_account,
    committing_app,
    free_port,
    fresh_database,
    make_settings,
    runtime,
    start_server,
    upload,
    wait_for_port,
    wait_for_status,
    wait_until,
)
from tests.worker.support import unzip_test, wait_for_results

LEASE_SECONDS = 3
SWEEP_SECONDS = 0.5  # how soon a lost or unsent job is sent again
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def crash_db_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this module, dropped at the end."""
    with fresh_database("instashare_crash") as url:
        yield url


@pytest.fixture(scope="module")
def crash_sessions(crash_db_url):
    """Sessions on that database that commit (the workers must see the rows)."""
    engine = make_engine(crash_db_url)
    yield make_session_factory(engine)
    engine.dispose()


class RedisServer:
    """A private redis-server on a free port, which a test may stop and start again."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        log = open(self.workdir / "redis.log", "ab")  # noqa: SIM115 - kept open for its life
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)


@pytest.fixture(autouse=True)
def no_scheduler_holds_the_lock(crash_sessions) -> None:
    """Each test's scheduler starts free: one an earlier test killed held it until it lapsed."""
    with crash_sessions() as session:
        session.execute(sa.delete(SchedulerLock))
        session.commit()


@pytest.fixture
def broker(tmp_path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


def settings_for(tmp_path, crash_db_url, broker, **overrides):
    """Settings of this module's workers: its database, its broker, local storage, a short
    lease and a fast sweep (or `overrides`)."""
    values = dict(job_lease_seconds=LEASE_SECONDS, sweep_interval_seconds=SWEEP_SECONDS)
    return make_settings(
        tmp_path / "data", crash_db_url, "local", broker_url=broker.url, **{**values, **overrides}
    )


@pytest.fixture
def crash_settings(tmp_path, crash_db_url, broker, redis_url):
    return settings_for(tmp_path, crash_db_url, broker)


def start_worker(
    settings, started: list[WorkerProcess], log: Path, concurrency: int = 1, *args: str
) -> WorkerProcess:
    worker = WorkerProcess(settings, log, concurrency=concurrency, extra_args=args).start()
    started.append(worker)
    return worker


@pytest.fixture
def server(crash_settings, tmp_path) -> Iterator[str]:
    """`instashare-server serve` (gunicorn + uvicorn workers); its API's base URL."""
    with open(tmp_path / "server.log", "ab") as log:
        proc, url = start_server(crash_settings, log=log)
    yield f"{url}/api/v1"
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # its test is over: no graceful shutdown to wait
    proc.wait(timeout=30)


def every_file(root: Path) -> set[str]:
    """Every file under `root`, dot-named temp files included."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def write_text_file(path: Path, size: int) -> tuple[int, str]:
    """`size` bytes of log text, written a MiB at a time; their CRC-32 and SHA-256."""
    lines = b"".join(
        b"%06d 2024-05-17T10:%02d:%02dZ INFO worker-%d compressed block %08x of %d\n"
        % (i, i // 60 % 60, i % 60, i % 7, i * 2654435761 % 2**32, i % 4099)
        for i in range(MIB // 50)
    )
    block = (lines * 2)[:MIB]  # longer than deflate's window: no easy long-range matches
    crc, sha = 0, hashlib.sha256()
    with open(path, "wb") as sink:
        for _ in range(size // MIB):
            sink.write(block)
            crc = zlib.crc32(block, crc)
            sha.update(block)
    return crc, sha.hexdigest()


def test_worker_killed_mid_job_is_replaced_and_leaves_one_archive(
    crash_settings, server, workers, crash_sessions, tmp_path
):
    size = 320 * MIB
    source = tmp_path / "big.log"
    crc, sha256 = write_text_file(source, size)
    http = httpx.Client(base_url=server, timeout=120)
    account = committed_account(crash_sessions, crash_settings)
    auth, user_id = account.headers, account.id

    first = start_worker(crash_settings, workers, tmp_path / "worker1.log")
    with open(source, "rb") as body:  # streamed from disk, never whole in memory
        created = http.post(
            "/upload_files", headers=auth, files={"file": ("big.log", body, "text/plain")}
        )
    assert created.status_code == 202, created.text
    file_id = created.json()["id"]
    assert created.json()["sha256"] == sha256

    user_dir = crash_settings.storage_root / user_id

    def writing() -> bool:
        status = http.get(f"/files/{file_id}", headers=auth).json()["status"]
        partial = [p for p in user_dir.glob(f".{file_id}.zip.*.part") if p.stat().st_size > 0]
        assert status in {"pending", "processing"}, (status, first.log()[-3000:])
        return status == "processing" and bool(partial)

    wait_until(writing, 60, 0.005, what=f"the job writing (see {first.log_path})")
    first.stop(sig=signal.SIGKILL)  # the whole group: main process, pool child and beat

    with crash_sessions() as session:
        row = session.get(File, uuid.UUID(file_id))
        assert (row.status, row.attempts) == (FileStatus.PROCESSING, 1)
    assert not (user_dir / f"{file_id}.zip").exists()

    second = start_worker(crash_settings, workers, tmp_path / "worker2.log")

    def ready() -> dict | None:
        body = http.get(f"/files/{file_id}", headers=auth).json()
        assert body["status"] in {"processing", "pending", "ready"}, (body, second.log()[-3000:])
        return body if body["status"] == "ready" else None

    body = wait_until(ready, 90, 0.1, what=f"file {file_id} ready (see {second.log_path})")
    with crash_sessions() as session:
        row = session.get(File, uuid.UUID(file_id))
        # Taken over once the dead worker's lease ran out: one more attempt, no more.
        assert row.attempts == 2
        assert row.lease_token is None

    archive = user_dir / f"{file_id}.2.zip"  # the second attempt's own key
    assert body["compressed_size"] == archive.stat().st_size < size / 3
    unzip_test(archive)
    with zipfile.ZipFile(archive) as zf:
        (entry,) = zf.infolist()
        assert (entry.filename, entry.file_size, entry.CRC) == ("big.log", size, crc)
    # The original is gone from the upload area, and the server kept no spool file.
    assert not (user_dir / "uploads" / file_id).exists()
    assert every_file(crash_settings.spool_root) == set()
    # Nothing else, not even the killed writer's hidden temp file.
    assert every_file(crash_settings.storage_root) == {f"{user_id}/{file_id}.2.zip"}


UNSENT_SWEEP = "Couldn't apply scheduled task sweep-jobs"
SENT_SWEEP = "Sending due task sweep-jobs"


def test_upload_while_the_broker_is_down_is_delivered_by_the_sweep(
    crash_settings, broker, workers, crash_sessions, tmp_path
):
    worker = start_worker(crash_settings, workers, tmp_path / "worker.log")
    with committing_app(crash_settings) as app, app.test_client() as client:
        account = committed_account(crash_sessions, crash_settings)
        warm = upload(client, account, b"before the outage\n" * 1000, filename="before.txt")
        assert (
            wait_for_status(client, account, warm.json()["id"], {"ready", "failed"})["status"]
            == "ready"
        )

        # This worker's scheduler sends the sweeps (the one lock may still be held, for a
        # few seconds, by the scheduler of a worker an earlier test killed).
        wait_until(lambda: SENT_SWEEP in worker.log(), 60, what="this worker's sweeps")
        broker.stop()
        started = time.monotonic()
        created = client.post(
            "/api/v1/upload_files",
            headers={**account.headers, "X-Request-ID": "outage-upload-7"},
            files={"file": ("during.txt", b"during the outage\n" * 1000, "text/plain")},
        )
        took = time.monotonic() - started
        assert created.status_code == 202, created.text
        assert took < 5, f"the upload waited {took:.1f}s for a dead broker"
        file_id = created.json()["id"]
        assert created.json()["status"] == "pending"
        with crash_sessions() as session:
            assert session.get(File, uuid.UUID(file_id)).enqueued_at is None  # not sent

        # Two sweeps come due while the broker is down (the worker's scheduler cannot send
        # them), and the file waits.
        seen = worker.log().count(UNSENT_SWEEP)
        wait_until(
            lambda: worker.log().count(UNSENT_SWEEP) >= seen + 2,
            30,
            what=f"two sweeps failing to go out (see {worker.log_path})",
        )
        got = client.get(f"/api/v1/files/{file_id}", headers=account.headers).json()
        assert got["status"] == "pending"

        broker.start()  # the same port, empty: the sweep must re-send the job
        body = wait_for_status(client, account, file_id, {"ready", "failed"}, timeout=90)
        assert body["status"] == "ready", (body, worker.log()[-3000:])

        def sent_by_the_sweep() -> File | None:
            # The sweep records the send after publishing: its commit may land just after
            # the job (run at once by the small lane) made the file ready.
            with crash_sessions() as session:
                row = session.get(File, uuid.UUID(file_id))
                return row if row.enqueued_at is not None else None

        row = wait_until(sent_by_the_sweep, 10, what="the sweep's record of the send")
        assert row.attempts == 1
        # The sweep sent the job with the upload's request id, and its outcome carries it.
        (succeeded,) = wait_until(lambda: job_outcomes(worker, file_id), 30, what="the outcome")
        assert succeeded["request_id"] == "outage-upload-7", succeeded


def job_outcomes(worker: WorkerProcess, file_id: str) -> list[dict]:
    """The worker's "succeeded" log records of the jobs of `file_id`."""
    records = [json.loads(line) for line in worker.log().splitlines() if line.startswith("{")]
    ids = {r["data"]["id"] for r in records if file_id in str(r.get("data", {}).get("args", ""))}
    return [r for r in records if r["msg"].endswith("'ready'") and r["data"]["id"] in ids]


def test_duplicate_delivery_while_a_job_holds_the_lease_is_harmless(
    crash_settings, workers, crash_sessions, tmp_path
):
    content = b"".join(b"line %d of a file delivered twice\n" % i for i in range(50_000))
    with committing_app(crash_settings) as app, app.test_client() as client:
        rt = runtime(app)
        storage = rt.storage
        account = committed_account(crash_sessions, crash_settings)
        # No worker yet: the upload's job waits in the queue while this test takes the lease.
        file_id = upload(client, account, content, filename="twice.log").json()["id"]
        fid = uuid.UUID(file_id)
        with crash_sessions() as session:
            job = leases.claim(session, fid, lease_seconds=120)
        assert job is not None
        held = client.get(f"/api/v1/files/{file_id}", headers=account.headers)
        assert held.json()["status"] == "processing"

        worker = start_worker(crash_settings, workers, tmp_path / "worker.log", concurrency=2)
        with crash_sessions() as session:
            assert rt.jobs.send_compression(session, fid)  # and one more, for good measure
        assert wait_for_results(worker, 2) == ["skipped", "skipped"]
        again = client.get(f"/api/v1/files/{file_id}", headers=account.headers)
        assert again.headers["ETag"] == held.headers["ETag"]
        assert again.json() == held.json()
        with crash_sessions() as session:
            row = session.get(File, fid)
            assert (row.lease_token, row.attempts) == (job.token, 1)
        assert sorted(storage.list(f"{account.id}/")) == []
        assert list(storage.list(f"tmp/{account.id}/")) == [f"tmp/{account.id}/uploads/{file_id}"]

        # The holder finishes; a duplicate arriving afterwards changes nothing either.
        with crash_sessions() as session:
            assert compress_job.compress(session, storage, job, lease_seconds=120)
        ready = client.get(f"/api/v1/files/{file_id}", headers=account.headers)
        assert ready.json()["status"] == "ready"
        with crash_sessions() as session:
            assert rt.jobs.send_compression(session, fid)
        assert wait_for_results(worker, 3) == ["skipped"] * 3
        final = client.get(f"/api/v1/files/{file_id}", headers=account.headers)
        assert final.headers["ETag"] == ready.headers["ETag"]
        assert final.json() == ready.json()
        assert sorted(storage.list(f"{account.id}/")) == [f"{account.id}/{file_id}.zip"]
        zipped = client.get(f"/api/v1/files/{file_id}/content", headers=account.headers)
        (tmp_path / "twice.zip").write_bytes(zipped.content)
        unzip_test(tmp_path / "twice.zip")
        with zipfile.ZipFile(tmp_path / "twice.zip") as zf:
            assert zf.read("twice.log") == content


# A job cut off mid-way is taken up again at once, not a lease's length later.

LONG_LEASE = 300  # far longer than these tests wait: only an immediate takeover passes


def descendants(pid: int) -> set[int]:
    """The processes below `pid` (its children, theirs, and so on)."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            with contextlib.suppress(OSError):
                for child in (task / "children").read_text().split():
                    if int(child) not in found:
                        found.add(int(child))
                        todo.append(int(child))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended; only its parent has not reaped it


def test_a_job_whose_pool_process_was_killed_is_redone_at_once(
    tmp_path, crash_db_url, broker, workers, crash_sessions, redis_url
):
    settings = settings_for(tmp_path, crash_db_url, broker, job_lease_seconds=LONG_LEASE)
    source = tmp_path / "big.log"
    size = 192 * MIB
    crc, _ = write_text_file(source, size)
    worker = start_worker(settings, workers, tmp_path / "worker.log")
    with committing_app(settings) as app, app.test_client() as client:
        account = committed_account(crash_sessions, settings)
        with open(source, "rb") as body:
            created = client.post(
                "/api/v1/upload_files",
                headers=account.headers,
                files={"file": ("big.log", body, "text/plain")},
            )
        assert created.status_code == 202, created.text
        fid = uuid.UUID(created.json()["id"])

        user_dir = settings.storage_root / account.id

        def writer() -> int | None:
            """The process writing the archive (a pool process of the worker)."""
            for pid in descendants(worker.proc.pid):
                with contextlib.suppress(OSError):
                    for fd in Path(f"/proc/{pid}/fd").iterdir():
                        target = os.readlink(fd)
                        if target.startswith(str(user_dir)) and target.endswith(".part"):
                            return pid
            return None

        pid = wait_until(writer, 60, 0.01, what=f"the job writing (see {worker.log_path})")
        os.kill(pid, signal.SIGKILL)  # the pool process dies; the worker lives on

        body = wait_for_status(client, account, str(fid), {"ready", "failed"}, timeout=90)
        assert body["status"] == "ready", (body, worker.log()[-3000:])
        with crash_sessions() as session:
            assert session.get(File, fid).attempts == 2  # the redelivery, not the sweep's
        archive = settings.storage_root / account.id / f"{fid}.2.zip"  # the second attempt's
        unzip_test(archive)
        with zipfile.ZipFile(archive) as zf:
            (entry,) = zf.infolist()
            assert (entry.file_size, entry.CRC) == (size, crc)
        assert every_file(settings.storage_root) == {f"{account.id}/{fid}.2.zip"}


def test_kill_9_of_the_worker_leaves_no_beat_behind(crash_settings, workers, tmp_path):
    # Its embedded beat reparented to PID 1 would go on sending the sweeps, and the
    # restarted worker's own beat beside it: two schedulers, where there must be one.
    worker = start_worker(crash_settings, workers, tmp_path / "worker.log")
    wait_until(lambda: "beat: Starting" in worker.log(), 60, what="the embedded beat started")
    wait_until(lambda: len(descendants(worker.proc.pid)) >= 2, 30, what="pool and beat up")
    below = descendants(worker.proc.pid)
    os.kill(worker.proc.pid, signal.SIGKILL)  # the main process only
    worker.proc.wait(timeout=10)
    try:
        wait_until(
            lambda: not any(alive(p) for p in below),
            20,
            what=f"processes {sorted(p for p in below if alive(p))} ending with their worker",
        )
    finally:
        for pid in below:  # whatever outlived its worker: this test started it
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def _small_lane(pid: int) -> int | None:
    """The worker's small-file lane: its child started with `--lane small`."""
    for child in descendants(pid):
        with contextlib.suppress(OSError):
            if b"--lane" in Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0"):
                return child
    return None


def test_the_worker_stops_with_status_1_when_its_small_lane_dies(crash_settings, workers, tmp_path):
    # Left alone, the worker would go on without its lane, and small files would wait
    # behind large ones again with nobody told. It stops instead, with a status that a
    # supervisor restarting on failure acts on, and starts both again.
    worker = start_worker(crash_settings, workers, tmp_path / "worker.log")
    wait_until(lambda: _small_lane(worker.proc.pid), 60, what="the small lane started")
    wait_until(lambda: "small@" in worker.log() and "ready." in worker.log(), 60, what="ready")
    os.kill(_small_lane(worker.proc.pid), signal.SIGKILL)
    assert worker.proc.wait(timeout=60) == 1, worker.log()[-3000:]
    assert "The small-file lane exited on its own (status -9)" in worker.log()


# A worker whose start-up step fails, run as `instashare-server worker` runs Celery.
UNRECOVERABLE = """
from celery import Celery, bootsteps
from app.queue.supervision import run_celery

class Broken(bootsteps.StartStopStep):
    def start(self, worker):
        raise RuntimeError("a step that cannot start")

app = Celery("broken", broker="memory://", set_as_current=False)
app.steps["worker"].add(Broken)
run_celery(app, ["worker", "--pool", "solo", "--without-mingle", "--without-gossip"])
"""


@pytest.mark.slow  # starts a Celery worker of its own
def test_a_worker_ending_on_an_unrecoverable_error_exits_with_status_1(tmp_path):
    # Celery itself would exit 0 here (its entry points drop the worker's status), and a
    # supervisor that restarts on failure would take that for a clean stop.
    done = subprocess.run(
        [sys.executable, "-c", UNRECOVERABLE], cwd=ROOT, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert "Unrecoverable error: RuntimeError('a step that cannot start')" in done.stderr
    assert done.returncode == 1


def test_a_dropped_database_connection_is_retried_at_once(
    tmp_path, crash_db_url, broker, workers, crash_sessions, redis_url
):
    # No sweep resends the job within this test.
    settings = settings_for(
        tmp_path, crash_db_url, broker, job_lease_seconds=LONG_LEASE, sweep_interval_seconds=3600
    )
    # One pool process, no small lane: the second job runs where the first warmed a
    # connection (with the lane, either process could take either job).
    worker = start_worker(settings, workers, tmp_path / "worker.log", 1, "--no-small-lane")
    with committing_app(settings) as app, app.test_client() as client:
        account = committed_account(crash_sessions, settings)
        first = upload(client, account, b"warms the pool's connection\n" * 100, filename="a.txt")
        body = wait_for_status(client, account, first.json()["id"], {"ready", "failed"})
        assert body["status"] == "ready", body

        # The database drops every connection (a restart, a failover, an operator).
        admin = make_engine(crash_db_url)
        with admin.connect() as conn:
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        admin.dispose()
        runtime(app).sessions.kw["bind"].dispose()  # this test's own are gone too
        crash_sessions.kw["bind"].dispose()

        second = client.post(
            "/api/v1/upload_files",
            headers={**account.headers, "X-Request-ID": "after-the-drop-3"},
            files={"file": ("b.txt", b"sent after the drop\n" * 100, "text/plain")},
        )
        assert second.status_code == 202, second.text
        file_id = second.json()["id"]
        body = wait_for_status(client, account, file_id, {"ready", "failed"}, 60)
        assert body["status"] == "ready", (body, worker.log()[-3000:])
        # Its retry carried the request id as the first delivery did.
        assert "will retry" in worker.log()
        (succeeded,) = wait_until(lambda: job_outcomes(worker, file_id), 30, what="the outcome")
        assert succeeded["request_id"] == "after-the-drop-3", succeeded


def test_two_schedulers_send_the_sweeps_from_one_only(crash_settings, workers, tmp_path):
    # Two `worker --beat` on one deployment (started twice by mistake): one sends the
    # sweeps, the other waits; when the first dies, the second takes over.
    first = start_worker(crash_settings, workers, tmp_path / "worker1.log")
    wait_until(lambda: SENT_SWEEP in first.log(), 60, what=f"sweeps sent ({first.log_path})")
    second = start_worker(crash_settings, workers, tmp_path / "worker2.log")
    wait_until(lambda: "beat: Starting" in second.log(), 60, what="the second beat started")
    sent = first.log().count(SENT_SWEEP)
    wait_until(
        lambda: first.log().count(SENT_SWEEP) >= sent + 10, 60, what="ten more sweeps sent"
    )  # each 0.5 s: the second beat had as many chances to send them as well
    assert SENT_SWEEP not in second.log()

    first.kill()  # the holder dies without letting go: the lock lapses, then moves
    wait_until(
        lambda: SENT_SWEEP in second.log(), 60, what=f"the second sending ({second.log_path})"
    )
