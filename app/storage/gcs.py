"""Google Cloud Storage through google-cloud-storage (or an emulator via STORAGE_EMULATOR_HOST)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from google.api_core import exceptions as gexc
from google.cloud import storage as gcs

from app.storage.base import ObjectMissing, Storage, check_key

# A multiple of 256 KiB, as resumable uploads require; it is also the write buffer per upload.
GCS_CHUNK_SIZE = 8 * 1024 * 1024


class GCSStorage(Storage):
    def __init__(self, bucket: str, project: str | None = None):
        # With STORAGE_EMULATOR_HOST set the client talks to the emulator, anonymously.
        self.client = gcs.Client(project=project)
        self.bucket = self.client.bucket(bucket)

    def _blob(self, key: str) -> gcs.Blob:
        return self.bucket.blob(check_key(key), chunk_size=GCS_CHUNK_SIZE)

    def put_file(self, key: str, path: Path, content_type: str) -> None:
        self._blob(key).upload_from_filename(str(path), content_type=content_type)
        path.unlink()

    @contextlib.contextmanager
    def writer(self, key: str, content_type: str) -> Iterator[BinaryIO]:
        sink = self._blob(key).open("wb", content_type=content_type, ignore_flush=True)
        # On an exception the resumable session is simply never finalised: no object appears.
        yield sink
        sink.close()

    def open(self, key: str) -> BinaryIO:
        blob = self._blob(key)
        try:
            blob.reload()
        except gexc.NotFound:
            raise ObjectMissing(key) from None
        return blob.open("rb", chunk_size=GCS_CHUNK_SIZE)

    def size(self, key: str) -> int:
        blob = self.bucket.get_blob(check_key(key))
        if blob is None:
            raise ObjectMissing(key)
        return int(blob.size or 0)

    def delete(self, key: str) -> None:
        with contextlib.suppress(gexc.NotFound):
            self._blob(key).delete()

    def list(self, prefix: str) -> Iterator[str]:
        for blob in self.client.list_blobs(self.bucket, prefix=prefix):
            yield blob.name

    def ping(self) -> None:
        self.bucket.reload()
