"""Google Cloud Storage through google-cloud-storage (or an emulator via STORAGE_EMULATOR_HOST)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from google.api_core import exceptions as gexc
from google.cloud import storage as gcs
from google.cloud.storage.retry import DEFAULT_RETRY

from app.storage.base import ObjectMissing, Storage, StoredObject, check_key

# The most source objects one compose request may name.
MAX_COMPOSE_SOURCES = 32
# A multiple of 256 KiB, as resumable uploads require; it is also the write buffer per upload.
GCS_CHUNK_SIZE = 8 * 1024 * 1024
# A compose names immutable sources (parts and intermediates are written once, under names
# of their own) and writes a destination nothing else writes: sent twice it stores the same
# bytes, so a 429, a 5xx or a dropped connection is retried, as the library would not by
# itself (it retries composes only under a generation precondition). It runs while the
# last PATCH of an upload waits for its answer: the retries end well before the client's.
COMPOSE_RETRY = DEFAULT_RETRY.with_delay(initial=0.5, maximum=8.0).with_timeout(30.0)


# google-cloud-storage (3.x) fetches each bucket's metadata in a background thread on first
# use, and checks again that the bucket exists after every 404, only to label OpenTelemetry
# spans (which this service does not export): a `storage.buckets.get` that the documented
# role (roles/storage.objectUser) may not make, and a request more per 404. Off.
BUCKET_METADATA_SWITCH = "DISABLE_GCS_PYTHON_CLIENT_OTEL_BUCKET_METADATA"


class GCSStorage(Storage):
    def __init__(self, bucket: str, project: str | None = None):
        os.environ.setdefault(BUCKET_METADATA_SWITCH, "true")
        # With STORAGE_EMULATOR_HOST set the client talks to the emulator, anonymously.
        self.client = gcs.Client(project=project)
        self.bucket = self.client.bucket(bucket)

    def _blob(self, key: str) -> gcs.Blob:
        return self.bucket.blob(check_key(key), chunk_size=GCS_CHUNK_SIZE)

    def put_file(self, key: str, path: Path, content_type: str) -> None:
        self._blob(key).upload_from_filename(str(path), content_type=content_type)
        path.unlink()

    @contextlib.contextmanager
    def writer(self, key: str, content_type: str, *, durable: bool = True) -> Iterator[BinaryIO]:
        # Every finalised GCS object is durable; `durable` only matters to local disks.
        sink = self._blob(key).open("wb", content_type=content_type, ignore_flush=True)
        try:
            yield sink
        except BaseException:
            # Cancel the resumable session. A writer merely dropped would be finalised by
            # its close() when garbage-collected: the half-written object would appear.
            with contextlib.suppress(Exception):
                sink.terminate()
            if not sink.closed:
                sink._buffer.close()  # terminate() failed early; close() must not upload now
            raise
        sink.close()

    def open(self, key: str) -> BinaryIO:
        blob = self._blob(key)
        try:
            blob.reload()
        except gexc.NotFound:
            raise ObjectMissing(key) from None
        return blob.open("rb", chunk_size=GCS_CHUNK_SIZE)

    def iter_chunks(self, key: str, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        """Ranged GETs of at most GCS_CHUNK_SIZE, each for no more than is asked.

        `open()`'s reader always fetches a whole chunk: a 10-byte Range request (or a ZIP
        header) would pull 8 MiB out of the bucket.
        """
        blob = self._blob(key)
        end = None if length is None else start + length  # exclusive
        position = start
        while end is None or position < end:
            want = GCS_CHUNK_SIZE if end is None else min(GCS_CHUNK_SIZE, end - position)
            try:
                chunk = blob.download_as_bytes(
                    start=position, end=position + want - 1, checksum=None
                )
            except gexc.NotFound:
                raise ObjectMissing(key) from None
            except gexc.RequestRangeNotSatisfiable:
                return  # at or past the end
            if chunk:
                yield chunk
            position += len(chunk)
            if len(chunk) < want:
                return  # the object ended

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

    def concat(
        self, keys: Sequence[str], dest_key: str, content_type: str, *, scratch: str
    ) -> None:
        """Server-side compose, in rounds of at most 32 sources; no bytes pass through here.

        Intermediates are named under `scratch` (an upload's parts prefix): if this process
        dies between rounds, they go with the parts when the upload is finished or expires.
        """
        dest = self._blob(dest_key)
        dest.content_type = content_type
        if not keys:
            dest.upload_from_string(b"", content_type=content_type)
            return
        sources = [self._blob(key) for key in keys]
        intermediates: list[gcs.Blob] = []
        token = uuid.uuid4().hex[:12]
        try:
            while len(sources) > MAX_COMPOSE_SOURCES:
                merged = []
                for i in range(0, len(sources), MAX_COMPOSE_SOURCES):
                    group = sources[i : i + MAX_COMPOSE_SOURCES]
                    if len(group) == 1:
                        merged.append(group[0])
                        continue
                    step = self._blob(f"{scratch}compose-{token}-{len(intermediates)}")
                    step.content_type = content_type
                    intermediates.append(step)
                    step.compose(group, retry=COMPOSE_RETRY)
                    merged.append(step)
                sources = merged
            dest.compose(sources, retry=COMPOSE_RETRY)
        except gexc.NotFound:
            raise ObjectMissing(dest_key) from None
        finally:
            # Best effort: whatever stays goes with `scratch`.
            for step in intermediates:
                with contextlib.suppress(Exception):
                    step.delete()

    def scan(self, prefix: str) -> Iterator[StoredObject]:
        # The JSON API lists in lexicographic order, a page (1,000 objects) at a time.
        for blob in self.client.list_blobs(
            self.bucket, prefix=prefix, fields="items(name,size,updated),nextPageToken"
        ):
            yield StoredObject(blob.name, int(blob.size or 0), blob.updated)

    def ping(self) -> None:
        self.bucket.reload()
