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
import threading
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
    def key(
        server: str, path: Path, size: int, mtime_ns: int, name: str, folder_id: str | None = None
    ) -> str:
        """A stable key: the same file, unchanged, sent under the same name (into the same
        folder) to the same server."""
        raw = json.dumps(
            [server, str(path), size, mtime_ns, name, *([folder_id] if folder_id else [])]
        )
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

    def slot(self, server: str, path: Path, name: str, folder_id: str | None) -> UploadSlot:
        """Where the upload of `path` as `name` into a folder (None: the root) of `server` is
        kept while unfinished."""
        path = path.resolve()
        stat = path.stat()
        key = self.key(server, path, stat.st_size, stat.st_mtime_ns, name, folder_id)
        return UploadSlot(self, key, path)


@dataclass(frozen=True)
class UploadSlot:
    """One file's entry in `uploads.json` (a transfer.Slot)."""

    state: UploadState
    key: str
    path: Path

    def get(self) -> str | None:
        return self.state.get(self.key)

    def put(self, url: str) -> None:
        self.state.put(self.key, url, self.path)

    def drop(self) -> None:
        self.state.drop(self.key)


class DownloadState:
    """`downloads.json`: a share link's URL → where an unfinished download of it is saved."""

    def __init__(self, directory: Path | None = None):
        self.path = (directory or config_dir()) / "downloads.json"

    def _load(self) -> dict[str, Any]:
        try:
            return _read_json(self.path)
        except ConfigError:
            return {}  # only resumption is lost

    def get(self, url: str) -> tuple[Path, bool] | None:
        """Where the last run saved `url` to, if it stopped with the bytes still partial; and
        whether it was a multi-file link's ZIP of everything."""
        entry = self._load().get(url)
        if not isinstance(entry, dict) or not entry.get("path"):
            return None
        return Path(entry["path"]), bool(entry.get("archive"))

    def put(self, url: str, target: Path, archive: bool = False) -> None:
        now = time.time()
        data = {
            k: v
            for k, v in self._load().items()
            if isinstance(v, dict) and now - v.get("saved_at", 0) < UPLOAD_STATE_MAX_AGE
        }
        data[url] = {"path": str(target.resolve()), "archive": archive, "saved_at": now}
        _write_private(self.path, data)

    def drop(self, url: str) -> None:
        data = self._load()
        if data.pop(url, None) is not None:
            _write_private(self.path, data)


class TreeJournal:
    """`trees/<key>.jsonl`: one `upload -r` of some paths into a folder of a server, a line
    per upload begun (its URL) and per upload finished (its file id), until all are up.

    Lines are appended (several threads upload at once; each line is one write), so a run
    that dies anywhere leaves at worst a torn last line, which is ignored.
    """

    def __init__(self, server: str, paths: list[Path], folder_id: str | None):
        raw = json.dumps([server, sorted(str(p.resolve()) for p in paths), folder_id or ""])
        name = hashlib.sha256(raw.encode()).hexdigest()
        self.path = config_dir() / "trees" / f"{name}.jsonl"
        self._lock = threading.Lock()
        self._out: int | None = None
        self._begun: dict[str, dict[str, Any]] = {}
        self._done: dict[str, dict[str, Any]] = {}
        self._load()

    def _load(self) -> None:
        try:
            if time.time() - self.path.stat().st_mtime > UPLOAD_STATE_MAX_AGE:
                self.path.unlink()  # the server has long forgotten those uploads
                return
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return
        for line in lines:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                record = json.loads(line)
                into = self._done if "file_id" in record else self._begun
                into[record["path"]] = record

    @staticmethod
    def _same(record: dict[str, Any] | None, size: int, mtime_ns: int) -> bool:
        return record is not None and (record.get("size"), record.get("mtime_ns")) == (
            size,
            mtime_ns,
        )

    def finished(self, relative: str, size: int, mtime_ns: int) -> str | None:
        """The file id an earlier run uploaded this file (unchanged since) as, if it did."""
        record = self._done.get(relative)
        return record["file_id"] if self._same(record, size, mtime_ns) else None

    def slot(self, relative: str, size: int, mtime_ns: int) -> TreeSlot:
        return TreeSlot(self, relative, size, mtime_ns)

    def begun(self, relative: str, size: int, mtime_ns: int) -> str | None:
        record = self._begun.get(relative)
        return record["url"] if self._same(record, size, mtime_ns) else None

    def append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode()
        with self._lock:
            if self._out is None:
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
                self._out = os.open(self.path, flags, 0o600)
            os.write(self._out, line)
            into = self._done if "file_id" in record else self._begun
            into[record["path"]] = record

    def close(self, *, complete: bool) -> None:
        """Stop writing; with `complete` (every file is up), forget the tree."""
        with self._lock:
            if self._out is not None:
                os.close(self._out)
                self._out = None
            if complete:
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()


@dataclass(frozen=True)
class TreeSlot:
    """One file's lines in a TreeJournal (a transfer.Slot)."""

    journal: TreeJournal
    relative: str
    size: int
    mtime_ns: int

    def _record(self, **values: Any) -> dict[str, Any]:
        return {"path": self.relative, "size": self.size, "mtime_ns": self.mtime_ns, **values}

    def get(self) -> str | None:
        return self.journal.begun(self.relative, self.size, self.mtime_ns)

    def put(self, url: str) -> None:
        self.journal.append(self._record(url=url))

    def drop(self) -> None:
        self.journal.append(self._record(url=None))

    def done(self, file_id: str) -> None:
        self.journal.append(self._record(file_id=file_id))
