"""Google Cloud Storage through google-cloud-storage (or an emulator via STORAGE_EMULATOR_HOST)."""

from __future__ import annotations

import contextlib
import datetime as dt
import http
import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import google.auth
import google.auth.credentials
import google.auth.iam
import google.auth.transport.requests
from google.api_core import exceptions as gexc
from google.auth.exceptions import GoogleAuthError, TransportError
from google.cloud import storage as gcs
from google.cloud.storage.exceptions import DataCorruption, InvalidResponse
from google.cloud.storage.fileio import BlobReader
from google.cloud.storage.retry import DEFAULT_RETRY
from google.oauth2 import service_account
from requests import exceptions as rexc

from app.storage.base import (
    BackendUnavailable,
    ObjectExists,
    ObjectMissing,
    Storage,
    StoredObject,
    check_key,
)
from app.storage.direct import DirectSessions, ObjectFacts

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

# The readiness probe: one object listing under a prefix that holds nothing (keys begin with
# a user id), one attempt, a short timeout. Object-level, so `roles/storage.objectUser`
# (which has no `storage.buckets.get`) is enough.
PROBE_PREFIX = "instashare-ready-probe/"
PROBE_TIMEOUT_SECONDS = 2.0

# What the library raises once its retries are spent on a storage that does not answer
# as it should (5xx, 429, timeouts, dropped connections, a checksum that did not match).
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    gexc.ServerError,
    gexc.TooManyRequests,
    gexc.RetryError,
    DataCorruption,
    TransportError,
    rexc.ConnectionError,
    rexc.Timeout,
    rexc.ChunkedEncodingError,
    ConnectionError,
    TimeoutError,
)
_RETRYABLE_STATUS = {408, 429} | set(range(500, 600))


def _precondition_failed(exc: BaseException) -> bool:
    if isinstance(exc, gexc.PreconditionFailed):
        return True
    response = getattr(exc, "response", None)
    return isinstance(exc, InvalidResponse) and (
        getattr(response, "status_code", None) == http.HTTPStatus.PRECONDITION_FAILED
    )


def _unavailable(exc: BaseException) -> bool:
    if isinstance(exc, InvalidResponse):
        return getattr(exc.response, "status_code", None) in _RETRYABLE_STATUS
    return isinstance(exc, _UNAVAILABLE)


@contextlib.contextmanager
def _translated(key: str) -> Iterator[None]:
    """The library's errors for a storage that is down, as BackendUnavailable."""
    try:
        yield
    except gexc.NotFound:
        raise ObjectMissing(key) from None
    except Exception as exc:
        if _unavailable(exc):
            raise BackendUnavailable(f"{key}: {type(exc).__name__}: {exc}") from exc
        raise


class _Reader(BlobReader):
    """The library's reader, raising ObjectMissing and BackendUnavailable as the rest do."""

    def __init__(self, blob: gcs.Blob, **kwargs):
        super().__init__(blob, **kwargs)
        self._key = blob.name

    def read(self, size: int | None = -1) -> bytes:
        with _translated(self._key):
            return super().read(-1 if size is None else size)

    def read1(self, size: int = -1) -> bytes:
        with _translated(self._key):
            return super().read1(size)

    def seek(self, pos: int, whence: int = 0) -> int:
        with _translated(self._key):
            return super().seek(pos, whence)


class IAMSigner(google.auth.credentials.Signing):
    """Signs as `account` through the IAM Credentials API's signBlob, authorised by the
    runtime's own default credentials (Cloud Run's identity: no key file). One request to
    IAM per signed URL; the access token is refreshed by google-auth when it expires."""

    def __init__(self, account: str):
        self.account = account
        self._iam: google.auth.iam.Signer | None = None

    def _signer(self) -> google.auth.iam.Signer:
        if self._iam is None:  # at first use: the service starts without asking Google
            credentials, _ = google.auth.default(
                scopes=["https://www.googleapis.com/auth/cloud-platform"]
            )
            self._iam = google.auth.iam.Signer(
                google.auth.transport.requests.Request(), credentials, self.account
            )
        return self._iam

    def sign_bytes(self, message: bytes) -> bytes:
        try:
            return self._signer().sign(message)
        except GoogleAuthError as exc:  # IAM (or the metadata server) down or refusing
            raise BackendUnavailable(f"signBlob as {self.account}: {exc}") from exc

    @property
    def signer_email(self) -> str:
        return self.account

    @property
    def signer(self) -> google.auth.iam.Signer:
        return self._signer()


