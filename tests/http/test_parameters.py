"""Parameters checked with schemas compiled once say what Connexion's own checks say."""

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
    assert compiled.validate_parameter(param["in"], value, param) == expected
    assert compiled.validate_parameter(param["in"], value, param) == expected  # and again
