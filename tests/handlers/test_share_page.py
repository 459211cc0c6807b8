"""The share page: a browser opening a link gets HTML (by `Accept`), an API client JSON; and
the share metrics."""

from __future__ import annotations

import datetime as dt
import html
import re
import uuid
from urllib.parse import urljoin

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from app.http.qr import svg as qr_svg
from app.http.share_page import PAGE_CSP
from app.models import Share
from tests.helpers import assert_problem, run_jobs, runtime, started_download, upload

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
CONTENT = b"shared bytes " * 1000
XSS = "<img src=x onerror=alert(1)>.txt"


def _ready(client, app, account, filename="report.txt") -> str:
    created = upload(client, account, CONTENT, filename)
    assert created.status_code == 202, created.text
    run_jobs(app)
    return created.json()["id"]


def _share(client, account, file_id, **body) -> str:
    made = client.post(f"/api/v1/files/{file_id}/shares", headers=account.headers, json=body)
    assert made.status_code == 201, made.text
    return "/s/" + made.json()["url"].rsplit("/s/", 1)[1]


def _page(client, path, status, **headers):
    response = client.get(path, headers={**BROWSER, **headers})
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.headers["Content-Security-Policy"] == PAGE_CSP
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "Accept" in response.headers["Vary"]
    page = response.text
    # No script of any kind, and no inline style the policy would block.
    assert "<script" not in page.lower() and " style=" not in page.lower()
    assert re.search(r"<[^>]*\son[a-z]+\s*=", page) is None  # no event handler in a tag
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    return response


