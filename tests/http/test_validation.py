"""What the spec refuses is said in a plain sentence that never repeats a secret, and no
body is parsed past its limits: JSON nesting, form fields."""

from __future__ import annotations

import logging

import pytest

from app.http.multipart import MAX_PARTS
from app.http.validation import MAX_FORM_FIELDS, MAX_JSON_DEPTH
from tests.helpers import assert_problem, started_download, upload_ready

LOGIN = "/api/v1/users/login"
JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
DEEP = (
    f"The request body is nested too deeply (at most {MAX_JSON_DEPTH} levels of arrays and "
    "objects)."
)


@pytest.fixture
def ready_file(local_client, local_app, alice) -> str:
    return upload_ready(local_client, local_app, alice, b"shared bytes " * 100, "report.txt")


def _link(client, account, file_id, **body) -> str:
    made = client.post(f"/api/v1/files/{file_id}/shares", headers=account.headers, json=body)
    assert made.status_code == 201, made.text
    return "/s/" + made.json()["url"].rsplit("/s/", 1)[1]


def _logged(caplog) -> str:
    return "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)


# --- JSON nesting -----------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [50_000, MAX_JSON_DEPTH + 1])
def test_a_deeply_nested_body_is_a_400_on_every_json_route(local_client, alice, ready_file, depth):
    # The report's 50,000 `[` (unclosed: the parser gives up on the depth first), and one
    # level past the limit, closed.
    nested = "[" * depth + ("]" * depth if depth <= MAX_JSON_DEPTH + 1 else "")
    routes = [
        (LOGIN, {}, nested),
        ("/api/v1/users/register", {}, nested),
        (f"/api/v1/files/{ready_file}/shares", alice.headers, nested),
        # Deep below a property the schema would otherwise walk into.
        (LOGIN, {}, '{"email": ' + nested + ', "password": "x"}'),
    ]
    for path, headers, body in routes:
        response = local_client.post(path, headers={**headers, **JSON}, content=body)
        problem = assert_problem(response, 400)
        assert problem["detail"] == DEEP, path
        assert problem["type"] == "/problems/invalid-input"


def test_a_body_as_deep_as_the_limit_is_judged_by_the_schema(local_client):
    nested = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    response = local_client.post(LOGIN, headers=JSON, content=nested)
    assert assert_problem(response, 400)["detail"] == "The request body must be an object."


def test_a_body_that_is_not_json_says_so_plainly(local_client):
    response = local_client.post(LOGIN, headers=JSON, content=b'{"email": ')
    assert assert_problem(response, 400)["detail"] == "The request body is not valid JSON."


def test_a_number_too_long_to_read_is_a_400_not_a_500(local_client, alice, ready_file):
    # Python refuses to turn more than 4,300 digits into an int (a guard against slow
    # conversions), and says so with a ValueError the JSON parser lets through.
    digits = "9" * 5_000
    for path, headers, body in [
        (LOGIN, {}, '{"email": "a@example.com", "password": ' + digits + "}"),
        ("/api/v1/users/register", {}, "[" + digits + "]"),
        (f"/api/v1/files/{ready_file}/shares", alice.headers, '{"max_downloads": ' + digits + "}"),
    ]:
        response = local_client.post(path, headers={**headers, **JSON}, content=body)
        problem = assert_problem(response, 400)
        assert problem["detail"] == "The request body holds a number too long to read.", path


# --- form fields --------------------------------------------------------------------------------


def test_a_grant_form_with_thousands_of_fields_is_a_400(local_client, alice, ready_file):
    link = _link(local_client, alice, ready_file, password="sesame")
    body = "&".join(["f="] * 16_000)  # 48 kB: within the body limit
    response = local_client.post(f"{link}/grants", headers=FORM, content=body)
    problem = assert_problem(response, 400)
    assert problem["detail"] == f"The form has too many fields (at most {MAX_FORM_FIELDS})."
    # One field past the limit is refused the same way; unknown ones by name.
    body = "&".join(["password=sesame"] + [f"f{i}=" for i in range(MAX_FORM_FIELDS)])
    response = local_client.post(f"{link}/grants", headers=FORM, content=body)
    assert assert_problem(response, 400)["detail"].startswith("The form has too many fields")
    response = local_client.post(f"{link}/grants", headers=FORM, content="password=x&extra=1")
    assert assert_problem(response, 400)["detail"] == "Unknown form fields: extra."


def test_an_upload_with_thousands_of_fields_is_a_400(local_client, alice):
    boundary = "b0undary"
    part = f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\nx\r\n'
    body = (part * 16_000 + f"--{boundary}--\r\n").encode()
    response = local_client.post(
        "/api/v1/upload_files",
        headers={**alice.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        content=body,
    )
    problem = assert_problem(response, 400)
    assert problem["detail"] == f"The form has too many fields (at most {MAX_PARTS})."


# --- passwords are never repeated ---------------------------------------------------------------


def test_a_short_link_password_is_refused_without_repeating_it(
    local_client, alice, ready_file, caplog
):
    with caplog.at_level(logging.DEBUG):
        response = local_client.post(
            f"/api/v1/files/{ready_file}/shares", headers=alice.headers, json={"password": "abq"}
        )
    problem = assert_problem(response, 400)
    assert problem["detail"] == "The password must be at least 4 characters long."
    assert "abq" not in response.text
    assert caplog.records  # the refusal is logged, without the password
    assert "abq" not in _logged(caplog)


def test_an_oversize_share_password_header_is_refused_without_repeating_it(
    local_client, alice, ready_file, caplog
):
    link = _link(local_client, alice, ready_file, password="sesame")
    guess = "GuessedPassword-" * 70  # 1120 characters
    for path, method in ((link, "GET"), (f"{link}/content", "GET"), (f"{link}/grants", "POST")):
        caplog.clear()
        with caplog.at_level(logging.DEBUG):
            response = local_client.request(method, path, headers={"X-Share-Password": guess})
        problem = assert_problem(response, 400)
        assert problem["detail"] == (
            "The X-Share-Password header must be at most 1024 characters long."
        ), path
        assert "GuessedPassword" not in response.text
        assert "GuessedPassword" not in _logged(caplog), path


def test_the_grant_forms_password_follows_the_headers_rules(
    local_client, alice, ready_file, caplog
):
    link = _link(local_client, alice, ready_file, password="sesame")
    guess = "FormGuess-" * 110  # 1100 characters
    with caplog.at_level(logging.DEBUG):
        response = local_client.post(f"{link}/grants", data={"password": guess})
    problem = assert_problem(response, 400)
    assert problem["detail"] == "The password must be at most 1024 characters long."
    assert "FormGuess" not in response.text
    assert "FormGuess" not in _logged(caplog)
    right = local_client.post(f"{link}/grants", data={"password": "sesame"}, follow_redirects=False)
    started_download(right)
