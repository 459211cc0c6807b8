"""Moving bytes: resumable uploads over tus and ranged, resumable downloads.

Neither direction holds a whole file in memory: uploads read one block at a time from
disk, downloads write each block as it arrives. Progress is reported through callbacks
so the Click commands decide how to show it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import mimetypes
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from instashare_cli import direct
from instashare_cli.api import Api, ApiError, Download

CHUNK_SIZE = 8 * 1024 * 1024  # bytes per PATCH
BLOCK_SIZE = 256 * 1024  # bytes per read from disk or from the network
# A chunk that fails this many times in a row (a 409: the offset moved under us; or a lost
# connection) ends the run; each retry first asks the server where the upload stands.
MAX_CHUNK_RETRIES = 2

# started(done, total) once the starting point is known, then progress(done) as bytes move.
Started = Callable[[int, int], None]
Advanced = Callable[[int], None]


class OpenDownload(Protocol):
    """Starts a download from byte `start` if the ETag is still `if_range` (Api, ShareLink)."""

    def __call__(self, *, start: int, if_range: str | None) -> AbstractContextManager[Download]: ...


class TransferError(Exception):
    """A transfer went wrong on this side: the bytes do not check out."""


@dataclass(frozen=True)
class Uploaded:
    """A finished upload: the file's id (the upload's id) and where it resumed from."""

    file_id: str
    size: int
    resumed_at: int | None


def _read_range(source: BinaryIO, start: int, length: int) -> Iterator[bytes]:
    source.seek(start)
    left = length
    while left > 0:
        block = source.read(min(BLOCK_SIZE, left))
        if not block:
            raise TransferError(f"{source.name} shrank while it was being uploaded")
        left -= len(block)
        yield block


def _sha1(source: BinaryIO, start: int, length: int) -> bytes:
    digest = hashlib.sha1(usedforsecurity=False)
    for block in _read_range(source, start, length):
        digest.update(block)
    return digest.digest()


def _sent(blocks: Iterator[bytes], start: int, progress: Advanced) -> Iterator[bytes]:
    done = start
    for block in blocks:
        yield block
        done += len(block)
        progress(done)


class Slot(Protocol):
    """Where one file's unfinished upload URL is kept between runs (UploadState, a tree's
    journal)."""

    def get(self) -> str | None: ...

    def put(self, url: str) -> None: ...

    def drop(self) -> None: ...


def upload(
    api: Api,
    path: Path,
    *,
    name: str,
    slot: Slot,
    started: Started,
    progress: Advanced,
    metadata: dict[str, str] | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> Uploaded:
    """Upload `path` as `name` (with more tus `metadata`), resuming the upload that an
    earlier run left unfinished: straight to storage when the server offers it
    (instashare_cli.direct), else over tus.

    The upload URL is saved before the first byte goes out and dropped once the last one
    lands, so a run that dies anywhere in between is picked up by the next one. (Even a
    small file is not sent in its creation request: a run cut off there would leave an
    upload whose URL it never learnt, holding the file's name until it expires.)
    """
    url = slot.get()
    offer = api.direct_offer() if url is None or url.startswith(direct.SAVED) else None
    if offer is not None:
        return direct.upload(
            api,
            path,
            name=name,
            slot=slot,
            started=started,
            progress=progress,
            metadata=metadata,
            # A chunk size given (a multiple of 256 KiB, as GCS takes them) wins.
            chunk_bytes=chunk_size if chunk_size % (256 * 1024) == 0 else offer["chunk_bytes"],
        )
    size = path.stat().st_size
    offset = 0
    resumed_at = None
    if url is not None:
        try:
            offset = resumed_at = api.upload_offset(url)
        except ApiError as exc:
            if exc.status not in (404, 410):
                raise
            slot.drop()  # expired or cancelled on the server: start over
            url = None
    if url is None:
        filetype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        described = {"filename": name, "filetype": filetype, **(metadata or {})}
        url = api.upload_create(size, described)
        slot.put(url)
    with open(path, "rb") as source:
        started(offset, size)
        retries = 0
        while offset < size:
            length = min(chunk_size, size - offset)
            checksum = _sha1(source, offset, length)
            body = _sent(_read_range(source, offset, length), offset, progress)
            try:
                offset = api.upload_append(url, offset, body, length, checksum)
            except ApiError as exc:
                if exc.status not in (None, 409) or retries >= MAX_CHUNK_RETRIES:
                    raise
                retries += 1
                offset = api.upload_offset(url)
            else:
                retries = 0
            progress(offset)
    slot.drop()
    return Uploaded(_upload_id(url), size, resumed_at)


def _upload_id(url: str) -> str:
    """The upload's id, the last part of its URL: the file it becomes has the same."""
    return url.rstrip("/").rsplit("/", 1)[-1]


def part_paths(target: Path) -> tuple[Path, Path]:
    """Where a download to `target` is kept until it is whole, and its ETag beside it."""
    return target.with_name(target.name + ".part"), target.with_name(target.name + ".part.etag")


def download(
    open_download: OpenDownload,
    target: Path,
    *,
    sha256: str | None,
    started: Started,
    progress: Advanced,
) -> int | None:
    """Download to `target`, resuming `<target>.part`; the offset it resumed at.

    A partial download is continued with `Range` and `If-Range` (the ETag it started
    with): the server sends the rest (206) only if the content has not changed since, and
    everything (200) otherwise. With `sha256`, the finished bytes are checked against it.
    """
    part, etag_path = part_paths(target)
    have = part.stat().st_size if part.exists() else 0
    etag = etag_path.read_text(encoding="utf-8").strip() if etag_path.exists() else ""
    if not etag:
        have = 0  # without the ETag the bytes on disk cannot be trusted to match
    fetch = functools.partial(
        _fetch, open_download, target, sha256=sha256, started=started, progress=progress
    )
    try:
        return fetch(have, etag)
    except ApiError as exc:
        if exc.status != 416 or not have:
            raise
        # The part is longer than the content, so it belongs to something else: start over.
        return fetch(0, "")


def _fetch(
    open_download: OpenDownload,
    target: Path,
    have: int,
    etag: str,
    *,
    sha256: str | None,
    started: Started,
    progress: Advanced,
) -> int | None:
    part, etag_path = part_paths(target)
    digest = hashlib.sha256() if sha256 else None
    with open_download(start=have, if_range=etag or None) as response:
        resumed = response.status == 206
        done = have if resumed else 0
        total = response.total if response.total is not None else done
        if resumed and digest is not None:
            with open(part, "rb") as existing:
                for block in iter(lambda: existing.read(BLOCK_SIZE), b""):
                    digest.update(block)
        etag_path.write_text(response.etag or "", encoding="utf-8")
        started(done, total)
        with open(part, "ab" if resumed else "wb") as out:
            for block in response.chunks(BLOCK_SIZE):
                out.write(block)
                if digest is not None:
                    digest.update(block)
                done += len(block)
                progress(done)
    if response.total is not None and done != response.total:
        raise TransferError(f"expected {response.total} bytes but {done} arrived; run again")
    if digest is not None and digest.hexdigest() != sha256:
        for stale in (part, etag_path):
            with contextlib.suppress(OSError):
                stale.unlink()
        raise TransferError("the downloaded bytes do not match the file's SHA-256; run again")
    os.replace(part, target)
    with contextlib.suppress(OSError):
        etag_path.unlink()
    return have if resumed else None
