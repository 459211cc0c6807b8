"""A small client for the Instashare HTTP API (base path /api/v1), one method per endpoint,
and for share links (`{server}/s/{token}`), which need no account.

Every failure comes out as ApiError: an HTTP error carries the status and the problem+json
`detail`; a network failure carries status None and a one-line reason.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import re
from collections.abc import Iterable, Iterator
from importlib import metadata
from typing import Any, Self
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

BASE_PATH = "/api/v1"
TUS_VERSION = "1.0.0"
PAGE_SIZE = 100  # the largest page the API serves
# Generous read timeout: the last PATCH of a big upload waits while the server assembles it.
TIMEOUT = httpx.Timeout(connect=10.0, read=300.0, write=300.0, pool=10.0)
IDEMPOTENT = {"GET", "HEAD", "OPTIONS"}
STALE_CONNECTION = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
# A share link: a server's root URL (perhaps under a path prefix), `/s/`, the link's token.
SHARE_PATH = re.compile(r"(?P<root>.*)/s/(?P<token>[A-Za-z0-9_-]+)/?")


def _version() -> str:
    try:
        return metadata.version("instashare")
    except metadata.PackageNotFoundError:
        return "0"


class ApiError(Exception):
    """A request failed: `status` is the HTTP status, or None when the server was not reached."""

    def __init__(
        self,
        status: int | None,
        detail: str,
        *,
        request_id: str | None = None,
        retry_after: str | None = None,
    ):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.request_id = request_id
        self.retry_after = retry_after  # seconds, when the server says when to ask again


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
    return ApiError(
        response.status_code,
        detail,
        request_id=response.headers.get("X-Request-ID"),
        retry_after=response.headers.get("Retry-After"),
    )


def encode_metadata(values: dict[str, str]) -> str:
    """tus `Upload-Metadata`: `key base64(value)` pairs joined by commas."""
    return ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in values.items()
    )


def _from(start: int, if_range: str | None) -> dict[str, str]:
    """The headers of a download from byte `start`, if the ETag is still `if_range`."""
    if not start:
        return {}
    return {"Range": f"bytes={start}-", **({"If-Range": if_range} if if_range else {})}


def _file_filter(status: str | None, folder: str | None, **params: Any) -> dict[str, Any]:
    """Query parameters for GET /files: files in `status`, in `folder` (an id, `root`)."""
    return {
        **params,
        **({"status": status} if status else {}),
        **({"folder_id": folder} if folder else {}),
    }


def _folder_param(folder_id: str | None, **params: Any) -> dict[str, Any]:
    """Query parameters naming a folder (none for the root)."""
    return {**params, "folder_id": folder_id} if folder_id else params


def share_options(
    *,
    expires_in_days: int | None = None,
    expires_in_hours: int | None = None,
    never_expires: bool = False,
    password: str | None = None,
    max_downloads: int | None = None,
    original: bool = False,
) -> dict[str, Any]:
    """The body of a new link: what it serves, its lifetime, password and download limit."""
    body: dict[str, Any] = {"serves": "original" if original else "zip"}
    if never_expires:
        body["never_expires"] = True
    elif expires_in_hours is not None:
        body["expires_in_hours"] = expires_in_hours
    elif expires_in_days is not None:
        body["expires_in_days"] = expires_in_days
    if password is not None:
        body["password"] = password
    if max_downloads is not None:
        body["max_downloads"] = max_downloads
    return body


class _Client:
    """HTTP to one server: connections, a retry on a stale one, errors as ApiError."""

    def __init__(self, server: str, base_url: str = "", headers: dict[str, str] | None = None):
        self.server = server
        headers = {"User-Agent": f"instashare-cli/{_version()}", **(headers or {})}
        self._http = httpx.Client(base_url=base_url, headers=headers, timeout=TIMEOUT)

    @functools.cached_property
    def _outside(self) -> httpx.Client:
        """For URLs the server sends us to (signed downloads): no header of ours."""
        return httpx.Client(timeout=TIMEOUT)

    def close(self) -> None:
        self._http.close()
        if "_outside" in self.__dict__:
            self._outside.close()

    def __enter__(self) -> Self:
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

    def _pages(self, path: str, params: dict[str, Any]) -> Iterator[dict]:
        """GET a paginated listing's items, following `next_cursor` to the last page."""
        params = dict(params)
        while True:
            page = self._send("GET", path, params=params).json()
            yield from page["items"]
            if not page.get("next_cursor"):
                return
            params["cursor"] = page["next_cursor"]

    @contextlib.contextmanager
    def _stream(self, request: httpx.Request) -> Iterator[Download]:
        """Send `request` and stream its answer's body; ApiError for an error answer.

        A download the server answers at a signed URL (302, 303 to its storage) is fetched
        there, with the request's Range only: none of our credentials leave for it."""
        response = self._transmit(request, stream=True)
        if response.status_code in (302, 303) and "location" in response.headers:
            target = response.url.join(response.headers["location"])
            response.close()
            ranged = {k: v for k, v in request.headers.items() if k.lower() == "range"}
            outside = self._outside.build_request("GET", target, headers=ranged)
            try:
                response = self._outside.send(outside, stream=True)
            except httpx.TransportError as exc:
                raise _network_error(str(target.copy_with(query=None)), exc) from None
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


