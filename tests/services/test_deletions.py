"""Deleting a file: the row's removal commits first, the objects go after it.

On a database of the test's own, where commits are real: a PostgreSQL trigger deferred to
commit time refuses the commit of a delete, as a database that fails at that instant would.
"""

from __future__ import annotations

import io
import uuid
import zipfile
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from app.models import PendingDeletion
from app.services import deletions, leases
from tests.helpers import (
    account_in,
    assert_problem,
    committing_app,
    fresh_database,
    make_settings,
    runtime,
    stored_keys,
    upload,
)
from worker.tasks import compress_file

REFUSE_DELETES = """
CREATE FUNCTION refuse_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the database refused the commit';
END $$;
CREATE CONSTRAINT TRIGGER refuse_file_deletes AFTER DELETE ON files
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_commit();
"""
ALLOW_DELETES = "DROP TRIGGER refuse_file_deletes ON files; DROP FUNCTION refuse_commit();"


@pytest.fixture
def app(tmp_path, backend, redis_url, request) -> Iterator:
    """The app as deployed (it commits), on a database of its own."""
    if backend == "gcs":
        request.getfixturevalue("gcs_emulator")
    with fresh_database() as url, committing_app(make_settings(tmp_path, url, backend)) as app:
        yield app


@pytest.fixture
def local_app(tmp_path, redis_url) -> Iterator:
    """`app` on the local backend only (its storage can be made to refuse on disk)."""
    with fresh_database() as url, committing_app(make_settings(tmp_path, url, "local")) as app:
        yield app


def _sql(app, statements: str) -> None:
    with runtime(app).sessions() as session:
        session.execute(sa.text(statements))
        session.commit()


def _pending(app) -> list[str]:
    with runtime(app).sessions() as session:
        return list(session.scalars(sa.select(PendingDeletion.key)))


def test_a_delete_whose_commit_fails_leaves_the_file_whole(app):
    account = account_in(app)
    content = b"the file must survive a failed delete\n" * 500
    with app.test_client() as client:
        created = upload(client, account, content, "kept.log")
        assert created.status_code == 202, created.text
        file_id = created.json()["id"]

        def retry(exc: Exception):
            raise exc

        assert compress_file(runtime(app), uuid.UUID(file_id), retry) == "ready"
        archive = f"{account.id}/{file_id}.zip"
        assert stored_keys(app, account.id) == [archive]

        _sql(app, REFUSE_DELETES)
        refused = client.delete(f"/api/v1/files/{file_id}", headers=account.headers)
        assert_problem(refused, 500)
        # Nothing happened: the file is ready, its archive is there and downloads whole.
        body = client.get(f"/api/v1/files/{file_id}", headers=account.headers).json()
        assert body["status"] == "ready", body
        assert stored_keys(app, account.id) == [archive]
        zipped = client.get(f"/api/v1/files/{file_id}/content", headers=account.headers)
        assert zipped.status_code == 200
        with zipfile.ZipFile(io.BytesIO(zipped.content)) as archived:
            assert archived.read("kept.log") == content
        assert _pending(app) == []

        _sql(app, ALLOW_DELETES)
        deleted = client.delete(f"/api/v1/files/{file_id}", headers=account.headers)
        assert deleted.status_code == 204
        assert client.get(f"/api/v1/files/{file_id}", headers=account.headers).status_code == 404
        assert stored_keys(app, account.id) == []
        assert _pending(app) == []


def test_objects_a_delete_could_not_remove_are_removed_by_the_sweep(local_app):
    # (On GCS, a delete cut short by a crash: tests/storage/test_gcs_crashes.py.)
    app = local_app
    account = account_in(app)
    with app.test_client() as client:
        created = upload(client, account, b"refused at first\n" * 100, "stuck.log")
        file_id = created.json()["id"]

        def retry(exc: Exception):
            raise exc

        assert compress_file(runtime(app), uuid.UUID(file_id), retry) == "ready"
        archive = runtime(app).settings.storage_root / account.id / f"{file_id}.zip"
        # The archive's name is, for now, a folder with something in it: unlink(2) refuses.
        archive.unlink()
        (archive / "in-the-way").mkdir(parents=True)
        deleted = client.delete(f"/api/v1/files/{file_id}", headers=account.headers)
        # The owner's delete succeeds: the file is gone for them, whatever storage says.
        assert deleted.status_code == 204
        assert client.get(f"/api/v1/files/{file_id}", headers=account.headers).status_code == 404
        left = {f"{account.id}/{file_id}.zip", f"tmp/{account.id}/uploads/{file_id}"}
        assert set(_pending(app)) == left

        (archive / "in-the-way").rmdir()
        archive.rmdir()
        archive.write_bytes(b"the archive, back")
        with runtime(app).sessions() as session:
            assert deletions.sweep(session, runtime(app).storage, after_seconds=0) == len(left)
        assert not archive.exists()
        assert _pending(app) == []


def test_deleting_a_file_whose_writers_were_killed_leaves_nothing_on_disk(local_app):
    # Two attempts at the archive, each cut off mid-write as by `kill -9` of the worker:
    # the local backend's temporary files stay beside the keys the attempts wrote to.
    app = local_app
    account = account_in(app)
    rt = runtime(app)
    with app.test_client() as client:
        created = upload(client, account, b"never compressed\n" * 100, "cut.log")
        file_id = uuid.UUID(created.json()["id"])
        cut_off = []  # held, so that no `finally` of theirs ever runs
        for _ in range(2):
            with rt.sessions() as session:
                claim = leases.claim(session, file_id, lease_seconds=-1)  # run out at once
                assert claim is not None
            # Entered and never left: the writer's process died with its temp file open.
            cut_off.append(rt.storage.writer(claim.archive_key, "application/zip"))
            cut_off[-1].__enter__().write(b"PK\x03\x04 half an archive")
        on_disk = [p for p in rt.settings.storage_root.rglob("*") if p.is_file()]
        assert sum(p.name.endswith(".part") for p in on_disk) == 2

        deleted = client.delete(f"/api/v1/files/{file_id}", headers=account.headers)
        assert deleted.status_code == 204
    left = [p for p in rt.settings.storage_root.rglob("*") if p.is_file()]
    assert left == []
    assert _pending(app) == []


REFUSE_RECORD_DELETES = """
CREATE FUNCTION refuse_record_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the database went away';
END $$;
CREATE TRIGGER refuse_record_deletes BEFORE DELETE ON pending_deletions
    FOR EACH ROW EXECUTE FUNCTION refuse_record_delete();
"""


def test_a_delete_whose_bookkeeping_fails_after_its_commit_still_answers_204(local_app):
    # The file's removal committed and its objects are gone; only dropping their records
    # fails (the database went away at that instant). The owner's delete happened: 204,
    # and the sweep finds the records with nothing left to remove.
    app = local_app
    account = account_in(app)
    with app.test_client() as client:
        created = upload(client, account, b"gone for good\n" * 100, "gone.log")
        file_id = created.json()["id"]
        _sql(app, REFUSE_RECORD_DELETES)
        deleted = client.delete(f"/api/v1/files/{file_id}", headers=account.headers)
        assert deleted.status_code == 204, deleted.text
        assert client.get(f"/api/v1/files/{file_id}", headers=account.headers).status_code == 404
        assert stored_keys(app, account.id) == []
        assert _pending(app)  # the records wait for the sweep

        _sql(app, "DROP TRIGGER refuse_record_deletes ON pending_deletions")
        with runtime(app).sessions() as session:
            deletions.sweep(session, runtime(app).storage, after_seconds=0)
        assert _pending(app) == []
