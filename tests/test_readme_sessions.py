"""The README's curl and CLI sessions, run as written against a real `instashare-server dev`.

The blocks are read from README.md (those marked `<!-- session: curl -->` or `cli`), never
copied here; only the port changes, from the README's 8000 to a free one.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import ROOT, answers, free_port, wait_until

pytestmark = pytest.mark.slow  # every test here starts `instashare-server dev` and the CLI

README = (ROOT / "README.md").read_text()
README_HOST = "127.0.0.1:8000"  # where the README's sessions expect `instashare-server dev`
BIN = Path(sys.executable).parent  # the virtualenv's scripts: instashare, instashare-server
# What the README's CLI session types at its prompts, given through the variables the CLI
# reads instead (a prompt's answer is not echoed, and a test has no terminal).
PROMPT = re.compile(r"^(?P<prompt>Email|Password|Repeat for confirmation):(?: (?P<answer>.*))?$")
PROGRESS_BAR = "━"  # a progress bar's line: its speed and timing are never the same
# Values that differ on every run: ids, link tokens (after `/s/`), times.
VALUES = {
    "id": r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
    "token": r"(?<=/s/)[A-Za-z0-9_-]{20,}",
    "time": r"\d{4}-\d\d-\d\d \d\d:\d\d",
}
VARYING = re.compile("|".join(f"(?P<{kind}>{pattern})" for kind, pattern in VALUES.items()))


def session_blocks(kind: str) -> list[str]:
    """The README's fenced blocks marked `<!-- session: kind -->`, in order."""
    return re.findall(
        rf"^<!-- session: {kind} -->\n```[a-z]*\n(.*?)^```$", README, re.MULTILINE | re.DOTALL
    )


