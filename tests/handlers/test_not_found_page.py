"""A mistyped address in a browser gets a page with a way home (issue 23, item 12); API
clients, and anything else that does not rank HTML first, keep problem+json."""

from __future__ import annotations

import pytest

from app.http.problems import prefers_html
from tests.helpers import assert_problem

CHROMIUM = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"


@pytest.mark.parametrize("path", ["/nope", "/files/x/y", "/%3Cscript%3Ealert(1)%3C/script%3E"])
def test_a_browser_gets_a_page_with_a_way_home(local_client, path):
    answer = local_client.get(path, headers={"Accept": CHROMIUM})
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src" not in answer.headers["content-security-policy"]
    page = answer.text
    assert '<h1 id="not-found-title">Page not found</h1>' in page
    assert '<a class="button" href="/">Go to your files</a>' in page
    assert '<link rel="stylesheet" href="/app/app.css">' in page
    assert "script" not in page.lower()  # nothing of the address comes back
    assert local_client.head(path, headers={"Accept": CHROMIUM}).status_code == 404


@pytest.mark.parametrize(
    "accept", [None, "*/*", "application/json", "application/problem+json", "text/html;q=0.5, */*"]
)
def test_api_clients_keep_problem_json(local_client, accept):
    headers = {"Accept": accept} if accept else {}
    for path in ("/nope", "/api/v1/nope"):
        body = assert_problem(local_client.get(path, headers=headers), 404)
        assert body["detail"] == "No resource has this path."


def test_only_a_look_gets_the_page(local_client):
    posted = local_client.post("/nope", headers={"Accept": CHROMIUM})
    assert posted.headers["content-type"].startswith("application/problem+json")


def test_what_ranks_html_first():
    assert prefers_html(CHROMIUM)
    assert prefers_html("text/html")
    assert not prefers_html("")
    assert not prefers_html("text/html;q=0.8, application/json")
    assert not prefers_html("text/html;q=bad")
