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
    used = set(re.findall(r"instashare-server (\w+)", README))
    assert used
    assert used <= set(main.commands)


def test_the_two_commands_are_there():
    assert ".venv/bin/instashare-server dev" in README
    assert ".venv/bin/pip install -e '.[test]' && .venv/bin/pytest" in README