@dataclass
class DevServer:
    host: str  # 127.0.0.1:PORT, in place of the README's 127.0.0.1:8000
    log: Path

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without Instashare settings, the virtualenv first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSTASHARE_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def dev(tmp_path_factory) -> Iterator[DevServer]:
    """`instashare-server dev` as the README's first command runs it, on a free port."""
    data = tmp_path_factory.mktemp("readme-dev")
    port = free_port()
    proc = subprocess.Popen(
        [BIN / "instashare-server", "dev", "--port", str(port), "--data-dir", str(data)],
        env=clean_env(), cwd=data, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/api/v1/health"
        wait_until(lambda: answers(url), 60, 0.1, what="dev up")
        yield DevServer(f"127.0.0.1:{port}", data / "dev.log")
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C, as a person stops it
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def test_the_blocks_are_marked():
    # files, share links, resumable uploads, a taken name, folders, a folder link, API
    # tokens, the end, a kept session
    assert len(session_blocks("curl")) == 9
    assert len(session_blocks("cli")) == 1


def test_the_curl_session_runs_as_written(dev, tmp_path):
    script = "\n".join(session_blocks("curl")).replace(README_HOST, dev.host)
    result = subprocess.run(
        ["bash", "-c", f"set -euo pipefail\n{script}"],
        cwd=tmp_path, env=clean_env(), stdin=subprocess.DEVNULL, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, (result.stdout, result.stderr, dev.log_tail())
    assert '"status":"ready"' in out
    # The owner's ZIP, named after the renamed file; the link's is the same (cmp in the block).
    with zipfile.ZipFile(tmp_path / "numbers-renamed.txt.zip") as archive:
        assert archive.namelist() == ["numbers-renamed.txt"]
        assert archive.read("numbers-renamed.txt") == (tmp_path / "numbers.txt").read_bytes()
    assert (tmp_path / "shared.zip").exists()
    assert '"has_password":true' in out  # what the link shares, asked with no account
    assert '"downloads":1' in out and '"state":"active"' in out
    # The folder link: both files listed by path; Download all cut short and resumed.
    assert '"path":"report/raw/numbers.txt"' in out and '"path":"report/data.csv"' in out
    assert "No errors detected" in out
    # A taken name: refused, then kept both, then replaced.
    assert '"name":"hello (1).txt"' in out and '"size":12' in out
    with zipfile.ZipFile(tmp_path / "all.zip") as archive:
        assert archive.read("report/data.csv") == (tmp_path / "data.csv").read_bytes()
        assert archive.read("report/raw/numbers.txt") == (tmp_path / "numbers.txt").read_bytes()
    # The resumable upload: where it stood halfway, the file it became, its first bytes.
    assert re.search(r"^upload-offset: 6$", out, re.IGNORECASE | re.MULTILINE)
    assert '"name":"hello.txt"' in out and '"size":11' in out
    assert re.search(r"hello(?!\.txt)", out)  # the Range request's five bytes
    # Folders: the file in the folder its relative path made, under docs; the listing of
    # the top level, folders first.
    assert re.search(r'"ancestors":\[\{"id":"[0-9a-f-]+","name":"docs"\}\]', out)
    assert '"kind":"file","id"' in out and '"name":"2024"' in out
    assert re.search(r'"items":\[\{"kind":"folder"[^]]*"name":"2024"', out)
    # An upload token: its upload went in; refused the listing, naming the scope it lacks.
    assert '"detail": "This token may only upload files; this needs the read scope."' in out
    assert '"name":"nightly upload","scopes":["upload"]' in out
    # A kept session: listed as this one, and its spent refresh token ended it (the 401s).
    assert re.search(r'"device":"curl","kind":"kept".*"current":true', out)
    # Each `-w '%{http_code}\n'` prints the status its comment says. (JSON answers end with
    # no newline, so a status may end the line of the answer before it.)
    said = re.findall(r"%\{http_code\}.*# (\d{3})", "\n".join(session_blocks("curl")))
    assert said
    assert re.findall(r"(\d{3})$", out, re.MULTILINE) == said


def output_pattern(lines: list[str], known: dict[str, str]) -> tuple[re.Pattern[str], dict]:
    """A pattern for a command's output as the README shows it, and its groups' README values.

    Runs of spaces match any run (table columns widen with the port's digits). An id or a
    link token the README showed before must come back as what it stood for then (`known`);
    a new one is a group, named in the dict returned with the README's value.
    """
    patterns: list[str] = []
    new: dict[str, str] = {}
    for line in lines:
        pattern, end = "", 0
        text = " ".join(line.split())
        for m in VARYING.finditer(text):
            pattern += re.escape(text[end : m.start()])
            end = m.end()
            if m.group() in known:
                pattern += re.escape(known[m.group()])
            elif m.lastgroup == "time":
                pattern += VALUES["time"]
            else:
                name = f"value{len(new)}"
                new[name] = m.group()
                pattern += f"(?P<{name}>{VALUES[str(m.lastgroup)]})"
        patterns.append(pattern + re.escape(text[end:]))
    return re.compile("\n".join(patterns)), new


def test_the_cli_session_runs_as_written(dev, tmp_path):
    (block,) = session_blocks("cli")
    base = f"http://{dev.host}"
    env = clean_env(
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        # The README's dev listens on the client's default server, 8000, which is where its
        # `instashare login` (no --server) goes; this one listens elsewhere.
        INSTASHARE_URL=base,
        INSTASHARE_PASSWORD="grace hopper's cobol",
        PYTHONUNBUFFERED="1",  # stdout and stderr in the order they are written
        COLUMNS="400",  # a wide terminal: the table of links on one line, as shown
    )
    commands: list[tuple[str, list[str]]] = []
    for line in block.replace(README_HOST, dev.host).splitlines():
        if line.startswith("$ "):
            commands.append((line[2:], []))
        elif m := PROMPT.match(line):
            if m["prompt"] == "Email":
                env["INSTASHARE_EMAIL"] = m["answer"]
        elif PROGRESS_BAR not in line:
            commands[-1][1].append(line)
    assert len(commands) >= 10

    known: dict[str, str] = {}  # an id or a link token in the README → its value in this run
    for command, lines in commands:
        for readme_value, value in known.items():
            command = command.replace(readme_value, value)
        result = subprocess.run(
            ["bash", "-c", f"set -euo pipefail\n{command}"],
            cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, timeout=60, start_new_session=True,
        )  # fmt: skip
        shown = "\n".join(
            " ".join(line.split())
            for line in result.stdout.splitlines()
            if PROGRESS_BAR not in line
        )
        assert result.returncode == 0, (command, result.stdout, dev.log_tail())
        pattern, new = output_pattern(lines, known)
        match = pattern.fullmatch(shown)
        assert match, (command, shown, pattern.pattern)
        known.update({readme_value: match[name] for name, readme_value in new.items()})
    assert (tmp_path / "numbers.txt.zip").exists()  # what the link gave


def test_the_admin_session_runs_as_written(dev, tmp_path):
    (block,) = session_blocks("admin")
    script = block.replace(README_HOST, dev.host)
    # `create-admin` on the same machine as `dev`, with its data dir (the README's default).
    env = clean_env(INSTASHARE_DATA_DIR=str(dev.log.parent))
    result = subprocess.run(
        ["bash", "-c", f"set -euo pipefail\n{script}"],
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, (result.stdout, result.stderr, dev.log_tail())
    assert "root@example.com made an administrator" in out
    assert '"email":"katherine@example.com"' in out and '"state":"active"' in out
    assert '"state":"disabled"' in out and '"effective_quota_bytes":1073741824' in out
    assert re.search(r"^403$", out, re.MULTILINE)
    assert '"link":"http://' in out and "/#/invite/" in out
    assert '"admins":1' in out and '"disabled":1' in out
    assert '"action":"invitation.create"' in out and '"action":"user.disable"' in out
