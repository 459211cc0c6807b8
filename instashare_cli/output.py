"""What the commands print (lines, tables, progress bars), and where downloads are saved."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from app.services.sizes import iec
from instashare_cli import transfer
from instashare_cli.failures import Failure

# Names are the user's: never read them as Rich markup.
stdout = Console(highlight=False, markup=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)


def count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def plainly(rows: list[dict], as_json: bool, empty: str) -> bool:
    """Print `rows` as a JSON array (--json), or `empty` when there are none; whether it did.

    When it did not, there are rows to show as a table.
    """
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return True
    if not rows:
        stdout.print(empty)
        return True
    return False


def when(value: str | None, absent: str = "-") -> str:
    if value is None:
        return absent
    return dt.datetime.fromisoformat(value).astimezone().strftime("%Y-%m-%d %H:%M")


def destination(output: Path | None, filename: str, force: bool) -> Path:
    """Where a download of `filename` goes; Failure if a file is there and not --force."""
    target = output or Path(filename)
    if target.is_dir():
        target = target / filename
    if target.exists() and not force:
        raise Failure(f"{target} exists; use --force to overwrite it")
    return target


class _Speed(ProgressColumn):
    """Bytes a second in the units every size here is written in (Rich's own column has
    only decimal ones)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("?" if speed is None else f"{iec(int(speed))}/s", style="progress.data.speed")


def _bars() -> Progress:
    return Progress(
        TextColumn("{task.description}", markup=False, style="bold"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        _Speed(),
        TimeRemainingColumn(),
        console=stderr,
    )


class Tally:
    """One progress bar for many files going up at once: their bytes, and how many are up
    (a tree.Report)."""

    def __init__(self, files: int, total: int):
        self.progress = _bars()
        self.files, self.up = files, 0
        self.task = self.progress.add_task(self._label(), total=total)

    def _label(self) -> str:
        return f"{self.up}/{count(self.files, 'file')}"

    def __enter__(self) -> Tally:
        if self.files:
            self.progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.progress.stop()

    def moved(self, n: int) -> None:
        self.progress.advance(self.task, n)

    def finished(self) -> None:
        self.up += 1
        self.progress.update(self.task, description=self._label())

    def refused(self, what: str, message: str) -> None:
        self.progress.console.print(f"instashare: error: {what}: {message}")


class Bars:
    """Progress bars for a batch of transfers: one per file and, for several, a total.

    The display starts with the first bar, so a batch that moves no bytes prints nothing.
    """

    def __init__(self, total: int | None = None):
        self.progress = _bars()
        self.total = total
        self.overall: TaskID | None = None
        self._done: dict[TaskID, int] = {}

    def __enter__(self) -> Bars:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.progress.stop()

    def callbacks(self, label: str) -> tuple[transfer.Started, transfer.Advanced]:
        """`started` and `progress` callbacks for transfer.upload/download of one file."""
        task: TaskID | None = None

        def started(done: int, total: int) -> None:
            nonlocal task
            if done:
                stderr.print(f"resuming {label} at {iec(done)} of {iec(total)}")
            if self.total is not None and self.overall is None:
                self.overall = self.progress.add_task("total", total=self.total)
            task = self.progress.add_task(label, total=total, completed=done)
            self.progress.start()
            self._moved(task, done)

        def advanced(done: int) -> None:
            assert task is not None
            self.progress.update(task, completed=done)
            self._moved(task, done)

        return started, advanced

    def say(self, line: str) -> None:
        """A result line for stdout; above the bars when both share one terminal."""
        if stdout.is_terminal and stderr.is_terminal:
            self.progress.console.print(line)  # else it lands in the middle of a bar
        else:
            stdout.print(line)

    def _moved(self, task: TaskID, done: int) -> None:
        self._done[task] = done
        if self.overall is not None:
            self.progress.update(self.overall, completed=sum(self._done.values()))
