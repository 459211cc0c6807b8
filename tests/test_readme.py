"""The README stays true: its configuration table is the settings, its commands exist."""

import re

from app.server import main
from app.settings import documented_settings
from tests.helpers import ROOT

README = (ROOT / "README.md").read_text()


def test_configuration_table_lists_every_setting_with_its_default():
    rows = dict(re.findall(r"^\| `(INSTASHARE_[A-Z_]+)` \| (.+?) \|", README, re.M))
    expected = {
        name: f"`{default}`" if default else "_(empty)_"
        for name, default, _ in documented_settings()
    }
    assert rows == expected


def test_every_operator_command_in_the_readme_exists():
    used = set(re.findall(r"instashare-server ([\w-]+)", README))
    assert used
    assert used <= set(main.commands)


def test_the_two_commands_are_there():
    assert ".venv/bin/instashare-server dev" in README
    assert ".venv/bin/pip install -e '.[test]' && .venv/bin/pytest" in README


def _block_after(marker: str) -> str:
    """The first fenced block after `marker` in the README."""
    start = README.index("```", README.index(marker))
    return README[start : README.index("\n```", start + 3)]


def test_the_curl_and_the_cli_sessions_register_different_accounts():
    email = re.compile(r"[\w.+-]+@example\.com")
    curl = set(email.findall(_block_after("A session with curl against")))
    cli = set(email.findall(_block_after("A session against `instashare-server dev`")))
    assert curl
    assert cli
    assert not curl & cli  # run one after the other, the second would find its email taken


def test_every_option_a_client_message_asks_for_is_in_the_cli_table():
    source = "\n".join(p.read_text() for p in (ROOT / "instashare_cli").glob("*.py"))
    messages = re.findall(r"(?:Failure|UsageError)\(\s*f?\"([^\"]*)\"", source)
    asked = {flag for message in messages for flag in re.findall(r"--[a-z][a-z-]*", message)}
    assert "--force" in asked
    table = "\n".join(line for line in README.splitlines() if line.startswith("| `instashare "))
    assert {flag for flag in asked if flag not in table} == set()