class GCSStorage(Storage):
    """`deadline`: how long one call keeps retrying (503, 429, timeouts) before it raises
    BackendUnavailable; `timeout`: how long one HTTP request may wait for a connection or
    for its next bytes. The library's own 120 s deadline outlasts any client's patience."""

    def __init__(
        self,
        bucket: str,
        project: str | None = None,
        *,
        deadline: float = 20.0,
        timeout: float = 10.0,
        signing_key: str | None = None,
        signing_account: str | None = None,
    ):
        os.environ.setdefault(BUCKET_METADATA_SWITCH, "true")
        # Read once, at start: a key that does not load stops the service there.
        self.signer: google.auth.credentials.Signing | None = None
        if signing_key:
            self.signer = service_account.Credentials.from_service_account_file(signing_key)
        elif signing_account:
            self.signer = IAMSigner(signing_account)
        # With STORAGE_EMULATOR_HOST set the client talks to the emulator, anonymously.
        self.client = gcs.Client(project=project)
        self.bucket = self.client.bucket(bucket)
        self.retry = DEFAULT_RETRY.with_timeout(deadline)
        self.timeout = timeout

    def _blob(self, key: str, generation: int | None = None) -> gcs.Blob:
        return self.bucket.blob(check_key(key), chunk_size=GCS_CHUNK_SIZE, generation=generation)

    def put_file(self, key: str, path: Path, content_type: str) -> None:
        with _translated(key):
            self._blob(key).upload_from_filename(
                str(path), content_type=content_type, retry=self.retry, timeout=self.timeout
            )
        path.unlink()

    @contextlib.contextmanager
    def writer(
        self, key: str, content_type: str, *, durable: bool = True, create_only: bool = False
    ) -> Iterator[BinaryIO]:
        # Every finalised GCS object is durable; `durable` only matters to local disks.
        # create_only: `ifGenerationMatch=0`, which GCS checks when the object is finalised.
        precondition = {"if_generation_match": 0} if create_only else {}
        sink = self._blob(key).open(
            "wb",
            content_type=content_type,
            ignore_flush=True,
            retry=self.retry,
            timeout=self.timeout,
            **precondition,
        )
        try:
            try:
                yield sink
            except BaseException:
                # Cancel the resumable session. A writer merely dropped would be finalised by
                # its close() when garbage-collected: the half-written object would appear.
                with contextlib.suppress(Exception):
                    sink.terminate()
                if not sink.closed:
                    sink._buffer.close()  # terminate() failed early; close() must not upload
                raise
            sink.close()
        except Exception as exc:
            # The library's errors, from the block's writes (which upload full chunks) or
            # from close(), in the terms of the Storage interface.
            if create_only and _precondition_failed(exc):
                raise ObjectExists(key) from exc
            if _unavailable(exc):
                raise BackendUnavailable(f"{key}: {type(exc).__name__}: {exc}") from exc
            raise

    def open(self, key: str, *, generation: int | None = None) -> BinaryIO:
        blob = self._blob(key, generation)
        with _translated(key):
            blob.reload(retry=self.retry, timeout=self.timeout)
        return _Reader(blob, chunk_size=GCS_CHUNK_SIZE, retry=self.retry, timeout=self.timeout)

    def iter_chunks(
        self,
        key: str,
        start: int = 0,
        length: int | None = None,
        *,
        generation: int | None = None,
    ) -> Iterator[bytes]:
        """Ranged GETs of at most GCS_CHUNK_SIZE, each for no more than is asked.

        `open()`'s reader always fetches a whole chunk: a 10-byte Range request (or a ZIP
        header) would pull 8 MiB out of the bucket. With `generation` every GET names it,
        so the chunks cannot mix two versions of the object.
        """
        blob = self._blob(key, generation)
        end = None if length is None else start + length  # exclusive
        position = start
        while end is None or position < end:
            want = GCS_CHUNK_SIZE if end is None else min(GCS_CHUNK_SIZE, end - position)
            try:
                with _translated(key):
                    chunk = blob.download_as_bytes(
                        start=position,
                        end=position + want - 1,
                        checksum=None,
                        retry=self.retry,
                        timeout=self.timeout,
                    )
            except gexc.RequestRangeNotSatisfiable:
                return  # at or past the end
            if chunk:
                yield chunk
            position += len(chunk)
            if len(chunk) < want:
                return  # the object ended

    def _stat(self, key: str) -> gcs.Blob:
        with _translated(key):
            blob = self.bucket.get_blob(check_key(key), retry=self.retry, timeout=self.timeout)
        if blob is None:
            raise ObjectMissing(key)
        return blob

    def size(self, key: str) -> int:
        return int(self._stat(key).size or 0)

    def generation(self, key: str) -> int | None:
        return self._stat(key).generation

    def delete(self, key: str) -> None:
        with contextlib.suppress(ObjectMissing), _translated(key):
            self._blob(key).delete(retry=self.retry, timeout=self.timeout)

    def list(self, prefix: str) -> Iterator[str]:
        with _translated(prefix):
            for blob in self.client.list_blobs(
                self.bucket, prefix=prefix, retry=self.retry, timeout=self.timeout
            ):
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

    def signed_url(
        self,
        key: str,
        *,
        generation: int | None,
        disposition: str,
        content_type: str,
        seconds: int,
    ) -> str | None:
        if self.signer is None:
            return None
        # V4, signed here with the key (no request to Google) or by IAM signBlob as the
        # signing account, for the endpoint the client
        # talks to: storage.googleapis.com, or the emulator (whose URL tests can follow).
        url: str = self._blob(key).generate_signed_url(
            version="v4",
            expiration=dt.timedelta(seconds=seconds),
            method="GET",
            generation=generation,
            response_disposition=disposition,
            response_type=content_type,
            credentials=self.signer,
            api_access_endpoint=self.api_origin,
        )
        return url

    @property
    def api_origin(self) -> str:
        """`scheme://host[:port]` of the JSON API the client calls (the emulator's, with
        STORAGE_EMULATOR_HOST): where session and signed URLs point."""
        parts = urlsplit(self.client._connection.API_BASE_URL)
        return f"{parts.scheme}://{parts.netloc}"

    def direct_sessions(self) -> DirectSessions:
        return _Sessions(self)

    def scan(self, prefix: str) -> Iterator[StoredObject]:
        # The JSON API lists in lexicographic order, a page (1,000 objects) at a time.
        for blob in self.client.list_blobs(
            self.bucket, prefix=prefix, fields="items(name,size,updated),nextPageToken"
        ):
            yield StoredObject(blob.name, int(blob.size or 0), blob.updated)

    def ping(self) -> None:
        """One object listing, one attempt, a short timeout (see PROBE_PREFIX)."""
        listing = self.client.list_blobs(
            self.bucket,
            prefix=PROBE_PREFIX,
            max_results=1,
            retry=None,
            timeout=PROBE_TIMEOUT_SECONDS,
        )
        next(iter(listing.pages), None)


