"""The API docs (Swagger UI at /api/v1/ui/) in a real browser, under their CSP."""

from __future__ import annotations

from playwright.sync_api import expect

# Every Content-Security-Policy violation on the page, as the browser reports it.
REPORT_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) =>
    window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`));
"""


def test_the_api_docs_render_and_try_a_call_with_no_policy_violation(page):
    page.add_init_script(REPORT_VIOLATIONS)
    response = page.goto("/api/v1/ui/")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    health = page.locator(".opblock").filter(has_text="/health").first
    health.locator(".opblock-summary").click()
    page.get_by_role("button", name="Try it out").click()
    page.get_by_role("button", name="Execute").click()
    # The call went out from the page (connect-src) and its answer shows.
    expect(
        health.locator(".live-responses-table tr.response .response-col_status").first
    ).to_have_text("200")
    assert page.evaluate("window.__violations") == []


def test_another_page_cannot_frame_the_api_docs(page, site):
    page.set_content(f'<iframe src="{site.url}/api/v1/ui/" width="800" height="600"></iframe>')
    frame = page.frame_locator("iframe")
    page.wait_for_timeout(2000)  # time enough for the docs to render, were they allowed
    expect(frame.locator(".opblock")).to_have_count(0)


def test_the_api_docs_show_the_share_links_document_one_pick_away(page):
    page.add_init_script(REPORT_VIOLATIONS)
    page.goto("/api/v1/ui/")
    page.locator(".topbar select").select_option(label="Share links (/s)")
    content = page.locator(".opblock").filter(has_text="/{token}/content")
    expect(content.first).to_be_visible()
    expect(page.locator(".opblock").filter(has_text="/-/openapi.json")).to_have_count(1)
    assert page.evaluate("window.__violations") == []
