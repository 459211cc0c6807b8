"""Connexion's overrides: parameters checked with schemas compiled once pass and refuse what
Connexion's own checks do, and say why in a plain sentence without the value; the bearer
check's signature is kept on it, and Connexion's per-request question gets that one."""

from __future__ import annotations

import inspect

import pytest
from connexion.utils import inspect_function_arguments
from connexion.validators import ParameterValidator

from app.http import security
from app.overrides.connexion import CompiledParameterValidator

LIMIT = {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 9}}
SORT = {"name": "sort", "in": "query", "schema": {"type": "string", "enum": ["name", "-name"]}}
REQUIRED = {"name": "file_id", "in": "path", "required": True, "schema": {"type": "string"}}
NULLABLE = {"name": "note", "in": "query", "schema": {"type": "string", "nullable": True}}


@pytest.mark.parametrize(
    ("param", "value"),
    [
        (LIMIT, 20), (LIMIT, 0), (LIMIT, 10), (LIMIT, "ten"), (LIMIT, None),
        (SORT, "name"), (SORT, "size"), (REQUIRED, None), (REQUIRED, "x"),
        (NULLABLE, None), (NULLABLE, "null"),
    ],
)  # fmt: skip
def test_each_value_gets_connexions_verdict(param, value):
    compiled = CompiledParameterValidator([LIMIT, SORT, REQUIRED, NULLABLE], uri_parser=None)
    expected = ParameterValidator.validate_parameter(param["in"], value, param)
    for _ in range(2):  # and again, from the validator kept
        said = compiled.validate_parameter(param["in"], value, param)
        assert (said is None) == (expected is None)
        if said is not None:
            assert said.startswith(f"The {param['name']} ") and said.endswith("."), said
            assert "Failed validating" not in said and repr(value) not in said


def test_the_app_checks_parameters_with_it(local_client, alice):
    # Connexion's own check would say "0 is less than the minimum of 1", with the value.
    response = local_client.get("/api/v1/files?limit=0", headers=alice.headers)
    assert response.status_code == 400
    assert response.json()["detail"].startswith("The limit query parameter ")


def test_bearer_info_keeps_its_signature_for_connexions_question_on_every_request(
    local_client, alice, monkeypatch
):
    kept = security.bearer_info.__signature__
    assert list(kept.parameters) == ["token", "request"]
    assert inspect_function_arguments(security.bearer_info) == (["token", "request"], False)
    answers = []
    signature = inspect.signature

    def watched(function, *args, **kwargs):
        answer = signature(function, *args, **kwargs)
        if function is security.bearer_info:
            answers.append(answer)
        return answer

    monkeypatch.setattr(inspect, "signature", watched)
    for _ in range(2):
        assert local_client.get("/api/v1/users/me", headers=alice.headers).status_code == 200
    # Connexion asks on every request, and each answer is the one kept: no introspection.
    assert len(answers) >= 2
    assert all(answer is kept for answer in answers)
