"""A deleted folder's objects are removed by a real worker: nothing is left behind.

The app commits and sends its jobs to a Celery worker on a database and a
`filesystem://` broker of their own; the files are compressed by it, the folder deleted
through the API, and the worker's deletion job (sent by the delete) removes the archives.
"""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import func, select

from app.models import PendingDeletion
from app.runtime import build_runtime
from app.services import folders
from tests.helpers import (
    WorkerProcess,
    committed_account,
    fresh_database,
    stored_keys,
    upload,
    wait_for_status,
    wait_until,
)

pytestmark = pytest.mark.slow  # a Celery worker

API = "/api/v1"


def test_the_worker_removes_every_object_of_a_deleted_folder(settings, tmp_path, monkeypatch):
    from app.web import create_app

    # Past this many files a delete leaves its objects to the worker; here, always.
    monkeypatch.setattr(folders, "INLINE_FILES", 0)
    with fresh_database("instashare_folder_objects") as url:
        own = dataclasses.replace(
            settings, database_url=url, broker_url="filesystem://", data_dir=tmp_path / "data"
        )
        worker = WorkerProcess(own, tmp_path / "worker.log", concurrency=1).start()
        rt = build_runtime(own)
        try:
            app = create_app(own, runtime=rt)
            alice = committed_account(rt.sessions, own)
            with app.test_client() as client:
                box = client.post(f"{API}/folders", json={"name": "box"}, headers=alice.headers)
                assert box.status_code == 201, box.text
                kept = upload(client, alice, b"stays " * 100, filename="kept.txt").json()["id"]
                ids = [
                    upload(
                        client,
                        alice,
                        f"file {n} ".encode() * 500,
                        filename=f"{n}.txt",
                        folder_id=box.json()["id"],
                        relative_path=f"{'deep/' * n}{n}.txt",
                    ).json()["id"]
                    for n in range(4)
                ]
                for file_id in [kept, *ids]:
                    wait_for_status(client, alice, file_id, "ready", timeout=120)
                # Each staged upload goes once its archive is verified: five archives left.
                wait_until(lambda: len(stored_keys(app, alice.id)) == 5, 30, 0.1, what="staging")

                deleted = client.delete(f"{API}/folders/{box.json()['id']}", headers=alice.headers)
                assert deleted.status_code == 204, deleted.text
                me = client.get(f"{API}/users/me", headers=alice.headers).json()["usage"]
                assert me["file_count"] == 1  # the rows went at once

                def records() -> int:
                    with rt.sessions() as session:
                        return session.scalar(select(func.count()).select_from(PendingDeletion))

                def done() -> bool:
                    # The objects first, then their records.
                    return (
                        stored_keys(app, alice.id) == [f"{alice.id}/{kept}.zip"] and not records()
                    )

                wait_until(done, 60, 0.2, what=f"the worker's deletions ({worker.log_path})")
        finally:
            worker.kill()
            rt.sessions.kw["bind"].dispose()
