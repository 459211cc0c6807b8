"""The compression job end to end: a claimed file's staged upload becomes its archive.

Against a LocalStorage in a temp dir and the run's database, in a transaction rolled back
at the test's end. The job renews its lease on a clock the tests move forward, instead of
sleeping until a renewal is due.
"""

from __future__ import annotations

import hashlib
import time
import zipfile
import zlib

import pytest
from sqlalchemy import delete

from app.archive.deflate import DEFLATERS
from app.models import File, FileStatus
from app.services import compress_job, leases
from app.storage.base import CHUNK_SIZE
from app.storage.local import LocalStorage
from tests.factories import FileFactory
from tests.services.lease_rows import LEASE, expire_lease, fresh


class Clock:
    """`compress_job`'s monotonic clock, moved forward by the test instead of sleeping."""

    def __init__(self) -> None:
        self.offset = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(compress_job, "time", clock)
    return clock


@pytest.fixture
def store(tmp_path) -> LocalStorage:
    return LocalStorage(tmp_path / "store")


@pytest.fixture
def staged(store, factories):
    """Makes a pending file whose upload is staged in `store`; the file."""

    def make(data: bytes, sha256: str | None = None, **fields) -> File:
        file = FileFactory(size=len(data), crc32=zlib.crc32(data), sha256=sha256, **fields)
        with store.writer(file.staged_key, "text/plain") as sink:
            sink.write(data)
        return file

    return make


def on_disk(store: LocalStorage) -> set[str]:
    return {str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file()}


def text(size: int) -> bytes:
    return b"".join(b"%08d some log text, %d\n" % (i, i % 97) for i in range(size // 24 + 1))[:size]


def test_run_compresses_and_drops_the_staged_upload(session, store, staged):
    data = text(2_500_000)
    file = staged(data)
    job = leases.claim(session, file.id, LEASE)
    assert compress_job.compress(session, store, job, lease_seconds=LEASE)
    row = fresh(session, file)
    assert row.status == FileStatus.READY
    assert row.sha256 == hashlib.sha256(data).hexdigest()  # filled in when the upload had none
    assert row.compressed_size == store.size(file.archive_key)
    assert on_disk(store) == {file.archive_key}


def _entry(store: LocalStorage, file: File) -> zipfile.ZipInfo:
    with zipfile.ZipFile(store.root / file.archive_key) as archive:
        (entry,) = archive.infolist()
        return entry


@pytest.mark.parametrize(
    ("stored_name", "entry_name"),
    [
        ("cafe\u0301.txt", "caf\u00e9.txt"),  # NFD becomes NFC
        ("invoice\u202efdp.exe", "invoicefdp.exe"),  # a bidi override is dropped
        ("C:report.txt", "report.txt"),
    ],
)
def test_the_entry_name_is_normalised_even_for_a_row_named_before_the_rules(
    session, store, staged, stored_name, entry_name
):
    file = staged(text(10_000), name=stored_name)
    job = leases.claim(session, file.id, LEASE)
    assert compress_job.compress(session, store, job, lease_seconds=LEASE)
    assert _entry(store, file).filename == entry_name


def test_the_compression_setting_decides_the_archive(session, store, staged):
    data = text(2_000_000)
    made = {}
    for setting in ("fast", "small"):
        file = staged(data)
        job = leases.claim(session, file.id, LEASE)
        assert compress_job.compress(session, store, job, lease_seconds=LEASE, compression=setting)
        with zipfile.ZipFile(store.root / file.archive_key) as archive:
            assert archive.read(_entry(store, file)) == data
        # The same bytes in the same chunks, deflated by that setting's library and level:
        reference = DEFLATERS[setting].compressobj()
        chunk = CHUNK_SIZE
        deflated = b"".join(
            reference.compress(data[at : at + chunk]) for at in range(0, len(data), chunk)
        )
        deflated += reference.flush()
        made[setting] = (_entry(store, file).compress_size, len(deflated))
    assert made["fast"][0] == made["fast"][1]
    assert made["small"][0] == made["small"][1]
    assert made["fast"][0] != made["small"][0]


def test_run_for_a_file_deleted_after_its_archive_was_written(sessions, session, store, staged):
    file = staged(text(1_000_000))
    job = leases.claim(session, file.id, LEASE)

    def delete_row() -> None:
        with sessions() as other:
            other.execute(delete(File).where(File.id == file.id))
            other.commit()

    assert not compress_job.compress(
        session, store, job, lease_seconds=LEASE, on_progress=delete_row
    )
    assert on_disk(store) == set()


def test_run_for_a_file_deleted_mid_write(sessions, session, store, staged, clock):
    lease = 2  # renewed every second
    file = staged(text(3 * 1024 * 1024))
    job = leases.claim(session, file.id, lease)
    calls = []

    def delete_row_then_stall() -> None:
        calls.append(1)
        if len(calls) == 1:
            with sessions() as other:
                other.execute(delete(File).where(File.id == file.id))
                other.commit()
            clock.advance(1.1)

    assert not compress_job.compress(
        session, store, job, lease_seconds=lease, on_progress=delete_row_then_stall
    )
    assert len(calls) == 1  # the renewal due right after the delete found it gone
    assert on_disk(store) == set()


def test_run_that_lost_its_lease_mid_write_publishes_nothing(session, store, staged, clock):
    lease = 2
    file = staged(text(3 * 1024 * 1024))
    job = leases.claim(session, file.id, lease)
    calls = []

    def lose_lease() -> None:
        calls.append(1)
        if len(calls) == 1:
            expire_lease(session, file)
            assert leases.claim(session, file.id, LEASE) is not None
            clock.advance(1.1)

    with pytest.raises(leases.LeaseLost):
        compress_job.compress(session, store, job, lease_seconds=lease, on_progress=lose_lease)
    assert on_disk(store) == {file.staged_key}  # the new holder still needs it
    assert fresh(session, file).status == FileStatus.PROCESSING


def test_an_upload_staged_before_the_temporary_prefix_is_compressed_where_it_is(
    session, store, factories
):
    # Staged by the version before `tmp/` existed, in the owner's folder, and still pending.
    data = text(300_000)
    file = FileFactory(size=len(data), crc32=zlib.crc32(data))
    with store.writer(file.legacy_staged_key, "text/plain") as sink:
        sink.write(data)
    job = leases.claim(session, file.id, LEASE)
    assert compress_job.compress(session, store, job, lease_seconds=LEASE)
    assert fresh(session, file).status == FileStatus.READY
    assert on_disk(store) == {file.archive_key}  # the old staged object went too
