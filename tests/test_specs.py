"""Every spec in swagger/ marks each password-like value `format: password`: what the spec
marks so is never repeated in an answer or a log line (app.http.validation)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

SWAGGER = Path(__file__).resolve().parent.parent / "swagger"
SPECS = sorted(SWAGGER.glob("*.yaml"))
# Names people give secrets: password, passphrase, passwd, pwd, secret, pin, and any spelled
# with them (current_password, X-Share-Password, client_secret).
PASSWORD_LIKE = re.compile(r"pass(word|phrase|wd)|(^|[-_ ])(pwd|pin)($|[-_ ])|secret", re.I)


def _resolved(spec: dict, node: object) -> object:
    while isinstance(node, dict) and "$ref" in node:
        target: object = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            assert isinstance(target, dict)
            target = target[part]
        node = target
    return node


def named_schemas(spec: dict) -> Iterator[tuple[str, str, dict, dict | None]]:
    """(where, name, schema, parameter or None) of every parameter that is not a body
    (`parameter`: it, its schema resolved) and every property, their schemas resolved.

    The walk follows the document as written: what a `$ref` names is met where it is
    defined (under `components`), so every schema is seen."""

    def walk(node: object, where: str) -> Iterator[tuple[str, str, dict, dict | None]]:
        if isinstance(node, list):
            for index, item in enumerate(node):
                yield from walk(item, f"{where}/{index}")
            return
        if not isinstance(node, dict):
            return
        if node.get("in") in {"header", "query", "path", "cookie"} and "name" in node:
            schema = _resolved(spec, node.get("schema", {}))
            if isinstance(schema, dict):
                yield where, node["name"], schema, {**node, "schema": schema}
        properties = node.get("properties")
        if isinstance(properties, dict):
            for name, prop in properties.items():
                schema = _resolved(spec, prop)
                if isinstance(schema, dict):
                    yield f"{where}/properties/{name}", name, schema, None
        for key, value in node.items():
            yield from walk(value, f"{where}/{key}")

    yield from walk(spec, "#")


def password_like(spec: dict) -> Iterator[tuple[str, str, dict]]:
    """(where, name, schema) of every property and non-body parameter named like a secret
    that holds text."""
    for where, name, schema, parameter in named_schemas(spec):
        # Text only: `has_password` is a boolean, no secret.
        is_text = parameter is not None or schema.get("type", "string") == "string"
        if PASSWORD_LIKE.search(name) and is_text:
            yield where, name, schema


def test_the_walk_sees_every_spec_and_the_known_passwords():
    assert {spec.name for spec in SPECS} >= {"openapi.yaml", "share.yaml", "ops.yaml", "web.yaml"}
    found = set()
    for path in SPECS:
        found |= {name for _, name, _ in password_like(yaml.safe_load(path.read_text()))}
    assert found >= {"password", "current_password", "new_password", "X-Share-Password"}


@pytest.mark.parametrize("path", SPECS, ids=[spec.name for spec in SPECS])
def test_every_password_like_value_is_format_password(path):
    spec = yaml.safe_load(path.read_text())
    unmarked = [
        f"{where} ({name})"
        for where, name, schema in password_like(spec)
        if schema.get("format") != "password"
    ]
    assert unmarked == [], f"{path.name}: give these `format: password`: {unmarked}"
