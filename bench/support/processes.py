"""Child processes in their own sessions, stopped by PID, and what /proc says about them."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port on loopback that nothing listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    """Until something accepts connections on 127.0.0.1:`port` (SystemExit after `timeout`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def stop(proc: subprocess.Popen) -> None:
    """Stop one of `Processes`' children (its own process group), by PID."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    _reap(proc)


def _reap(proc: subprocess.Popen) -> None:
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


class Processes:
    """Child processes in their own sessions, stopped (by PID) in reverse order."""

    def __init__(self) -> None:
        self.started: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str], log: Path):
        """`argv` from the repository root, its output to `log`."""
        out = open(log, "wb")  # noqa: SIM115 - the child writes to it for its whole life
        proc = subprocess.Popen(
            argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.started.append((name, proc))
        return proc

    def stop(self, name: str) -> None:
        """Stop every child started as `name` that still runs."""
        for label, proc in self.started:
            if label == name and proc.poll() is None:
                stop(proc)

    def stop_all(self) -> None:
        for _name, proc in reversed(self.started):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for _name, proc in reversed(self.started):
            _reap(proc)


# --- /proc ------------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    """The direct children of `pid` (of every thread of it)."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(c) for c in (task / "children").read_text().split()]
    return found


def descendants(pid: int) -> set[int]:
    """Every process below `pid`."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children(todo.pop()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name: state, ppid, pgrp, ..."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not)."""
    try:
        return _stat(pid)[0] != "Z"
    except OSError:
        return False


def cpu_seconds(pid: int) -> float:
    """User plus system time of a process (all its threads) so far."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / TICKS


def cpu_of(pids: list[int]) -> dict[int, float]:
    """`cpu_seconds` of each of `pids` that is still there."""
    found = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            found[pid] = cpu_seconds(pid)
    return found


def cpu_since(start: dict[int, float], pids: list[int]) -> float:
    """CPU seconds `pids` used since `start` (a process not there at the start: all of it)."""
    return sum(cpu - start.get(pid, 0.0) for pid, cpu in cpu_of(pids).items())


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds of every live process in the process group `pgid`."""
    group = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and int(_stat(int(entry.name))[2]) == pgid:
                group.append(int(entry.name))
    return sum(cpu_of(group).values())


def status_kib(pid: int | str, field: str) -> int:
    """A size from /proc/<pid>/status (`VmRSS`, `VmHWM`) in KiB; 0 once the process is gone."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def threads(pid: int) -> int:
    return int(_stat(pid)[17])


def read_bytes(pid: int) -> int:
    """What `pid` has read so far (`rchar`: read(2) and friends, from any file or socket)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return 0


def established(port: int) -> int:
    """Established TCP connections whose local port is `port` (the server's ends)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        count += int(local.rsplit(":", 1)[1], 16) == port and state == "01"
    return count


@dataclass
class ProcStat:
    cpu_s: float
    threads: int
    rss_mib: float


def proc_stat(pid: int) -> ProcStat:
    return ProcStat(cpu_seconds(pid), threads(pid), status_kib(pid, "VmRSS") / 1024)


class RssSampler:
    """Peak of the summed VmRSS of a process (and its children), sampled every 20 ms, and
    the CPU time they used meanwhile."""

    def __init__(self, root_pid: int, with_children: bool = True):
        self.root_pid = root_pid
        self.with_children = with_children
        self.baseline = self.peak = 0
        self.cpu_seconds = 0.0
        self._cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def total(self) -> int:
        return sum(status_kib(p, "VmRSS") for p in self.pids())

    def pids(self) -> list[int]:
        return [self.root_pid, *(children(self.root_pid) if self.with_children else [])]

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.total())
            time.sleep(0.02)

    def __enter__(self) -> RssSampler:
        self.baseline = self.peak = self.total()
        self._cpu = cpu_of(self.pids())
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.total())
        self.cpu_seconds = cpu_since(self._cpu, self.pids())

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.baseline) / 1024
