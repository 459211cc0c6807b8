"""Where the client keeps its state: the server, tokens and unfinished uploads.

Everything lives in one directory, `$XDG_CONFIG_HOME/instashare/` (by default
`~/.config/instashare/`), readable by its owner only: `config.json` holds the default
server and one token per server, `uploads.json` maps a local file to the tus upload URL
that an interrupted `instashare upload` resumes, `downloads.json` a share link to the file
an interrupted `instashare get URL` was saving it to.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

DEFAULT_SERVER = "http://127.0.0.1:8000"
# The server forgets an unfinished upload after a day by default; a week covers any setting
# an operator is likely to choose, and keeps the state file from growing without end.
UPLOAD_STATE_MAX_AGE = 7 * 24 * 3600


class ConfigError(Exception):
    """The configuration cannot be read or a setting (such as the server URL) is invalid."""


def config_dir() -> Path:
    """`$XDG_CONFIG_HOME/instashare`, else `~/.config/instashare` (a relative one is ignored)."""
    base = os.environ.get("XDG_CONFIG_HOME", "")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "instashare"


def normalize_server(url: str) -> str:
    """The server's root URL without a trailing slash (or `/api/v1`); ConfigError if not http(s)."""
    url = url.strip().rstrip("/")
    url = url.removesuffix("/api/v1").rstrip("/")
    parts = urlsplit(url)
    if parts.scheme.lower() not in {"http", "https"} or not parts.netloc or parts.query:
        raise ConfigError(f"{url!r} is not a server URL; give one like {DEFAULT_SERVER}")
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path, "", ""))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path} ({exc}); remove it and log in again") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a JSON object; remove it and log in again")
    return data


def _write_private(path: Path, data: dict[str, Any]) -> None:
    """Replace `path` atomically with `data` as JSON, mode 0600, in a 0700 directory."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2, sort_keys=True)
            out.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@dataclass(frozen=True)
class Login:
    """A token for one server, and whose it is."""

    server: str
    email: str
    token: str


class Config:
    """`config.json`: the server remembered at the last login and a token per server."""

    def __init__(self, directory: Path | None = None):
        self.path = (directory or config_dir()) / "config.json"
        self._data = _read_json(self.path)

    @property
    def server(self) -> str:
        """The server of the last login, or the default."""
        return self._data.get("server") or DEFAULT_SERVER

    def login_for(self, server: str) -> Login | None:
        entry = self._data.get("logins", {}).get(server)
        if not isinstance(entry, dict) or not entry.get("token"):
            return None
        return Login(server, entry.get("email", ""), entry["token"])

    def remember_server(self, server: str) -> None:
        """Make `server` the default (after `register`, so that `login` goes to it too)."""
        if self._data.get("server") != server:
            self._data["server"] = server
            _write_private(self.path, self._data)

    def remember_login(self, login: Login) -> None:
        """Store the token and make its server the default."""
        self._data.setdefault("logins", {})[login.server] = {
            "email": login.email,
            "token": login.token,
        }
        self._data["server"] = login.server
        _write_private(self.path, self._data)

    def forget_login(self, server: str) -> Login | None:
        """Drop the token for `server`; the login that was dropped, if any."""
        login = self.login_for(server)
        if login is not None:
            del self._data["logins"][server]
            _write_private(self.path, self._data)
        return login


class UploadState:
    """`uploads.json`: (server, file, size, mtime, name) → the tus URL of its unfinished upload."""

    def __init__(self, directory: Path | None = None):
        self.path = (directory or config_dir()) / "uploads.json"

    @staticmethod
    def key(server: str, path: Path, size: int, mtime_ns: int, name: str) -> str:
        """A stable key: the same file, unchanged, sent under the same name to the same server."""
        raw = json.dumps([server, str(path), size, mtime_ns, name])
        return hashlib.sha256(raw.encode()).hexdigest()

    def _load(self) -> dict[str, Any]:
        try:
            return _read_json(self.path)
        except ConfigError:
            return {}  # only resumption is lost; the next upload starts afresh

    def get(self, key: str) -> str | None:
        entry = self._load().get(key)
        return entry.get("url") if isinstance(entry, dict) else None

    def put(self, key: str, url: str, path: Path) -> None:
        data = self._load()
        now = time.time()
        data = {
            k: v
            for k, v in data.items()
            if isinstance(v, dict) and now - v.get("saved_at", 0) < UPLOAD_STATE_MAX_AGE
        }
        data[key] = {"url": url, "path": str(path), "saved_at": now}
        _write_private(self.path, data)

    def drop(self, key: str) -> None:
        data = self._load()
        if data.pop(key, None) is not None:
            _write_private(self.path, data)


class DownloadState:
    """`downloads.json`: a share link's URL → where an unfinished download of it is saved."""

    def __init__(self, directory: Path | None = None):
        self.path = (directory or config_dir()) / "downloads.json"

    def _load(self) -> dict[str, Any]:
        try:
            return _read_json(self.path)
        except ConfigError:
            return {}  # only resumption is lost

    def get(self, url: str) -> Path | None:
        """Where the last run saved `url` to, if it stopped with the bytes still partial."""
        entry = self._load().get(url)
        return Path(entry["path"]) if isinstance(entry, dict) and entry.get("path") else None

    def put(self, url: str, target: Path) -> None:
        now = time.time()
        data = {
            k: v
            for k, v in self._load().items()
            if isinstance(v, dict) and now - v.get("saved_at", 0) < UPLOAD_STATE_MAX_AGE
        }
        data[url] = {"path": str(target.resolve()), "saved_at": now}
        _write_private(self.path, data)

    def drop(self, url: str) -> None:
        data = self._load()
        if data.pop(url, None) is not None:
            _write_private(self.path, data)
