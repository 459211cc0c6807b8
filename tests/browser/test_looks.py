"""How the web app looks: the system's colour scheme, no stray focus frame, rows that keep
their shape while a name is edited."""

from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest
from playwright.sync_api import expect

from app.models import FileStatus, User
from tests.browser.conftest import (
    PHONE,
    axe_violations,
    drop_files,
    requests_to,
    screenshot,
    sign_in,
)
from tests.factories import FileFactory
from tests.helpers import Account, runtime


def _ready_files(site, account: Account, names: list[str]) -> None:
    now = dt.datetime.now(dt.UTC)
    with runtime(site.app).sessions() as session:
        owner = session.get(User, uuid.UUID(account.id))
        for n, name in enumerate(names):
            session.add(
                FileFactory.build(
                    owner=owner, name=name, status=FileStatus.READY, sha256="0" * 64,
                    size=4_200_000 + n, compressed_size=1_200_000, processed_at=now,
                    created_at=now - dt.timedelta(minutes=n),
                )
            )  # fmt: skip
        session.commit()


def _luminance(page, selector: str, prop: str = "backgroundColor") -> float:
    """The relative luminance (0 black .. 1 white) of an element's computed colour."""
    return page.evaluate(
        """([selector, prop]) => {
            const [r, g, b] = getComputedStyle(document.querySelector(selector))[prop]
                .match(/[0-9.]+/g).slice(0, 3).map(Number)
                .map((c) => c / 255)
                .map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
            return 0.2126 * r + 0.7152 * g + 0.0722 * b;
        }""",
        [selector, prop],
    )


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_app_follows_the_systems_colour_scheme_and_stays_readable(page, site, account, scheme):
    page.emulate_media(color_scheme=scheme)
    page.goto("/")
    page.get_by_label("E-mail", exact=True).wait_for()
    dark = _luminance(page, "html") < 0.05
    assert dark == (scheme == "dark")
    assert axe_violations(page) == []
    screenshot(page, f"sign-in-{scheme}")

    _ready_files(site, account, ["report.pdf", "holiday photo.jpg", "notes.txt"])
    sign_in(page, account)
    expect(page.locator("#files-body tr")).to_have_count(3)
    # Text and the file cards follow the scheme too, not only the page behind them.
    assert (_luminance(page, ".file-name", "color") > 0.5) == dark
    assert (_luminance(page, ".card") < 0.05) == dark
    assert axe_violations(page) == []
    screenshot(page, f"files-{scheme}")

    page.get_by_role("button", name="Share report.pdf").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    assert (_luminance(page, "dialog[open]") < 0.05) == dark
    assert axe_violations(page) == []
    screenshot(page, f"share-dialog-{scheme}")


def test_the_page_shows_no_frame_around_its_content_after_a_reload(page, site, account):
    _ready_files(site, account, ["report.pdf"])
    sign_in(page, account)
    page.reload()
    page.locator("#app-view[data-loaded]").wait_for()
    # The app moves focus to the landmark when a view changes (for screen readers); a
    # person did not move there, so no ring is drawn around the whole page.
    page.evaluate("() => document.querySelector('main').focus()")
    style = page.evaluate(
        "() => { const s = getComputedStyle(document.querySelector('main'));"
        " return [s.boxShadow, s.outlineStyle]; }"
    )
    assert style == ["none", "none"]


def test_a_row_keeps_its_shape_while_its_name_is_edited(page, site, account):
    _ready_files(site, account, ["quarterly report 2026 final version.pdf", "b.txt"])
    sign_in(page, account)
    row = page.locator("#files-body tr").first

    def heights() -> tuple[float, float]:
        return row.evaluate(
            "(tr) => [tr.getBoundingClientRect().height,"
            " tr.querySelector('time').getBoundingClientRect().height]"
        )

    row_before, date_before = heights()
    row.get_by_role("button", name="Rename quarterly report 2026 final version.pdf").click()
    expect(row.get_by_role("textbox")).to_be_focused()
    row_during, date_during = heights()
    assert date_before < 30, "the date takes more than one line"
    assert date_during == date_before  # and stays on one line while the name is edited
    assert row_during <= row_before + 48  # the form's own height, not a reflowed table


def test_files_dropped_anywhere_on_the_page_are_uploaded(page, site, account, tmp_path):
    notes = tmp_path / "minutes.txt"
    notes.write_text("minutes of the meeting\n" * 100)
    other = tmp_path / "agenda.txt"
    other.write_text("1. budget\n")
    sign_in(page, account)
    # On the list's heading, far from the upload zone.
    drop_files(page, [notes, other], target="#files-count")
    expect(page.locator("#uploads .upload")).to_have_count(2)
    for name in ("minutes.txt", "agenda.txt"):
        expect(
            page.locator("#files-body tr")
            .filter(has=page.locator(".file-name").get_by_text(name, exact=True))
            .locator(".badge")
        ).to_have_text("Ready", timeout=90_000)


