"""Downloads read the archive the job recorded, by its generation; rows from before too.

The app's storage talks to the GCS emulator through the fault proxy (`proxied_app`), which
records what each read names.
"""

from __future__ import annotations

import uuid

import pytest

from app.models import File
from tests.helpers import upload_ready

CONTENT = b"every read of one download names one generation\n" * 500


@pytest.mark.parametrize("query", ["", "?format=original"])
def test_downloads_name_the_recorded_generation(proxied_app, fault_proxy, alice, session, query):
    with proxied_app.test_client() as client:
        file_id = upload_ready(client, proxied_app, alice, CONTENT, "notes.txt")
        row = session.get(File, uuid.UUID(file_id))
        assert row.archive_object == f"{alice.id}/{file_id}.zip"
        assert row.archive_generation
        fault_proxy.clear()
        answer = client.get(f"/api/v1/files/{file_id}/content{query}", headers=alice.headers)

    assert answer.status_code == 200
    reads = fault_proxy.requests("GET", rf"/o/{alice.id}/{file_id}")
    assert reads
    assert {r.param("generation") for r in reads} == {str(row.archive_generation)}


@pytest.mark.parametrize("query", ["", "?format=original"])
def test_rows_from_before_without_a_recorded_archive_still_download(
    proxied_app, fault_proxy, alice, session, query
):
    with proxied_app.test_client() as client:
        file_id = upload_ready(client, proxied_app, alice, CONTENT, "notes.txt")
        row = session.get(File, uuid.UUID(file_id))
        # As migration 0012 leaves a row that was ready before it.
        row.archive_object = None
        row.archive_generation = None
        session.commit()
        fault_proxy.clear()
        answer = client.get(f"/api/v1/files/{file_id}/content{query}", headers=alice.headers)

    assert answer.status_code == 200
    if query:
        assert answer.content == CONTENT
    reads = fault_proxy.requests("GET", rf"/o/{alice.id}/{file_id}")
    # The key archives always had; no generation recorded to name.
    assert {r.path.rsplit("/", 1)[-1] for r in reads} == {f"{file_id}.zip"}
