"""Checking requests against the spec, in plain sentences that never repeat a secret.

Connexion's validators put jsonschema's own text in the 400 and the log: the failing value
first (`'Secr3tPW' is too short - 'password'`), for a parameter the whole schema after it.
Here every refusal the spec decides is said by `describe`, one sentence naming the place
and the rule (`The password must be at least 10 characters long.`) and never the value, so
nothing a person typed as a password (a property or header the spec marks `format:
password`) reaches an answer or a log line. The validators for JSON bodies and urlencoded
forms below, the multipart one (app.http.multipart) and the parameters'
(app.http.parameters) all say it this way.

Bodies are parsed within limits too: a JSON body nested deeper than `MAX_JSON_DEPTH`, or a
form with more than `MAX_FORM_FIELDS` fields, is refused before anything walks it.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from connexion.exceptions import BadRequestProblem
from connexion.validators import FormDataValidator, JSONRequestBodyValidator
from jsonschema import ValidationError
from starlette.formparsers import FormParser, MultiPartException
from starlette.types import Scope

from app.errors import InvalidInput

log = logging.getLogger(__name__)

# No request body of this API comes near either: they are flat objects and short forms.
MAX_JSON_DEPTH = 32
MAX_FORM_FIELDS = 16

_TYPES = {
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "object": "an object",
    "array": "a list",
    "null": "null",
}


def is_secret(schema: Any) -> bool:
    """Whether a (resolved) schema describes a secret value."""
    return isinstance(schema, dict) and (
        schema.get("format") == "password" or schema.get("writeOnly") is True
    )


def field_place(error: ValidationError, whole: str = "The request body") -> str:
    """Where in a body or form `error` lies, as the subject of a sentence: the field's
    `title` in the spec ("The number of days"), else its name ("The name")."""
    path = [str(part) for part in error.absolute_path]
    if not path:
        return whole
    title = error.schema.get("title") if isinstance(error.schema, dict) else None
    return title if isinstance(title, str) else f"The {'.'.join(path).replace('_', ' ')}"


def _listed(values: Any) -> str:
    return ", ".join(str(value) for value in values)


def _kind(expected: Any) -> str:
    kinds = expected if isinstance(expected, list) else [expected]
    return " or ".join(_TYPES.get(str(kind), str(kind)) for kind in kinds)


# The rules whose sentence needs only the limit the schema sets.
_RULES = {
    "minLength": "{place} must be at least {expected} characters long.",
    "maxLength": "{place} must be at most {expected} characters long.",
    "minimum": "{place} must be at least {expected}.",
    "maximum": "{place} must be at most {expected}.",
    "exclusiveMinimum": "{place} is out of range.",
    "exclusiveMaximum": "{place} is out of range.",
    "minItems": "{place} must have at least {expected} items.",
    "maxItems": "{place} must have at most {expected} items.",
}


def describe(error: ValidationError, place: str) -> str:
    """The 400's detail for `error` at `place` ("The password", "The Range header"): the
    rule the value broke, in words, without the value."""
    rule, expected = error.validator, error.validator_value
    instance = error.instance
    if rule in _RULES:
        return _RULES[rule].format(place=place, expected=expected)
    if rule == "type":
        return f"{place} must be {_kind(expected)}."
    if rule == "enum":
        return f"{place} must be one of: {_listed(expected)}."
    if rule == "required" and isinstance(instance, dict):
        missing = [name for name in expected if name not in instance]
        return f"{place} needs the field {_listed(missing)}."
    if rule == "additionalProperties" and isinstance(instance, dict):
        known = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        extra = sorted(str(name) for name in instance if name not in known)
        return f"{place} has fields this API does not know: {_listed(extra)}."
    if (rule == "format" and expected == "uuid") or (rule == "pattern" and _is_uuid(error)):
        return f"{place} must be a UUID (like 123e4567-e89b-12d3-a456-426614174000)."
    if rule == "format":
        return f"{place} must be a valid {expected}."
    if rule == "pattern":
        # What the pattern refuses, in words the spec gives beside it (`x-pattern-rule`).
        said = error.schema.get("x-pattern-rule") if isinstance(error.schema, dict) else None
        return f"{place} {said}." if said else f"{place} is not in the form this API expects."
    if rule == "not" and isinstance(expected, dict) and "enum" in expected:
        return f"{place} cannot be {' or '.join(repr(value) for value in expected['enum'])}."
    return f"{place} is not valid."


def _is_uuid(error: ValidationError) -> bool:
    return isinstance(error.schema, dict) and error.schema.get("format") == "uuid"


def refused(detail: str, validator: str) -> BadRequestProblem:
    """The 400 for a request the spec refuses, logged as Connexion logs its own."""
    log.info("Validation error: %s", detail, extra={"validator": validator})
    return BadRequestProblem(detail=detail)


def json_depth(value: Any) -> int:
    """How deeply arrays and objects nest in a parsed JSON value (a scalar is 0)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in item if isinstance(child, dict | list))
    return deepest


def too_deep() -> InvalidInput:
    return InvalidInput(
        f"The request body is nested too deeply (at most {MAX_JSON_DEPTH} levels of "
        "arrays and objects)."
    )


class SecretSafeJSONBodyValidator(JSONRequestBodyValidator):
    """Connexion's JSON body validator, within a nesting limit and in plain sentences."""

    async def _parse(self, stream, scope: Scope) -> Any:
        try:
            body = await super()._parse(stream, scope)
        except RecursionError:  # deeper than the parser itself can go
            raise too_deep() from None
        except BadRequestProblem:  # the parser's own words ("Expecting value: line 1…")
            raise InvalidInput("The request body is not valid JSON.") from None
        except UnicodeDecodeError:  # a ValueError too, but the client's bytes, not a number
            raise InvalidInput("The request body is not valid UTF-8.") from None
        except ValueError:  # int() refuses over 4,300 digits (sys.get_int_max_str_digits)
            raise InvalidInput("The request body holds a number too long to read.") from None
        if json_depth(body) > MAX_JSON_DEPTH:
            raise too_deep()
        return body

    def _validate(self, body: Any) -> dict | None:
        if not self._nullable and body is None:
            raise BadRequestProblem("The request needs a JSON body.")
        try:
            return self._validator.validate(body)
        except ValidationError as error:
            raise refused(describe(error, field_place(error)), "body") from None


class SafeFormValidator(FormDataValidator):
    """Connexion's urlencoded form validator, within a field limit and in plain sentences."""

    @property
    def _form_parser_cls(self):
        return functools.partial(FormParser, max_fields=MAX_FORM_FIELDS)

    async def _parse(self, stream, scope: Scope) -> dict:
        try:
            return await super()._parse(stream, scope)
        except MultiPartException:
            # Fields are counted as they are read: a form with thousands is refused at the
            # one past the limit. (A field over 1 MB cannot get past the body limit.)
            raise too_many_fields() from None

    def _validate(self, body: Any) -> dict | None:
        if not isinstance(body, dict):
            raise BadRequestProblem("The form could not be read.")
        if self._strict_validation:
            extra = sorted(set(body) - set(self._schema.get("properties", {})))
            if extra:
                raise refused(f"Unknown form fields: {_listed(extra)}.", "body")
        try:
            self._validator.validate(body)
        except ValidationError as error:
            raise refused(describe(error, field_place(error, "The form")), "body") from None
        return None


def too_many_fields() -> InvalidInput:
    return InvalidInput(f"The form has too many fields (at most {MAX_FORM_FIELDS}).")
