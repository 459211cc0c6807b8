"""The HTTP edge's middleware: the security headers every answer carries."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from tests.handlers.test_webapp import CSP as WEBAPP_CSP

# What an answer that is no page of ours may load and be framed by: nothing, nobody.
API_CSP = "default-src 'none'; frame-ancestors 'none'"


def _directives(policy: str) -> dict[str, list[str]]:
    return {
        name: values
        for name, *values in (part.split() for part in policy.split(";") if part.strip())
    }


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def test_the_api_docs_cannot_be_framed_and_run_only_their_own_scripts(local_client):
    page = local_client.get("/api/v1/ui/")
    assert page.status_code == 200
    assert page.headers["x-frame-options"] == "DENY"
    policy = _directives(page.headers["content-security-policy"])
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["default-src"] == ["'none'"]
    # The page's one inline script (Swagger UI's configuration) and style block, by hash:
    # no other inline script runs, and nothing from another origin.
    (script,) = re.findall(r"<script>(.*?)</script>", page.text, re.DOTALL)
    (style,) = re.findall(r"<style>(.*?)</style>", page.text, re.DOTALL)
    assert policy["script-src"] == ["'self'", _sha256(script)]
    assert policy["style-src"] == ["'self'", _sha256(style)]
    assert policy["connect-src"] == ["'self'"]
    # What the page loads is there.
    for asset in re.findall(r'(?:src|href)="\./([^"]+)"', page.text):
        assert local_client.get(f"/api/v1/ui/{asset}").status_code == 200, asset


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/health", 200),
        ("/api/v1/openapi.json", 200),
        ("/api/v1/files", 401),
        ("/nowhere", 404),
        ("/metrics", 200),
    ],
)
def test_every_other_answer_loads_nothing_and_cannot_be_framed(local_client, path, status):
    response = local_client.get(path)
    assert response.status_code == status
    assert response.headers["content-security-policy"] == API_CSP
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_the_web_app_keeps_its_policy_and_a_share_page_its_own(local_client):
    assert local_client.get("/").headers["content-security-policy"] == WEBAPP_CSP
    # Its 404s too, which no handler of its answers.
    assert local_client.get("/app/nothing.js").headers["content-security-policy"] == WEBAPP_CSP
    page = local_client.get("/s/unknown-token", headers={"Accept": "text/html"})
    assert page.status_code == 404
    assert "style-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
