"""A small client for the Instashare HTTP API (base path /api/v1), one method per endpoint.

Every failure comes out as ApiError: an HTTP error carries the status and the problem+json
`detail`; a network failure carries status None and a one-line reason.
"""

from __future__ import annotations

import base64
import contextlib
import re
from collections.abc import Iterable, Iterator
from importlib import metadata
from typing import Any
from urllib.parse import quote

import httpx

BASE_PATH = "/api/v1"
TUS_VERSION = "1.0.0"
PAGE_SIZE = 100  # the largest page the API serves
# Generous read timeout: the last PATCH of a big upload waits while the server assembles it.
TIMEOUT = httpx.Timeout(connect=10.0, read=300.0, write=300.0, pool=10.0)
IDEMPOTENT = {"GET", "HEAD", "OPTIONS"}
STALE_CONNECTION = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


def _version() -> str:
    try:
        return metadata.version("instashare")
    except metadata.PackageNotFoundError:
        return "0"


class ApiError(Exception):
    """A request failed: `status` is the HTTP status, or None when the server was not reached."""

    def __init__(self, status: int | None, detail: str, *, request_id: str | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.request_id = request_id


def _reason(exc: Exception) -> str:
    """`[Errno 111] Connection refused` → `connection refused`."""
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", str(exc).strip()).rstrip(".")
    if not text:
        return type(exc).__name__
    return text[0].lower() + text[1:]


def _network_error(server: str, exc: httpx.TransportError) -> ApiError:
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return ApiError(None, f"cannot reach {server}: {_reason(exc)}")
    if isinstance(exc, httpx.TimeoutException):
        return ApiError(None, f"{server} did not answer in time")
    return ApiError(None, f"lost the connection to {server}: {_reason(exc)}")


def _problem(response: httpx.Response) -> ApiError:
    """The ApiError for an error response: its problem+json `detail`, or its status line."""
    detail = ""
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        body = response.json() if response.content else None
        if isinstance(body, dict):
            detail = str(body.get("detail") or body.get("title") or "")
    if not detail:
        detail = f"the server answered {response.status_code} {response.reason_phrase}".strip()
    return ApiError(response.status_code, detail, request_id=response.headers.get("X-Request-ID"))


def encode_metadata(values: dict[str, str]) -> str:
    """tus `Upload-Metadata`: `key base64(value)` pairs joined by commas."""
    return ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in values.items()
    )


