"""The app as a whole: what no single API's routes decide."""

from __future__ import annotations

import pytest

from tests.helpers import assert_problem


@pytest.mark.parametrize(
    "path", ["/app//main.js", "/s//x", "/s//x/content", "/app//evil.example/x", "/api/v1//files"]
)
def test_a_path_with_an_empty_segment_is_not_found(local_client, path):
    response = local_client.get(path, follow_redirects=False)
    # Not a redirect: one without `Location` (what Werkzeug's slash merging came to through
    # Connexion) leads nowhere, and one to `//x` would leave the site.
    assert "location" not in response.headers
    body = assert_problem(response, 404)
    assert body["detail"] == "No resource has this path."