def _text(response) -> str:
    """The page's words, markup dropped (what a person reads)."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.text)))


# --- the page --------------------------------------------------------------------------------


def test_a_browser_gets_the_page_and_an_api_client_json(local_client, local_app, alice):
    link = _share(local_client, alice, _ready(local_client, local_app, alice))
    page = _page(local_client, link, 200)
    words = _text(page)
    assert "13 KiB" in words and "Ready to download" in words
    # The file by its own name, and what the button gives: a stranger knows what they get.
    assert '<h1 id="heading" class="name">report.txt</h1>' in page.text
    assert "<title>report.txt · Instashare</title>" in page.text
    assert "report.txt.zip" not in words and "as a ZIP" in words
    assert re.search(r'class="button" href="[^"]+" download>Download ZIP</a>', page.text)
    token = link.rsplit("/", 1)[1]
    assert f'href="{token}/content"' in page.text  # a plain link, relative to the page
    assert 'href="-/share.css"' in page.text
    assert page.headers["Cache-Control"] == "private, no-cache"

    for accept in (None, "*/*", "application/json"):
        answer = local_client.get(link, headers={"Accept": accept} if accept else {})
        assert answer.headers["Content-Type"] == "application/json"
        assert answer.json()["name"] == "report.txt.zip"
        assert "Accept" in answer.headers["Vary"]


def test_the_download_button_downloads(local_client, local_app, alice):
    link = _share(local_client, alice, _ready(local_client, local_app, alice), serves="original")
    page = _page(local_client, link, 200)
    assert re.search(r'class="button" href="[^"]+" download>Download</a>', page.text)
    href = re.search(r'class="button" href="([^"]+)"', page.text)[1]
    got = local_client.get(f"/s/{href}", headers=BROWSER)
    assert got.status_code == 200 and got.content == CONTENT


def test_a_file_name_is_text_never_markup(local_client, local_app, alice):
    link = _share(local_client, alice, _ready(local_client, local_app, alice, XSS))
    page = _page(local_client, link, 200)
    assert "<img" not in page.text
    assert html.escape(XSS, quote=True) in page.text
    assert XSS in _text(page)


def test_the_stylesheet_is_served_from_the_declared_route(local_client):
    css = local_client.get("/s/-/share.css")
    assert css.status_code == 200
    assert css.headers["Content-Type"].startswith("text/css")
    assert ".card" in css.text and "@media" in css.text


def test_a_links_qr_code_is_an_svg_of_its_url(local_client, local_app, alice):
    link = _share(
        local_client, alice, _ready(local_client, local_app, alice, "secret.txt"), password="sesame"
    )
    qr = local_client.get(f"{link}/qr.svg")
    assert qr.status_code == 200, qr.text
    assert qr.headers["Content-Type"] == "image/svg+xml"
    assert qr.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert qr.headers["Referrer-Policy"] == "no-referrer"
    svg = qr.text
    assert svg.startswith("<svg") and "viewBox" in svg
    assert "<script" not in svg and "style" not in svg and "secret.txt" not in svg
    # What it encodes is the link's own URL: drawn from that URL, it is the same picture.
    assert svg.encode() == qr_svg(f"http://testserver{link}")
    token = link.rsplit("/", 1)[1]
    forged = local_client.get(f"/s/{token[:-2]}AA/qr.svg")
    assert_problem(forged, 404)


def test_a_password_link_shows_a_form_and_not_the_file(local_client, local_app, alice):
    link = _share(
        local_client, alice, _ready(local_client, local_app, alice, "secret.txt"),
        password="sesame", max_downloads=3,
    )  # fmt: skip
    page = _page(local_client, link, 401)
    # Before the password: what kind of thing, and the link's own facts; nothing it holds.
    words = _text(page)
    assert "A file shared with a password" in words
    assert re.search(r"Link expires \d+ \w+ \d{4}, \d\d:\d\d UTC", words)
    assert "Downloads left 3" in words
    assert "Size" not in words and "KiB" not in words
    token = link.rsplit("/", 1)[1]
    assert f'<form method="post" action="{token}/grants"' in page.text
    assert '<label for="password">' in page.text and 'id="password"' in page.text
    assert 'type="password"' in page.text
    assert "secret.txt" not in page.text
    assert page.headers["Cache-Control"] == "private, no-store"
    # The page asks with its form, not the browser's own Basic prompt.
    assert not page.headers["WWW-Authenticate"].lower().startswith("basic")
    assert "not right" not in page.text

    wrong = _page(local_client, link, 401, **{"X-Share-Password": "guess"})
    assert "not right" in wrong.text
    right = _page(local_client, link, 200, **{"X-Share-Password": "sesame"})
    assert "secret.txt" in right.text and f'action="{token}/grants"' in right.text


def test_the_form_posts_to_a_download_and_refusals_are_pages(local_client, local_app, alice):
    link = _share(local_client, alice, _ready(local_client, local_app, alice), password="sesame")
    sent = local_client.post(f"{link}/grants", data={"password": "sesame"}, follow_redirects=False)
    # Relative: the browser stays at the host it came to, whatever Host the request named.
    # After the right password: the file's card, and the download under way.
    words = _text(sent)
    assert "report.txt" in words and "Size" in words
    assert "Link expires" in words and "Download started." in words
    assert 'href="../-/share.css"' in sent.text
    got = local_client.get(urljoin(f"http://testserver{link}/grants", started_download(sent)))
    assert got.status_code == 200 and got.headers["Content-Type"] == "application/zip"
    # The page at /s/{token}/grants reaches its stylesheet and form one level up.
    wrong = local_client.post(f"{link}/grants", data={"password": "nope"})
    assert wrong.status_code == 401
    assert 'href="../-/share.css"' in wrong.text
    token = link.rsplit("/", 1)[1]
    assert f'action="../{token}/grants"' in wrong.text


def test_a_form_password_is_read_as_a_browser_sends_it(local_client, local_app, alice):
    link = _share(local_client, alice, _ready(local_client, local_app, alice), password="pässwörd")
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    escaped = local_client.post(
        f"{link}/grants", content=b"password=p%C3%A4ssw%C3%B6rd", headers=form,
        follow_redirects=False,
    )  # fmt: skip
    started_download(escaped)
    raw = local_client.post(
        f"{link}/grants", content="password=pässwörd".encode(), headers=form,
        follow_redirects=False,
    )  # fmt: skip
    started_download(raw)  # unescaped UTF-8 bytes, as some clients send them
    latin = local_client.post(f"{link}/grants", content=b"password=p\xe4ss", headers=form)
    assert latin.status_code == 401 and "password" in latin.text  # not UTF-8: no password


def test_wrong_passwords_are_throttled_with_a_page_saying_when(local_client, local_app, alice):
    link = _share(local_client, alice, _ready(local_client, local_app, alice), password="sesame")
    for _ in range(runtime(local_app).settings.login_max_failures):
        _page(local_client, link, 401, **{"X-Share-Password": "guess"})
    throttled = _page(local_client, link, 429, **{"X-Share-Password": "sesame"})
    assert int(throttled.headers["Retry-After"]) > 0
    assert "Try again in" in _text(throttled)


def test_a_file_not_ready_yet_says_try_again_in_a_minute(local_client, alice):
    pending = upload(local_client, alice, CONTENT, "later.txt").json()["id"]
    link = _share(local_client, alice, pending)
    page = _page(local_client, link, 409)
    assert int(page.headers["Retry-After"]) > 0
    assert "try again in a minute" in _text(page).lower()
    assert "later.txt" in page.text and "/content" not in page.text
    assert local_client.get(link).json()["status"] == "pending"  # JSON: 200, as before


@pytest.mark.parametrize("reason", ["expired", "revoked", "exhausted"])
def test_a_link_that_no_longer_works_says_so(local_client, local_app, alice, session, reason):
    file_id = _ready(local_client, local_app, alice, "gone.txt")
    link = _share(local_client, alice, file_id, max_downloads=1)
    share_id = local_client.get("/api/v1/shares", headers=alice.headers).json()["items"][0]["id"]
    if reason == "expired":
        session.execute(
            update(Share)
            .where(Share.id == uuid.UUID(share_id))
            .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
        session.flush()
    elif reason == "revoked":
        local_client.delete(f"/api/v1/shares/{share_id}", headers=alice.headers)
    else:
        assert local_client.get(f"{link}/content").status_code == 200
    page = _page(local_client, link, 410)
    words = _text(page)
    expected = {"expired": "has expired", "revoked": "turned off", "exhausted": "used up"}
    assert expected[reason] in words
    assert "gone.txt" not in page.text and "/content" not in page.text


def test_an_unknown_link_is_a_404_page(local_client):
    page = _page(local_client, "/s/" + "A" * 43, 404)
    assert "no such link" in _text(page).lower()


# --- metrics ---------------------------------------------------------------------------------


def _counters(client) -> dict[tuple[str, str], float]:
    text = client.get("/metrics").text
    values = {}
    for family in text_string_to_metric_families(text):
        if family.name.startswith("instashare_share_"):
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    values[(sample.name, sample.labels.get("reason", ""))] = sample.value
    return values


def test_downloads_and_each_refusal_move_their_counters(local_client, local_app, alice, session):
    file_id = _ready(local_client, local_app, alice)
    before = _counters(local_client)
    downloads = ("instashare_share_downloads_total", "")

    def moved() -> dict:
        after = _counters(local_client)
        return {
            key: after[key] - before.get(key, 0)
            for key in after
            if after[key] != before.get(key, 0)
        }

    link = _share(local_client, alice, file_id, max_downloads=1)
    assert local_client.get(f"{link}/content").status_code == 200
    assert moved() == {downloads: 1}

    assert local_client.get(f"{link}/content").status_code == 410
    assert moved() == {downloads: 1, ("instashare_share_refusals_total", "exhausted"): 1}

    locked = _share(local_client, alice, file_id, password="sesame")
    for _ in range(runtime(local_app).settings.login_max_failures):
        local_client.get(f"{locked}/content", headers={"X-Share-Password": "guess"})
    local_client.get(f"{locked}/content", headers={"X-Share-Password": "sesame"})
    failures = runtime(local_app).settings.login_max_failures
    assert moved()[("instashare_share_refusals_total", "bad_password")] == failures
    assert moved()[("instashare_share_refusals_total", "throttled")] == 1

    revoked = _share(local_client, alice, file_id)
    local_client.delete(f"/api/v1/shares/{_newest(local_client, alice)}", headers=alice.headers)
    assert_problem(local_client.get(revoked), 410)
    assert moved()[("instashare_share_refusals_total", "revoked")] == 1

    expired = _share(local_client, alice, file_id)
    session.execute(
        update(Share)
        .where(Share.id == uuid.UUID(_newest(local_client, alice)))
        .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    )
    session.flush()
    assert_problem(local_client.post(f"{expired}/grants"), 410)
    assert moved()[("instashare_share_refusals_total", "expired")] == 1

    pending = upload(local_client, alice, CONTENT, "later.txt").json()["id"]
    assert_problem(local_client.get(f"{_share(local_client, alice, pending)}/content"), 409)
    assert moved()[("instashare_share_refusals_total", "not_ready")] == 1

    # A download through a link's grant counts as one too.
    path = local_client.post(f"{_share(local_client, alice, file_id)}/grants").json()["url"]
    assert local_client.get(path.removeprefix("http://testserver")).status_code == 200
    assert moved()[downloads] == 2


def _newest(client, account) -> str:
    return client.get("/api/v1/shares", headers=account.headers).json()["items"][0]["id"]