class _Sessions:
    """GCS resumable upload sessions handed to clients (app.storage.direct)."""

    def __init__(self, storage: GCSStorage):
        self.storage = storage

    @property
    def origin(self) -> str:
        return self.storage.api_origin

    def open_session(self, key: str, *, size: int, content_type: str, origin: str | None) -> str:
        # X-Upload-Content-Length binds the session to `size` on GCS; `if_generation_match=0`
        # keeps it from replacing an object already there; the Origin it was opened with is
        # the one GCS answers CORS requests on the session URL for.
        blob = self.storage._blob(key)
        with _translated(key):
            url: str = blob.create_resumable_upload_session(
                content_type=content_type,
                size=size,
                origin=origin,
                if_generation_match=0,
                timeout=self.storage.timeout,
                retry=self.storage.retry,
            )
        return url

    def cancel_session(self, url: str) -> None:
        # GCS answers 499 once it cancelled, 404 or 410 for a session gone already; the
        # emulator has no such route (405). None of them is worth failing a cancel over:
        # an unfinished session stores nothing, and it expires by itself within a week.
        # The session URL is its own credential: no token goes with it. Through urllib, not
        # the client's session: urllib3 logs every URL it requests (at DEBUG), and the
        # errors of both name it; raised without them, the capability stays out of the logs.
        request = urllib.request.Request(url, method="DELETE")  # noqa: S310 - GCS's own URL (its hash was checked)
        try:
            with urllib.request.urlopen(request, timeout=self.storage.timeout):  # noqa: S310
                pass
        except urllib.error.HTTPError:
            pass  # 499 (cancelled), 404 or 410 (gone), 405 (the emulator)
        except Exception as exc:
            raise BackendUnavailable(f"cancelling a session: {type(exc).__name__}") from None

    def facts(self, key: str) -> ObjectFacts | None:
        try:
            blob = self.storage._stat(key)
        except ObjectMissing:
            return None
        return ObjectFacts(int(blob.size or 0), blob.crc32c, blob.md5_hash)