class Api(_Client):
    """The Instashare API at `server` (its root URL), as the holder of `token` if given."""

    def __init__(self, server: str, token: str | None = None):
        super().__init__(
            server, server + BASE_PATH, {"Authorization": f"Bearer {token}"} if token else None
        )
        self.token = token

    # users

    def register(self, email: str, password: str, invitation: str | None = None) -> dict:
        """POST /users/register (with an invitation's token, if given): the new account."""
        body = {"email": email, "password": password}
        if invitation:
            body["invitation"] = invitation
        return self._send("POST", "/users/register", json=body).json()

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

    def request_password_reset(self, email: str) -> dict:
        """POST /users/password-reset: the same `detail` whether or not there is an account."""
        return self._send("POST", "/users/password-reset", json={"email": email}).json()

    # API tokens

    def create_token(
        self, name: str, scopes: list[str], expires_in_days: int | None = None
    ) -> dict:
        """POST /users/me/tokens: the new token, its secret `token` shown this once."""
        body: dict[str, Any] = {"name": name, "scopes": scopes}
        if expires_in_days is not None:
            body["expires_in_days"] = expires_in_days
        return self._send("POST", "/users/me/tokens", json=body).json()

    def tokens(self) -> list[dict]:
        """GET /users/me/tokens: your API tokens, newest first (no secret in them)."""
        return self._send("GET", "/users/me/tokens").json()["items"]

    def revoke_token(self, token_id: str) -> None:
        """DELETE /users/me/tokens/{id}: the token stops working at once."""
        self._send("DELETE", f"/users/me/tokens/{quote(token_id, safe='')}")

    # files

    def files(
        self,
        *,
        status: str | None = None,
        sort: str = "-created_at",
        folder: str | None = None,
        page_size: int = PAGE_SIZE,
    ) -> Iterator[dict]:
        """GET /files: all your files, or one `folder`'s (an id, or `root`), following
        `next_cursor` to the last page."""
        return self._pages("/files", _file_filter(status, folder, limit=page_size, sort=sort))

    def count_files(self, *, status: str | None = None, folder: str | None = None) -> int:
        """How many files you have (in `status`, in `folder`): one page's `total`."""
        params = _file_filter(status, folder, limit=1)
        return int(self._send("GET", "/files", params=params).json()["total"])

    def file(self, file_id: str) -> tuple[dict, str | None]:
        """GET /files/{id}: the file and its ETag."""
        response = self._send("GET", f"/files/{quote(file_id, safe='')}")
        return response.json(), response.headers.get("ETag")

    def update_file(self, file_id: str, changes: dict[str, Any], etag: str | None = None) -> dict:
        """PATCH /files/{id}: `name` and/or `folder_id` (None: the root); with `etag`, only
        if nobody changed the file since."""
        headers = {"If-Match": etag} if etag else {}
        return self._send(
            "PATCH", f"/files/{quote(file_id, safe='')}", json=changes, headers=headers
        ).json()

    def delete(self, file_id: str) -> None:
        """DELETE /files/{id}."""
        self._send("DELETE", f"/files/{quote(file_id, safe='')}")

    # folders

    def entries(
        self,
        folder_id: str | None,
        *,
        sort: str = "name",
        page_size: int = PAGE_SIZE,
        name: str | None = None,
    ) -> Iterator[dict]:
        """GET /entries: a folder's (None: the root's) subfolders, then its files, each with
        its `kind`, following `next_cursor` to the last page; `name`: only the one so named."""
        params = _folder_param(folder_id, limit=page_size, sort=sort)
        return self._pages("/entries", {**params, "name": name} if name else params)

    def count_entries(self, folder_id: str | None) -> int:
        """How many folders and files a folder holds: one page's `total`."""
        params = _folder_param(folder_id, limit=1)
        return int(self._send("GET", "/entries", params=params).json()["total"])

    def folder(self, folder_id: str) -> dict:
        """GET /folders/{id}: the folder and its `ancestors`, root-most first."""
        return self._send("GET", f"/folders/{quote(folder_id, safe='')}").json()

    def create_folder(self, name: str, parent_id: str | None) -> dict:
        """POST /folders: a new folder in `parent_id` (None: the root)."""
        body: dict[str, Any] = {"name": name}
        if parent_id is not None:
            body["parent_id"] = parent_id
        return self._send("POST", "/folders", json=body).json()

    def update_folder(self, folder_id: str, changes: dict[str, Any]) -> dict:
        """PATCH /folders/{id}: `name` and/or `parent_id` (None: the root)."""
        return self._send("PATCH", f"/folders/{quote(folder_id, safe='')}", json=changes).json()

    def delete_folder(self, folder_id: str) -> None:
        """DELETE /folders/{id}: the folder and everything in it."""
        self._send("DELETE", f"/folders/{quote(folder_id, safe='')}")

    @contextlib.contextmanager
    def download(
        self, file_id: str, *, original: bool, start: int = 0, if_range: str | None = None
    ) -> Iterator[Download]:
        """GET /files/{id}/content, streamed; from byte `start` if the ETag is still `if_range`."""
        headers = _from(start, if_range)
        params = {"format": "original" if original else "zip"}
        request = self._http.build_request(
            "GET", f"/files/{quote(file_id, safe='')}/content", params=params, headers=headers
        )
        with self._stream(request) as download:
            yield download

    def zip_grant(self, items: list[dict[str, str]]) -> dict:
        """POST /download-grants: a short-lived URL for one ZIP of these files and folders
        (`url`, `name`, `pending_count`: the files not ready, left out)."""
        return self._send("POST", "/download-grants", json={"items": items}).json()

    @contextlib.contextmanager
    def download_grant(
        self, url: str, *, start: int = 0, if_range: str | None = None
    ) -> Iterator[Download]:
        """GET a grant's URL, streamed; from byte `start` if the ETag is still `if_range`."""
        request = self._http.build_request("GET", url, headers=_from(start, if_range))
        with self._stream(request) as download:
            yield download

    # share links (the owner's side)

    def create_share(self, file_id: str, **options: Any) -> dict:
        """POST /files/{id}/shares: a link to one file, with its `url` (`options`: see
        `share_options`)."""
        body = share_options(**options)
        return self._send("POST", f"/files/{quote(file_id, safe='')}/shares", json=body).json()

    def create_multi_share(self, items: list[dict[str, str]], **options: Any) -> dict:
        """POST /shares: a link to a folder or to a selection of `items` ({kind, id})."""
        body = {"items": items, **share_options(**options)}
        return self._send("POST", "/shares", json=body).json()

    def shares(self, file_id: str | None = None, *, page_size: int = PAGE_SIZE) -> Iterator[dict]:
        """GET /shares (or /files/{id}/shares), following `next_cursor` to the last page."""
        path = f"/files/{quote(file_id, safe='')}/shares" if file_id else "/shares"
        return self._pages(path, {"limit": page_size})

    def revoke_share(self, share_id: str) -> None:
        """DELETE /shares/{id}."""
        self._send("DELETE", f"/shares/{quote(share_id, safe='')}")

    # direct uploads (bytes straight to the server's bucket; instashare_cli.direct)

    def direct_offer(self) -> dict | None:
        """GET /direct-uploads, asked once: the offer (`chunk_bytes`) when the server takes
        direct uploads, None when it does not (or predates them)."""
        if not hasattr(self, "_direct_offer"):
            try:
                offer = self._send("GET", "/direct-uploads").json()
            except ApiError as exc:
                if exc.status != 404:
                    raise
                offer = {}
            self._direct_offer = offer if offer.get("enabled") else None
        return self._direct_offer

    def direct_start(self, body: dict[str, Any]) -> dict:
        """POST /direct-uploads: the upload (`url`, `session_url`, `chunk_bytes`)."""
        return self._send("POST", "/direct-uploads", json=body).json()

    def direct_complete(self, url: str, crc32: int) -> dict:
        """POST <upload>/complete: the file it became."""
        return self._send(
            "POST", f"{self.server}{url}/complete", json={"crc32": f"{crc32:08x}"}
        ).json()

    # resumable uploads (tus 1.0)

    def _tus(self, method: str, url: str, headers: dict[str, str] | None = None, **kwargs):
        return self._send(
            method, url, headers={"Tus-Resumable": TUS_VERSION, **(headers or {})}, **kwargs
        )

    def unfinished_uploads(self) -> list[dict]:
        """GET /uploads: your unfinished resumable uploads, newest first (the last 1000)."""
        return self._send("GET", "/uploads", params={"limit": 1000}).json()["items"]

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