class Api:
    """The Instashare API at `server` (its root URL), as the holder of `token` if given."""

    def __init__(self, server: str, token: str | None = None):
        self.server = server
        self.token = token
        headers = {"User-Agent": f"instashare-cli/{_version()}"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=server + BASE_PATH, headers=headers, timeout=TIMEOUT)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _transmit(self, request: httpx.Request, *, stream: bool = False) -> httpx.Response:
        """Send `request`; a GET or HEAD that meets a dropped connection is tried once more.

        A server closes idle kept-alive connections (gunicorn after 2 s): a request sent on
        one just as it closes fails without having been read, and a fresh one succeeds.
        """
        retry = request.method in IDEMPOTENT
        while True:
            try:
                return self._http.send(request, stream=stream)
            except STALE_CONNECTION as exc:
                if not retry:
                    raise _network_error(self.server, exc) from None
                retry = False
            except httpx.TransportError as exc:
                raise _network_error(self.server, exc) from None

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        response = self._transmit(self._http.build_request(method, url, **kwargs))
        if response.status_code >= 400:
            raise _problem(response)
        return response

    # users

    def register(self, email: str, password: str) -> dict:
        """POST /users/register: the new account."""
        return self._send(
            "POST", "/users/register", json={"email": email, "password": password}
        ).json()

    def login(self, email: str, password: str) -> dict:
        """POST /users/login: `access_token`, `expires_in`."""
        return self._send(
            "POST", "/users/login", json={"email": email, "password": password}
        ).json()

    def me(self) -> dict:
        """GET /users/me: the account and its `usage`."""
        return self._send("GET", "/users/me").json()

    def logout(self) -> None:
        """POST /users/logout: the server stops taking this client's token."""
        self._send("POST", "/users/logout")

    def change_password(self, current: str, new: str) -> dict:
        """POST /users/me/password: a token for a new session (every other one ends)."""
        return self._send(
            "POST",
            "/users/me/password",
            json={"current_password": current, "new_password": new},
        ).json()

    # files

    def files(
        self, *, status: str | None = None, sort: str = "-created_at", page_size: int = PAGE_SIZE
    ) -> Iterator[dict]:
        """GET /files, following `next_cursor` to the last page."""
        params: dict[str, Any] = {"limit": page_size, "sort": sort}
        if status:
            params["status"] = status
        while True:
            page = self._send("GET", "/files", params=params).json()
            yield from page["items"]
            if not page.get("next_cursor"):
                return
            params["cursor"] = page["next_cursor"]

    def count_files(self, *, status: str | None = None) -> int:
        """How many files you have (in `status`): one page's `total`, whatever the count."""
        params: dict[str, Any] = {"limit": 1}
        if status:
            params["status"] = status
        return int(self._send("GET", "/files", params=params).json()["total"])

    def file(self, file_id: str) -> tuple[dict, str | None]:
        """GET /files/{id}: the file and its ETag."""
        response = self._send("GET", f"/files/{quote(file_id, safe='')}")
        return response.json(), response.headers.get("ETag")

    def rename(self, file_id: str, name: str, etag: str | None = None) -> dict:
        """PATCH /files/{id}; with `etag`, only if nobody changed the file since."""
        headers = {"If-Match": etag} if etag else {}
        return self._send(
            "PATCH", f"/files/{quote(file_id, safe='')}", json={"name": name}, headers=headers
        ).json()

    def delete(self, file_id: str) -> None:
        """DELETE /files/{id}."""
        self._send("DELETE", f"/files/{quote(file_id, safe='')}")

    @contextlib.contextmanager
    def download(
        self, file_id: str, *, original: bool, start: int = 0, if_range: str | None = None
    ) -> Iterator[Download]:
        """GET /files/{id}/content, streamed; from byte `start` if the ETag is still `if_range`."""
        headers = {}
        if start:
            headers["Range"] = f"bytes={start}-"
            if if_range:
                headers["If-Range"] = if_range
        params = {"format": "original" if original else "zip"}
        request = self._http.build_request(
            "GET", f"/files/{quote(file_id, safe='')}/content", params=params, headers=headers
        )
        response = self._transmit(request, stream=True)
        try:
            if response.status_code >= 400:
                try:
                    response.read()
                except httpx.TransportError as exc:
                    raise _network_error(self.server, exc) from None
                raise _problem(response)
            yield Download(self.server, response)
        finally:
            response.close()

    # resumable uploads (tus 1.0)

    def _tus(self, method: str, url: str, headers: dict[str, str] | None = None, **kwargs):
        return self._send(
            method, url, headers={"Tus-Resumable": TUS_VERSION, **(headers or {})}, **kwargs
        )

    def upload_create(self, length: int, metadata: dict[str, str]) -> str:
        """POST /uploads: the new upload's absolute URL."""
        response = self._tus(
            "POST",
            "/uploads",
            {"Upload-Length": str(length), "Upload-Metadata": encode_metadata(metadata)},
        )
        url = response.url.join(response.headers.get("Location", ""))
        # The token goes wherever this URL points: only ever to this server's API.
        home = httpx.URL(f"{self.server}{BASE_PATH}/uploads/")
        if (url.scheme, url.host, url.port) != (home.scheme, home.host, home.port) or (
            not url.path.startswith(home.path)
        ):
            raise ApiError(None, f"{self.server} sent an unexpected upload location {url}")
        return str(url)

    def upload_offset(self, url: str) -> int:
        """HEAD an upload: how many of its bytes the server has."""
        return int(self._tus("HEAD", url).headers["Upload-Offset"])

    def upload_append(
        self, url: str, offset: int, body: Iterable[bytes], length: int, sha1: bytes
    ) -> int:
        """PATCH `length` bytes at `offset` (with their SHA-1 checked); the new offset."""
        response = self._tus(
            "PATCH",
            url,
            {
                "Content-Type": "application/offset+octet-stream",
                "Content-Length": str(length),
                "Upload-Offset": str(offset),
                "Upload-Checksum": f"sha1 {base64.b64encode(sha1).decode()}",
            },
            content=body,
        )
        return int(response.headers["Upload-Offset"])

    def upload_cancel(self, url: str) -> None:
        """DELETE an upload (tus termination)."""
        self._tus("DELETE", url)


class Download:
    """A download response being streamed: its status, size, ETag and bytes."""

    def __init__(self, server: str, response: httpx.Response):
        self._server = server
        self._response = response
        self.status = response.status_code
        self.etag = response.headers.get("ETag")
        self.total = self._total(response)

    @staticmethod
    def _total(response: httpx.Response) -> int | None:
        """The whole representation's size: from `Content-Range` on a 206."""
        content_range = response.headers.get("Content-Range", "")
        match = re.fullmatch(r"bytes \d+-\d+/(\d+)", content_range.strip())
        if match:
            return int(match.group(1))
        length = response.headers.get("Content-Length")
        return int(length) if length and length.isdigit() else None

    def chunks(self, size: int = 1024 * 1024) -> Iterator[bytes]:
        try:
            yield from self._response.iter_bytes(size)
        except httpx.TransportError as exc:
            raise _network_error(self._server, exc) from None
