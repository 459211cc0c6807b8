"""Every operation's handler is written one way, and handlers do not import each other."""

from __future__ import annotations

import ast
import inspect
import pkgutil
import typing
from pathlib import Path

import pytest
import yaml

import app.handlers
from app.http.streaming import Exchange

SPECS = sorted((Path(__file__).resolve().parents[2] / "swagger").glob("*.yaml"))
HANDLERS = Path(app.handlers.__file__).parent


def _operation_ids() -> list[str]:
    found = []
    for spec in SPECS:
        for item in yaml.safe_load(spec.read_text(encoding="utf-8"))["paths"].values():
            found += [op["operationId"] for op in item.values() if isinstance(op, dict)]
    return found


OPERATIONS = _operation_ids()


def test_the_specs_name_every_operation():
    assert len(OPERATIONS) == len(set(OPERATIONS)) > 30


@pytest.mark.parametrize("operation_id", OPERATIONS)
def test_each_handler_is_a_coroutine_taking_one_exchange(operation_id):
    handler = pkgutil.resolve_name(operation_id)
    assert operation_id.startswith("app.handlers.")
    assert inspect.iscoroutinefunction(handler), f"{operation_id} is not `async def`"
    parameters = list(inspect.signature(handler).parameters.values())
    assert [p.name for p in parameters] == ["request"], operation_id
    assert typing.get_type_hints(handler)["request"] is Exchange, operation_id
    assert handler.__doc__, f"{operation_id} has no docstring"


@pytest.mark.parametrize("module", sorted(HANDLERS.glob("*.py")), ids=lambda p: p.name)
def test_no_handler_module_imports_another(module):
    imported = set()
    for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
            imported |= {f"{node.module}.{alias.name}" for alias in node.names}
    handlers = {name for name in imported if name.startswith("app.handlers")}
    assert handlers == set(), f"{module.name} imports {sorted(handlers)}"
