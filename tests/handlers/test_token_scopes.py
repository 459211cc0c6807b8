"""Every operation of every spec, called with an API token of each scope: 403 exactly where
the scope does not reach, and past the scope check everywhere else.

The walk reads the documents in swagger/ as they are, so an operation (or a whole spec)
added later is checked the day it appears. A request here carries no body and made-up
ids: reaching the handler's 400 or 404 is reaching the operation; what matters is that
nothing before it said 403 for the scope (nor 401: the token held)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
import yaml
from sqlalchemy import update

from app.http.security import SCOPE_EXTENSION, bearer_operations, declared_scopes
from app.models import User
from app.services import api_tokens

# Every path parameter: an id no row has (ids are the same in every xdist process).
NO_SUCH_ID = "00000000-0000-4000-8000-000000000000"
SPECS = sorted((Path(__file__).resolve().parents[2] / "swagger").glob("*.yaml"))


def _operations() -> list[tuple[str, str, str, frozenset[str]]]:
    """(spec, method, URL, declared scope) of every operation a bearer token may call."""
    found = []
    for spec in SPECS:
        document = yaml.safe_load(spec.read_text(encoding="utf-8"))
        base = (document.get("servers") or [{"url": ""}])[0]["url"].rstrip("/")
        for path, method, operation in bearer_operations(document):
            url = base + re.sub(r"\{[^}]+\}", NO_SUCH_ID, path)
            found.append((spec.name, method, url, declared_scopes(operation)))
    return found


OPERATIONS = _operations()


def test_the_walk_finds_the_bearer_operations():
    assert len(OPERATIONS) >= 32
    assert set().union(*(scopes for *_, scopes in OPERATIONS)) == set(api_tokens.SCOPES)


def test_every_operation_of_the_api_declares_its_scope():
    document = yaml.safe_load((SPECS[0].parent / "openapi.yaml").read_text(encoding="utf-8"))
    undeclared = [
        f"{method.upper()} {path}"
        for path, method, operation in bearer_operations(document)
        if SCOPE_EXTENSION not in operation
    ]
    assert undeclared == []


def test_an_upload_token_reaches_uploads_and_nothing_else():
    reached = {
        (method, url.replace(NO_SUCH_ID, "{id}"))
        for _, method, url, scope in OPERATIONS
        if api_tokens.reaches(frozenset({"upload"}), scope)
    }
    assert reached == {
        ("post", "/api/v1/upload_files"),
        ("post", "/api/v1/folders"),
        ("post", "/api/v1/folder-paths"),
        ("get", "/api/v1/uploads"),
        ("post", "/api/v1/uploads"),
        ("head", "/api/v1/uploads/{id}"),
        ("patch", "/api/v1/uploads/{id}"),
        ("delete", "/api/v1/uploads/{id}"),
        # The same upload, its bytes sent straight to storage (where the server offers it).
        ("get", "/api/v1/direct-uploads"),
        ("post", "/api/v1/direct-uploads"),
        ("post", "/api/v1/direct-uploads/{id}/complete"),
        ("post", "/api/v1/direct-uploads/{id}/cancel"),
    }


@pytest.mark.parametrize(
    ("spec", "method", "url", "declared"),
    OPERATIONS,
    ids=[f"{method.upper()} {url.split('/api/v1')[-1]}" for _, method, url, _ in OPERATIONS],
)
def test_each_scope_gets_403_exactly_where_it_does_not_reach(
    local_client, alice, session, spec, method, url, declared
):
    user_id = uuid.UUID(alice.id)
    # An administrator: what a full token reaches includes the admin API (admin.yaml).
    session.execute(update(User).where(User.id == user_id).values(role="admin"))
    session.commit()
    for scope in api_tokens.SCOPES:
        # A token of its own for each call: one that logs out (revoking itself) spoils no other.
        _, token = api_tokens.create(session, user_id, name=f"walk {scope}", scopes=[scope])
        answer = local_client.request(
            method,
            url,
            headers={"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"},
        )
        where = f"{method.upper()} {url} ({spec}, needs {declared}) with a {scope} token"
        if api_tokens.reaches(frozenset({scope}), declared):
            assert answer.status_code not in (401, 403), f"{where}: {answer.text}"
        else:
            assert answer.status_code == 403, f"{where}: {answer.status_code} {answer.text}"
            if method != "head":
                named = " or ".join(s for s in api_tokens.SCOPES if s in declared)
                assert answer.json()["detail"].endswith(f"this needs the {named} scope.")
