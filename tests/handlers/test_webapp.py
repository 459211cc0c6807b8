"""The web app's page and files: served from the package, under a strict CSP."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from app.handlers.webapp import WEBAPP_DIR
from tests.helpers import assert_problem

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
IMPORT = re.compile(r"""^import\s[^;]*?from\s+"(\./[^"]+)";""", re.MULTILINE)


class Page(HTMLParser):
    """What a page loads (scripts, styles) and what would run inline."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict] = []
        self.styles: list[str] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        for name, _ in attrs:
            if name.startswith("on") or name == "style":
                self.inline.append(f"<{tag} {name}>")
        if tag == "script":
            self.scripts.append(attributes)
            self._in_script = "src" not in attributes
        if tag == "link" and attributes.get("rel") == "stylesheet":
            self.styles.append(attributes["href"])
        if tag == "style":
            self.inline.append("<style>")

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.inline.append("<script> body")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False


def assert_secured(response) -> None:
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_the_root_is_the_web_app(local_client):
    response = local_client.get("/")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert_secured(response)
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["etag"].startswith('"')
    assert "date" not in response.headers, "uvicorn dates every answer: a second Date header"
    page = Page()
    page.feed(response.text)
    assert {"src": "/app/main.js", "type": "module"} in page.scripts
    assert page.styles == ["/app/app.css"]
    assert page.inline == [], "the CSP would refuse inline script and style"


def test_head_of_the_root_has_no_body(local_client):
    response = local_client.head("/")
    assert response.status_code == 200
    assert response.content == b""
    assert_secured(response)


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/app/main.js", "text/javascript; charset=utf-8"),
        ("/app/app.css", "text/css; charset=utf-8"),
        ("/app/vendor/tus-js-client/tus.min.js", "text/javascript; charset=utf-8"),
    ],
)
def test_the_files_are_served_with_their_type_and_a_content_etag(local_client, path, content_type):
    response = local_client.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == content_type
    assert_secured(response)
    assert response.content == (WEBAPP_DIR / path.removeprefix("/app/")).read_bytes()
    etag = response.headers["etag"]
    again = local_client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag


def test_every_module_the_page_imports_is_served(local_client):
    """The import graph from main.js, walked over HTTP: no module 404s in a browser."""
    seen: set[str] = set()
    todo = ["/app/main.js"]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        response = local_client.get(path)
        assert response.status_code == 200, f"{path}: {response.status_code}"
        base = path.rsplit("/", 1)[0]
        todo += [f"{base}/{target.removeprefix('./')}" for target in IMPORT.findall(response.text)]
    assert len(seen) > 3


def test_the_app_never_turns_text_into_markup():
    """User text (names, errors) goes in as text: no API that parses HTML is used."""
    for script in WEBAPP_DIR.glob("*.js"):
        source = script.read_text(encoding="utf-8")
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in source, f"{script.name} uses {sink}"


@pytest.mark.parametrize(
    "path",
    [
        "/app/nothing.js",
        "/app/vendor/tus-js-client/vendor.json",  # the manifest is for the tests, not served
        "/app/vendor/tus-js-client/LICENSE",
        "/app/%2e%2e/handlers/webapp.py",
        "/app/..%2Fweb.py",
        "/app/vendor",
    ],
)
def test_nothing_else_is_served(local_client, path):
    response = local_client.get(path)
    assert_problem(response, 404)


def test_the_api_and_the_operations_routes_still_answer(local_client):
    assert local_client.get("/api/v1/health").json() == {"status": "ok"}
    assert_problem(local_client.get("/no-such-page"), 404)
