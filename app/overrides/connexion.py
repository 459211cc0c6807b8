"""Connexion, where it does per request what can be done once.

- Its ParameterValidator (made anew for every request) deep-copies a parameter's schema and
  builds a JSON Schema validator for it each time it checks a value: the larger part of the
  work for a request with a query string. `CompiledParameterValidator` replaces the static
  method Connexion's own methods call, `validate_parameter`, with `app.http.parameters`'
  check, which builds each parameter's validator once and says what is wrong as the rest
  of the API does.
- It asks `inspect.signature` which keywords a security function takes, twice per request
  (`AbstractSecurityHandler._accepts_kwarg`); `signature_kept` stores the answer on the
  function, where `inspect.signature` looks first: a lookup instead of an introspection.

Guarded in app.overrides (`check_versions`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TypeVar

from connexion.validators import ParameterValidator

from app.http.parameters import check_parameter

F = TypeVar("F", bound=Callable)


class CompiledParameterValidator(ParameterValidator):
    """Connexion's parameter checks, with every parameter's validator built once."""

    validate_parameter = staticmethod(check_parameter)


def signature_kept(function: F) -> F:
    """`function`, with its signature stored on it for Connexion's per-request question."""
    function.__signature__ = inspect.signature(function)  # type: ignore[attr-defined]
    return function
