"""Helpers for the client's tests: the CLI as a process, a live server's log, a flaky link."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import PASSWORD, new_email


@dataclass
class LiveServer:
    url: str
    log_path: Path
    database_url: str  # its own database: a test may set a row as time or the worker would
    mail_dir: Path  # where its worker writes the mails it sends (one .eml file each)

    def access_log(self) -> list[dict]:
        """The server's JSON access lines so far."""
        lines = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if entry.get("logger") == "instashare.access":
                    lines.append(entry)
        return lines


class Cli:
    """The `instashare` command, run as a process with its own config directory and cwd."""

    def __init__(self, server: str, home: Path):
        self.server = server
        self.home = home
        self.config_dir = home / "config"
        self.cwd = home / "work"
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.email: str | None = None

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("INSTASHARE_")}
        env.update(
            XDG_CONFIG_HOME=str(self.config_dir),
            INSTASHARE_URL=self.server,
            COLUMNS="160",  # Rich's width when stdout is not a terminal
        )
        env.update(extra)
        return {k: v for k, v in env.items() if v != ""}  # "": leave that variable unset

    def args(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "instashare_cli", *args]

    def run(self, *args: str, input: str | None = None, **env: str) -> subprocess.CompletedProcess:
        # A new session has no controlling terminal, so password prompts read stdin.
        return subprocess.run(
            self.args(*args),
            env=self.env(**env),
            cwd=self.cwd,
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            timeout=120,
            start_new_session=True,
        )

    def ok(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        result = self.run(*args, **kwargs)
        assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
        return result

    def popen(self, *args: str, **env: str) -> subprocess.Popen:
        return subprocess.Popen(
            self.args(*args),
            env=self.env(**env),
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def login(self) -> Cli:
        """Register a new account and log in to it."""
        self.email = new_email()
        self.ok("register", "--email", self.email, "--password", PASSWORD)
        self.ok("login", "--email", self.email, "--password", PASSWORD)
        return self

    def token(self) -> str:
        config = json.loads((self.config_dir / "instashare" / "config.json").read_text())
        return config["logins"][self.server]["token"]

    def files(self) -> list[dict]:
        return json.loads(self.ok("ls", "--json").stdout)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The single line the CLI printed on stderr (and no traceback)."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def error_line(stderr: str) -> str:
    """The one `instashare: error:` line among progress bars and notes (and no traceback)."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("instashare:")]
    assert len(lines) == 1, stderr
    return lines[0]


class FlakyLink:
    """A TCP relay to the server that breaks after some bytes, like a bad network.

    `cut_after(n)`: once `n` more bytes went to the server, drop every connection and
    refuse new ones. `stall_after(n)`: once `n` more bytes went, swallow what the client
    sends, so it waits for an answer that never comes. `heal()` mends it.
    """

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        self.mode = "ok"
        self.budget = 0
        self.broke = threading.Event()
        self.sockets: set[socket.socket] = set()
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_after(self, n: int) -> None:
        with self.lock:
            self.mode, self.budget = "cut", n
            self.broke.clear()

    def stall_after(self, n: int) -> None:
        with self.lock:
            self.mode, self.budget = "stall", n
            self.broke.clear()

    def heal(self) -> None:
        with self.lock:
            self.mode = "ok"

    def close(self) -> None:
        self.listener.close()
        with self.lock:
            for sock in list(self.sockets):
                _close(sock)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                refused = self.mode == "cut" and self.broke.is_set()
            if refused:
                _close(client)
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self.lock:
                self.sockets |= {client, upstream}
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _allowance(self, size: int) -> tuple[int, str]:
        """How many of `size` client bytes may pass, and the mode after they do."""
        with self.lock:
            if self.mode == "ok":
                return size, "ok"
            allowed = min(size, self.budget)
            self.budget -= allowed
            if self.budget == 0:
                self.broke.set()
                return allowed, self.mode
            return allowed, "ok"

    def _pump(self, source: socket.socket, sink: socket.socket, to_server: bool) -> None:
        try:
            while data := source.recv(65536):
                if not to_server:
                    sink.sendall(data)
                    continue
                allowed, mode = self._allowance(len(data))
                sink.sendall(data[:allowed])
                if mode == "cut":
                    break
                if mode == "stall":
                    while source.recv(65536):
                        pass  # swallowed until the client gives up
                    break
        except OSError:
            pass
        finally:
            _close(source)
            _close(sink)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
