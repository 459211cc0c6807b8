"""Checking a request's parameters against the spec, each schema compiled once.

Connexion's ParameterValidator (made anew for every request) deep-copies a parameter's
schema and builds a JSON Schema validator for it each time it checks a value: the larger
part of the work for a request with a query string. `check_parameter` builds each
parameter's validator the first time, keeps it, and checks the same way; what it finds
wrong it says as app.http.validation says it (Connexion's own text holds the value and the
schema: a whole `X-Share-Password`). `app.overrides.connexion` puts it in Connexion's place.
"""

from __future__ import annotations

import copy

from connexion.utils import is_null, is_nullable
from jsonschema import Draft4Validator, ValidationError

from app.http.validation import describe

# id(parameter) -> (the parameter, its validator). The spec's parameter dicts live as long
# as their app; holding each keeps its id from being reused by another.
_compiled: dict[int, tuple[dict, Draft4Validator]] = {}


def _validator(param: dict) -> Draft4Validator:
    entry = _compiled.get(id(param))
    if entry is None or entry[0] is not param:
        schema = copy.deepcopy(param).get("schema", param)
        entry = _compiled[id(param)] = (
            param,
            Draft4Validator(schema, format_checker=Draft4Validator.FORMAT_CHECKER),
        )
    return entry[1]


def check_parameter(parameter_type, value, param, param_name=None):
    """None when `value` passes `param`'s schema; else what is wrong with it."""
    if is_nullable(param) and is_null(value):
        return None
    if value is not None:
        try:
            _validator(param).validate(value)
        except ValidationError as exception:
            return describe(exception, place(parameter_type, param["name"]))
        return None
    if param.get("required"):
        return f"{place(parameter_type, param['name'])} is required."
    return None


def place(parameter_type: str, name: str) -> str:
    """A parameter, as the subject of a sentence."""
    if parameter_type == "header":
        return f"The {name} header"
    if parameter_type == "path":
        return f"The {name} in the URL"
    return f"The {name} {parameter_type} parameter"
