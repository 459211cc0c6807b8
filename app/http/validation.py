"""JSON request bodies validated against the spec without repeating a secret.

Connexion's JSON body validator puts the failing value in the 400's `detail` and logs it
(`'Secr3tPW' is too short - 'password'`). This one says which rule a value broke instead:
for a property the spec marks `format: password` (or `writeOnly`) the message never holds
the value, and any other message that would repeat a secret from the same body is replaced
by one naming only the place and the rule.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from connexion.exceptions import BadRequestProblem
from connexion.json_schema import format_error_with_path
from connexion.validators import JSONRequestBodyValidator
from jsonschema import ValidationError

log = logging.getLogger(__name__)


def is_secret(schema: Any) -> bool:
    """Whether a (resolved) schema describes a secret value."""
    return isinstance(schema, dict) and (
        schema.get("format") == "password" or schema.get("writeOnly") is True
    )


def secret_values(schema: Any, instance: Any) -> Iterator[Any]:
    """Every value in `instance` that `schema` marks as secret."""
    if not isinstance(schema, dict):
        return
    if is_secret(schema):
        yield instance
        return
    for part in schema.get("allOf", []):
        yield from secret_values(part, instance)
    if isinstance(instance, dict):
        for name, subschema in schema.get("properties", {}).items():
            if name in instance:
                yield from secret_values(subschema, instance[name])
    elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for item in instance:
            yield from secret_values(schema["items"], item)


def _place(error: ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "the body"


def _rule(error: ValidationError) -> str:
    """What the value had to be, in words, without the value."""
    if error.validator == "minLength":
        return f"must be at least {error.validator_value} characters"
    if error.validator == "maxLength":
        return f"must be at most {error.validator_value} characters"
    if error.validator == "type":
        return f"must be of type {error.validator_value}"
    return f"breaks the rule `{error.validator}`"


def describe(error: ValidationError, schema: dict, body: Any) -> str:
    """The 400's detail for `error`: Connexion's own, unless it would show a secret."""
    if is_secret(error.schema):
        name = _place(error).replace("_", " ")
        return f"The {name} {_rule(error)}."
    detail = f"{error.message}{format_error_with_path(exception=error)}"
    shown = [repr(value) for value in secret_values(schema, body) if value not in ("", None)]
    if any(value in detail for value in shown):
        return f"The value at '{_place(error)}' {_rule(error)}."
    return detail


class SecretSafeJSONBodyValidator(JSONRequestBodyValidator):
    """Connexion's JSON body validator, with messages that never hold a secret."""

    def _validate(self, body: Any) -> dict | None:
        if not self._nullable and body is None:
            raise BadRequestProblem("Request body must not be empty")
        try:
            return self._validator.validate(body)
        except ValidationError as error:
            detail = describe(error, self._schema, body)
            log.info("Validation error: %s", detail, extra={"validator": "body"})
            raise BadRequestProblem(detail=detail) from None
