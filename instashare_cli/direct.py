"""Direct uploads: the bytes go straight to the server's bucket, through a GCS resumable
session the API opens for this one file (the server says whether it offers them).

The session URL is saved (in the same slot as a tus upload's URL) before the first byte
goes: a run cut off anywhere asks the session how much it has (`Content-Range: bytes */N`)
and sends the rest, so at most the chunk under way is sent twice. The session gets no
token of ours: its URL is its own credential.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from instashare_cli.api import TIMEOUT, Api, ApiError

if TYPE_CHECKING:
    from instashare_cli.transfer import Advanced, Slot, Started, Uploaded

SAVED = "direct "  # a slot's value for a direct upload: SAVED + API URL + " " + session URL
MAX_RETRIES = 2  # a chunk that fails this often in a row (each time asking where it stands)
GONE = (404, 410)
# tus metadata, as the callers give it, to the direct upload's fields
FIELDS = {"folderId": "folder_id", "relativePath": "relative_path", "onConflict": "on_conflict"}


def _received(http: httpx.Client, session: str, size: int) -> int | None:
    """How many bytes the session holds; None once it is gone (expired, cancelled)."""
    return _holds(http.put(session, headers={"Content-Range": f"bytes */{size}"}), size)


def _holds(answer: httpx.Response, size: int) -> int | None:
    """How many bytes a session's answer says it holds (all of them once it finished)."""
    if answer.status_code in GONE:
        return None
    if answer.status_code in (200, 201):
        return size
    if answer.status_code != 308:
        raise ApiError(answer.status_code, f"the storage answered {answer.status_code}")
    have = answer.headers.get("Range")  # "bytes=0-N"
    return int(have.rsplit("-", 1)[1]) + 1 if have else 0


def _crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as source:
        while block := source.read(1024 * 1024):
            crc = zlib.crc32(block, crc)
    return crc


def upload(
    api: Api,
    path: Path,
    *,
    name: str,
    slot: Slot,
    started: Started,
    progress: Advanced,
    metadata: dict[str, str] | None,
    chunk_bytes: int,
) -> Uploaded:
    """Upload `path` as `name` straight to storage, resuming the direct upload that an
    earlier run left in `slot`."""
    from instashare_cli.transfer import Uploaded, _read_range, _sent

    size = path.stat().st_size
    saved = slot.get()
    offset: int | None = None
    resumed_at = None
    with httpx.Client(timeout=TIMEOUT) as http:
        if saved is not None and saved.startswith(SAVED):
            url, session = saved[len(SAVED) :].split(" ", 1)
            offset = resumed_at = _received(http, session, size)
            if offset is None:
                slot.drop()  # the session is gone: start over
        if offset is None:
            body = {"name": name, "size": size}
            for key, value in (metadata or {}).items():
                if key in FIELDS:
                    body[FIELDS[key]] = value
            made = api.direct_start(body)
            url, session, offset = made["url"], made["session_url"], 0
            slot.put(f"{SAVED}{url} {session}")
        started(offset, size)
        retries = 0
        with open(path, "rb") as source:
            while offset < size:
                length = min(chunk_bytes, size - offset)
                end = offset + length - 1
                try:
                    answer = http.put(
                        session,
                        content=_sent(_read_range(source, offset, length), offset, progress),
                        headers={
                            "Content-Length": str(length),
                            "Content-Range": f"bytes {offset}-{end}/{size}",
                        },
                    )
                    got = _holds(answer, size)
                    retries = 0
                except (httpx.TransportError, ApiError):
                    if retries >= MAX_RETRIES:
                        raise
                    retries += 1
                    got = _received(http, session, size)  # where to go on from
                if got is None:
                    slot.drop()
                    raise ApiError(410, "the upload's session expired; run the command again")
                offset = got
                progress(offset)
    made_file = api.direct_complete(url, _crc32(path))
    slot.drop()
    return Uploaded(made_file["id"], size, resumed_at)
