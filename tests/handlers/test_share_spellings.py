"""One spelling per link: a share token or download grant is accepted only exactly as the
service wrote it, and the share page builds its URLs from the link, never from the path."""

from __future__ import annotations

import re
import string
from urllib.parse import quote, urljoin

import pytest

from tests.helpers import assert_problem, upload_ready

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
ALPHABET = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"


def spellings(token: str) -> dict[str, str]:
    """Other spellings of `token`: before, a share token's first three decoded to its bytes."""
    # The last character's lowest bit is one no byte uses when the length is not a multiple
    # of 4 (a share token's 43 characters hold 32 bytes).
    flipped = ALPHABET[ALPHABET.index(token[-1]) ^ 1]
    return {
        # The report's: `\\`, `.` and `\` slipped in, which Chromium reads as another host.
        "stray characters": "\\\\" + token[:4] + "." + token[4:6] + "\\" + token[6:],
        "padding": token + "=",
        "unused bits": token[:-1] + flipped,
        "other case": token.swapcase(),
    }


def _path(spelling: str) -> str:
    return "/s/" + quote(spelling, safe="")


@pytest.fixture
def link(local_client, local_app, alice) -> dict:
    file_id = upload_ready(local_client, local_app, alice, b"shared bytes " * 100, "report.txt")
    made = local_client.post(
        f"/api/v1/files/{file_id}/shares", headers=alice.headers, json={"serves": "original"}
    )
    assert made.status_code == 201, made.text
    return made.json()


def _token(share: dict) -> str:
    return share["url"].rsplit("/s/", 1)[1]


def test_only_the_links_own_spelling_opens_it(local_client, link):
    token = _token(link)
    assert local_client.get(_path(token)).status_code == 200
    for name, spelling in spellings(token).items():
        path = _path(spelling)
        assert_problem(local_client.get(path), 404)
        assert_problem(local_client.get(path + "/content"), 404)
        assert_problem(local_client.post(path + "/grants"), 404)
        page = local_client.get(path, headers=BROWSER)
        assert page.status_code == 404, name
        # The page for no such link names no link at all.
        assert spelling not in page.text and token not in page.text, name
    assert local_client.get(_path(token) + "/content").status_code == 200


def _urls(page: str) -> list[str]:
    return re.findall(r'(?:href|action)="([^"]*)"', page)


@pytest.mark.parametrize("password", [None, "sesame"], ids=["open", "password"])
def test_the_pages_urls_are_the_links_own_whatever_the_request_said(
    local_client, local_app, alice, password
):
    file_id = upload_ready(local_client, local_app, alice, b"bytes " * 100, "notes.txt")
    body = {"password": password} if password else {}
    made = local_client.post(f"/api/v1/files/{file_id}/shares", headers=alice.headers, json=body)
    token = _token(made.json())
    allowed = {"-/share.css", "../-/share.css", f"{token}/content", f"{token}/grants"}
    allowed |= {f"../{url}" for url in allowed}
    for spelling in (token, *spellings(token).values()):
        page = local_client.get(_path(spelling), headers=BROWSER)
        urls = _urls(page.text)
        assert set(urls) <= allowed, (spelling, urls)
        # Resolved against the page's own URL, every link stays under /s/ on this host.
        for url in urls:
            resolved = urljoin(f"http://testserver{_path(spelling)}", url)
            assert resolved.startswith("http://testserver/s/"), resolved
    own = local_client.get(_path(token), headers=BROWSER)
    shown = f"{token}/grants" if password else f"{token}/content"
    assert shown in _urls(own.text)
    if password:  # the form's refusal page posts back to the link's own URL too
        wrong = local_client.post(_path(token) + "/grants", data={"password": "nope"})
        assert wrong.status_code == 401
        assert f"../{token}/grants" in _urls(wrong.text)


def test_only_a_grants_own_spelling_downloads(local_client, alice, link):
    by_link = local_client.post(_path(_token(link)) + "/grants")
    by_owner = local_client.post(
        f"/api/v1/files/{link['file_id']}/download-grants", headers=alice.headers
    )
    for made in (by_link, by_owner):
        assert made.status_code == 201, made.text
        grant = made.json()["url"].rsplit("/", 1)[1]
        for name, spelling in spellings(grant).items():
            response = local_client.get("/api/v1/downloads/" + quote(spelling, safe=""))
            assert response.status_code == 404, name
            assert_problem(response, 404)
        assert local_client.get(f"/api/v1/downloads/{grant}").status_code == 200
