"""The ceiling of bench/upload.py: a raw ASGI app that takes tus uploads, writing and hashing
each body, and keeping nothing.

`python bench/tus_sink.py DIR PORT` serves it (uvicorn) on 127.0.0.1:PORT, writing in DIR.
"""

from __future__ import annotations

import hashlib
import os
import sys
import uuid

import uvicorn

TUS = {"Tus-Resumable": "1.0.0"}


def sink_app(directory: str):
    """POST /files creates an upload; PATCH /files/{id} appends its body; nothing is kept.

    Each body is written to disk as it arrives and hashed (SHA-256), as a server that checks
    what it receives would; an upload's file is removed once its last byte arrived.
    """
    uploads: dict[str, list[int]] = {}  # id -> [length, offset]

    async def respond(send, status: int, headers: dict[str, str]) -> None:
        if status != 204:
            headers = {**headers, "Content-Length": "0"}
        raw = [(k.encode(), v.encode()) for k, v in {**TUS, **headers}.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": b""})

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        upload_id = scope["path"].removeprefix("/files/")
        if scope["method"] == "POST" and scope["path"] == "/files":
            upload_id = uuid.uuid4().hex
            uploads[upload_id] = [int(headers["upload-length"]), 0]
            await respond(send, 201, {"Location": f"/files/{upload_id}", "Upload-Offset": "0"})
            return
        if scope["method"] != "PATCH" or upload_id not in uploads:
            await respond(send, 404, {})
            return
        length, offset = uploads[upload_id]
        if int(headers["upload-offset"]) != offset:
            await respond(send, 409, {})
            return
        path = os.path.join(directory, upload_id)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        digest = hashlib.sha256()
        try:
            more = True
            while more:
                message = await receive()
                body = message.get("body", b"")
                digest.update(body)
                offset += len(body)
                view = memoryview(body)
                while view:
                    view = view[os.write(fd, view) :]
                more = message.get("more_body", False)
        finally:
            os.close(fd)
        uploads[upload_id][1] = offset
        if offset >= length:
            os.unlink(path)
            del uploads[upload_id]
        await respond(send, 204, {"Upload-Offset": str(offset)})

    return app


if __name__ == "__main__":
    directory, port = sys.argv[1:3]
    uvicorn.run(sink_app(directory), host="127.0.0.1", port=int(port), log_level="warning")
