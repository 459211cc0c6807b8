"""Every value the specs refuse is refused in a plain sentence (issue 23, item 3): the walk
below breaks each constraint of every property and parameter of every spec and reads what
the 400 would say. No regex, no jsonschema wording, no quoted value followed by a dash."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import yaml
from jsonschema import Draft4Validator

from app.http.parameters import check_parameter
from app.http.validation import describe, field_place
from tests.helpers import assert_problem
from tests.test_specs import SPECS, named_schemas

RAW = re.compile(
    r"\^\[|\]\+\$|\\x[0-9a-f]{2}|' - '|does not match|less than the minimum|greater than the"
    r"|is not valid under|is too (long|short)|is not of type|is a required property"
    r"|minLength|maxLength|minimum of|maximum of|\bschema\b|\bpattern\b|\{|\}"
)
CANDIDATES = ["a/b.png", "", "x\n", "../", "zz", "-1", "1" * 30, "root/", "?"]


def bad_values(schema: dict) -> Iterator[object]:
    """Values that break `schema`'s constraints, one constraint at a time."""
    if "pattern" in schema:
        rx = re.compile(schema["pattern"])
        yield from [c for c in CANDIDATES if not rx.search(c)][:2]
    if "minimum" in schema:
        yield schema["minimum"] - 1
    if "maximum" in schema:
        yield schema["maximum"] + 1
    if schema.get("minLength", 0) > 0:
        yield "x" * (schema["minLength"] - 1)
    if "maxLength" in schema:
        yield "x" * (schema["maxLength"] + 1)
    if "enum" in schema:
        yield "none-of-these"
    if isinstance(schema.get("not"), dict) and "enum" in schema["not"]:
        yield schema["not"]["enum"][0]
    if schema.get("type") in {"integer", "number", "boolean"}:
        yield "text"
    elif schema.get("type") == "string":
        yield 5
    if schema.get("required") and schema.get("type") == "object":
        yield {}


def constrained(spec: dict) -> Iterator[tuple[str, str, dict, dict | None]]:
    """(where, name, schema, parameter or None) of every property and parameter the API
    checks (a cookie is no parameter of ours)."""
    for where, name, schema, parameter in named_schemas(spec):
        if parameter is None or parameter["in"] != "cookie":
            yield where, name, schema, parameter


def sentences(spec: dict) -> Iterator[tuple[str, object, str]]:
    for where, name, schema, param in constrained(spec):
        for value in bad_values(schema):
            if param is not None:
                said = check_parameter(param["in"], value, param)
                if said is not None:
                    yield where, value, said
                continue
            wrapper = {"type": "object", "properties": {name: schema}}
            for error in Draft4Validator(
                wrapper, format_checker=Draft4Validator.FORMAT_CHECKER
            ).iter_errors({name: value}):
                yield where, value, describe(error, field_place(error))


@pytest.mark.parametrize("path", SPECS, ids=[spec.name for spec in SPECS])
def test_every_refusal_the_specs_make_is_a_plain_sentence(path):
    said = list(sentences(yaml.safe_load(path.read_text())))
    raw = [(where, value, text) for where, value, text in said if RAW.search(text)]
    assert raw == []
    unfinished = [
        (where, text)
        for where, _, text in said
        if not text[:1].isupper() or not text.endswith(".") or text.endswith("..")
    ]
    assert unfinished == []


def test_the_walk_breaks_the_rules_people_meet(local_client, alice):
    spec = yaml.safe_load((SPECS[0].parent / "openapi.yaml").read_text())
    texts = {text for _, _, text in sentences(spec)}
    assert "The name can't contain /, \\ or control characters such as a line break." in texts
    assert "The number of days must be at least 1." in texts
    assert "The name cannot be '.' or '..'." in texts


def test_a_person_reads_what_is_wrong_not_the_schema(local_client, alice):
    folder = local_client.post("/api/v1/folders", headers=alice.headers, json={"name": "a/b.png"})
    assert assert_problem(folder, 400)["detail"] == (
        "The name can't contain /, \\ or control characters such as a line break."
    )
    dot = local_client.post("/api/v1/folders", headers=alice.headers, json={"name": ".."})
    assert assert_problem(dot, 400)["detail"] == "The name cannot be '.' or '..'."
    share = local_client.post(
        "/api/v1/shares",
        headers=alice.headers,
        json={
            "items": [{"kind": "file", "id": "123e4567-e89b-12d3-a456-426614174000"}],
            "expires_in_days": 0,
        },
    )
    assert assert_problem(share, 400)["detail"] == "The number of days must be at least 1."
