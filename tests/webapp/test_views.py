"""The web app's shape (README, "The web app"): each view makes its own markup and holds
its own elements; index.html is only the frame they go in."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from tests.helpers import ROOT

WEBAPP = ROOT / "app" / "webapp"


class Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.ids += [value for name, value in attrs if name == "id" and value]


def test_the_page_is_only_the_frame_the_views_go_in():
    page = Ids()
    page.feed((WEBAPP / "index.html").read_text(encoding="utf-8"))
    assert page.ids == ["main"], "markup with ids belongs in the view that uses it"


def test_no_view_looks_up_elements_by_id():
    for script in WEBAPP.glob("*.js"):
        source = script.read_text(encoding="utf-8")
        assert not re.search(r"getElementById|\$\(|querySelector\(\s*[\"'`]#", source), script.name


def test_every_image_the_stylesheet_names_is_one_of_the_apps_files():
    """An icon the CSS points at that is not there shows as nothing (no error anywhere)."""
    css = (WEBAPP / "app.css").read_text(encoding="utf-8")
    named = re.findall(r"""url\(\s*["']?([^"')]+)["']?\s*\)""", css)
    assert named, "the stylesheet names its icons"
    for target in named:
        assert not target.startswith(("http:", "https:", "//")), "nothing from another origin"
        assert (WEBAPP / target).is_file(), target
        assert (WEBAPP / target).suffix in {".svg", ".png"}, target


def test_the_folder_an_address_names_is_read_in_one_place():
    """Which folder is open is the address's (`#/folders/{id}`), read by main.js alone: the
    views are told, so none of them keeps a second idea of where the list is."""
    readers = [
        script.name
        for script in WEBAPP.glob("*.js")
        if "location.hash" in script.read_text(encoding="utf-8")
    ]
    assert readers == ["main.js"]