def test_a_drop_while_a_dialog_is_open_uploads_nothing(page, site, account, tmp_path):
    _ready_files(site, account, ["report.pdf"])
    stray = tmp_path / "stray.txt"
    stray.write_text("not meant for upload\n")
    sign_in(page, account)
    page.get_by_role("button", name="Share report.pdf").click()
    expect(page.get_by_role("dialog")).to_be_visible()
    drop_files(page, [stray], target="dialog[open]")
    page.wait_for_timeout(500)
    expect(page.locator("#uploads .upload")).to_have_count(0)


def test_on_a_phone_the_files_come_into_view_with_one_action_each_and_the_rest_under_more(
    browser, site, account
):
    _ready_files(site, account, ["report.pdf", "holiday photo.jpg", "notes.txt"])
    phone = browser.new_context(base_url=site.url, viewport=PHONE)
    try:
        page = phone.new_page()
        sign_in(page, account)
        first = page.locator("#files-body tr").first
        expect(first).to_be_visible()
        # The upload card is its two buttons: the first file starts within the first screen.
        assert first.bounding_box()["y"] < PHONE["height"] * 0.75
        expect(page.get_by_role("button", name="Choose files…")).to_be_in_viewport()

        report = page.locator("#files-body tr").filter(has_text="report.pdf")
        visible = report.locator(".actions button:visible")
        expect(visible).to_have_count(2)  # Download, and More
        expect(visible.nth(0)).to_have_accessible_name("Download the original of report.pdf")
        more = report.get_by_role("button", name="More actions for report.pdf")
        expect(more).to_have_attribute("aria-expanded", "false")
        expect(report.get_by_role("button", name="Share report.pdf")).to_be_hidden()
        assert axe_violations(page) == []
        screenshot(page, "files-phone")

        more.click()
        expect(more).to_have_attribute("aria-expanded", "true")
        for name in ("Download the ZIP of", "Share", "Rename", "Delete"):
            expect(report.get_by_role("button", name=f"{name} report.pdf")).to_be_visible()
        assert axe_violations(page) == []
        report.get_by_role("button", name="Share report.pdf").click()
        expect(page.get_by_role("dialog")).to_be_visible()
        expect(more).to_have_attribute("aria-expanded", "false")  # the menu closed behind it
    finally:
        phone.close()


def test_the_share_form_refuses_a_bad_value_before_sending_it(page, site, account):
    _ready_files(site, account, ["report.pdf"])
    sent = requests_to(page, "/shares", "POST")
    sign_in(page, account)
    page.get_by_role("button", name="Share report.pdf").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Expires", exact=True).select_option("custom")
    days = dialog.get_by_label("Expires after (days)")
    for bad in ("0", str(site.settings.share_max_days + 1), "2.5"):
        days.fill(bad)
        dialog.get_by_role("button", name="Create link").click()
        expect(dialog.locator(".error")).to_have_text(
            f"A link can last from 1 to {site.settings.share_max_days} days."
        )
        expect(days).to_be_focused()
        expect(days).to_have_attribute("aria-invalid", "true")
    dialog.get_by_label("Download limit (optional)").fill("-3")
    days.fill("30")
    dialog.get_by_role("button", name="Create link").click()
    expect(dialog.locator(".error")).to_have_text(
        "The download limit is a whole number from 1 to 1,000,000."
    )
    assert sent == []  # nothing reached the server
    assert axe_violations(page) == []

    dialog.get_by_label("Download limit (optional)").fill("3")
    dialog.get_by_role("button", name="Create link").click()
    expect(dialog.get_by_label("New link")).to_have_value(re.compile("/s/"))
    expect(dialog.locator(".error")).to_have_text("")
    assert len(sent) == 1


def test_a_refused_name_reads_as_a_sentence_not_a_pattern(page, site, account):
    _ready_files(site, account, ["report.pdf"])
    sign_in(page, account)
    row = page.locator("#files-body tr").first
    row.get_by_role("button", name="Rename report.pdf").click()
    field = page.get_by_label("New name for report.pdf")
    field.fill("drafts/report.pdf")
    field.press("Enter")
    error = row.locator(".error")
    expect(error).to_contain_text("can't contain /")
    said = error.inner_text()
    # No regular expression, no schema words, no doubled full stop reaches the person.
    assert not re.search(r"\^|\$'|\\\\|does not match|- 'name'|\.\.$", said), said
    assert said.endswith(".") and said[0].isupper(), said
