"""One problem scheme everywhere: `type` is `/problems/<title>`, whoever refused the request."""

from __future__ import annotations

import pytest

from app.errors import problem_type
from tests.helpers import assert_problem

CASES = {
    "body breaks the schema": (400, "POST", "/api/v1/users/register", {"json": {"email": "a"}}),
    "query breaks the schema": (400, "GET", "/api/v1/files?limit=0", {"auth": True}),
    "app's own rule": (400, "GET", "/api/v1/files?cursor=garbage", {"auth": True}),
    "no token": (401, "GET", "/api/v1/files", {}),
    "bad token": (401, "GET", "/api/v1/files", {"headers": {"Authorization": "Bearer x.y.z"}}),
    "no route": (404, "GET", "/api/v1/nowhere", {}),
    "no route outside the API": (404, "GET", "/nowhere", {}),
    "wrong method": (405, "DELETE", "/api/v1/health", {}),
    "wrong media type": (
        415,
        "POST",
        "/api/v1/users/login",
        {"content": b"{}", "headers": {"Content-Type": "text/plain"}},
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_problem_has_a_problems_type(local_client, alice, case):
    status, method, url, kwargs = CASES[case]
    kwargs = dict(kwargs)
    if kwargs.pop("auth", False):
        kwargs["headers"] = alice.headers
    body = assert_problem(local_client.request(method, url, **kwargs), status)
    assert body["type"] == problem_type(body["title"])
    assert body["type"].startswith("/problems/")


def test_a_spec_violation_is_the_apps_invalid_input(local_client):
    body = assert_problem(local_client.post("/api/v1/users/register", json={"email": "a"}), 400)
    assert (body["type"], body["title"]) == ("/problems/invalid-input", "Invalid Input")


def test_a_wrong_method_says_which_ones_the_path_takes(local_client):
    response = local_client.delete("/api/v1/health")
    assert_problem(response, 405)
    assert set(response.headers["allow"].replace(" ", "").split(",")) >= {"GET"}