def share_link(text: str) -> tuple[str, str] | None:
    """(the server's root URL, the token) if `text` is a share link, `http(s)://…/s/<token>`."""
    parts = urlsplit(text.strip())
    match = SHARE_PATH.fullmatch(parts.path)
    if parts.scheme.lower() not in {"http", "https"} or not parts.netloc or not match:
        return None
    root = urlunsplit((parts.scheme.lower(), parts.netloc, match["root"], "", ""))
    return root, match["token"]


class ShareLink(_Client):
    """A share link, used as anyone who has it: no account, and no token ever sent."""

    def __init__(self, url: str):
        found = share_link(url)
        if found is None:
            raise ValueError(f"{url!r} is not a share link")
        root, token = found
        super().__init__(root)
        self.url = f"{root}/s/{token}"
        self.password: str | None = None

    def _password_headers(self) -> dict[str, str]:
        if self.password is None:
            return {}
        if self.password.isascii():
            return {"X-Share-Password": self.password}
        # Header values travel as Latin-1; Basic credentials are base64 of UTF-8, so a
        # password in any script arrives as typed.
        credentials = base64.b64encode(f":{self.password}".encode()).decode()
        return {"Authorization": f"Basic {credentials}"}

    def metadata(self) -> dict:
        """GET /s/{token}: what the link shares (`name`, `size`, `status`, `has_password`)."""
        headers = {"Accept": "application/json", **self._password_headers()}
        return self._send("GET", self.url, headers=headers).json()

    @contextlib.contextmanager
    def download(self, *, start: int = 0, if_range: str | None = None) -> Iterator[Download]:
        """GET /s/{token}/content, streamed; from byte `start` if the ETag is still `if_range`."""
        headers = {**self._password_headers(), **_from(start, if_range)}
        request = self._http.build_request("GET", f"{self.url}/content", headers=headers)
        with self._stream(request) as download:
            yield download

    @contextlib.contextmanager
    def download_all(self, *, start: int = 0, if_range: str | None = None) -> Iterator[Download]:
        """GET /s/{token}/archive: a multi-file link's ZIP of all its ready files, streamed;
        from byte `start` if the ETag is still `if_range`."""
        headers = {**self._password_headers(), **_from(start, if_range)}
        request = self._http.build_request("GET", f"{self.url}/archive", headers=headers)
        with self._stream(request) as download:
            yield download


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
