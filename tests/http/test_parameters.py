"""Parameters checked with schemas compiled once pass and refuse what Connexion's own checks
do, and say why in a plain sentence without the value."""

from __future__ import annotations

import pytest
from connexion.validators import ParameterValidator

from app.http.parameters import CompiledParameterValidator

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
