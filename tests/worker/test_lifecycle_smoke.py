import io
import zipfile

from tests.conftest import upload, wait_for_status


def test_upload_becomes_ready_zip(client, alice, worker):
    content = b"".join(b"line %d\n" % i for i in range(20000))
    created = upload(client, alice, content, filename="log.txt")
    assert created.status_code == 202, created.text
    body = wait_for_status(client, alice, created.json()["id"], {"ready", "failed"})
    assert body["status"] == "ready", (body, worker.log()[-3000:])
    zipped = client.get(f"/api/v1/files/{body['id']}/content", headers=alice.headers)
    assert zipped.status_code == 200
    with zipfile.ZipFile(io.BytesIO(zipped.content)) as archive:
        assert archive.namelist() == ["log.txt"]
        assert archive.read("log.txt") == content
