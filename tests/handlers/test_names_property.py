"""Properties: the API takes exactly the names `check_name` takes, and keeps them intact."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.errors import InvalidInput
from app.services.names import MAX_NAME, check_name
from tests.conftest import upload
from tests.handlers.support import assert_problem, fresh_database, quiet_settings, running_app

FILES = "/api/v1/files"
EXAMPLES = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def accepted(name: str) -> bool:
    try:
        check_name(name)
    except InvalidInput:
        return False
    return True


ACCEPTED = st.text(min_size=1, max_size=MAX_NAME).filter(accepted)
FORBIDDEN_CHARS = st.sampled_from("/\\\x00") | st.characters(categories=["Cc"])
REJECTED = st.one_of(
    st.sampled_from(["", ".", ".."]),
    st.text(min_size=MAX_NAME + 1, max_size=MAX_NAME + 40),
    st.tuples(st.text(max_size=20), FORBIDDEN_CHARS, st.text(max_size=20)).map("".join),
).filter(lambda name: not accepted(name))


@pytest.fixture(scope="module")
def names_app(local_settings, redis_client, tmp_path_factory):
    """A local app whose files no worker touches (so ETags and statuses stay put)."""
    with fresh_database() as url:
        spool = tmp_path_factory.mktemp("spool")
        with running_app(quiet_settings(local_settings, url, spool)) as app:
            yield app


@pytest.fixture
def names_client(names_app):
    with names_app.test_client() as test_client:
        yield test_client


@pytest.fixture
def account(names_client, make_account):
    return make_account(names_client)


def _rename(client, account, file_id, name):
    return client.patch(f"{FILES}/{file_id}", headers=account.headers, json={"name": name})


@EXAMPLES
@given(name=ACCEPTED, other=ACCEPTED)
def test_an_accepted_name_round_trips(names_client, account, name, other):
    created = upload(names_client, account, b"bytes", filename="client.bin", name=name)
    assert created.status_code == 202, created.text
    file = created.json()
    assert file["name"] == name

    listing = names_client.get(FILES, headers=account.headers).json()
    assert [item["name"] for item in listing["items"]] == [name]
    got = names_client.get(f"{FILES}/{file['id']}", headers=account.headers)
    assert got.json()["name"] == name

    if other != name:
        renamed = _rename(names_client, account, file["id"], other)
        assert renamed.status_code == 200, renamed.text
        assert renamed.json()["name"] == other
        got = names_client.get(f"{FILES}/{file['id']}", headers=account.headers)
        assert got.json()["name"] == other
    back = _rename(names_client, account, file["id"], name)
    assert back.status_code == 200, back.text
    assert names_client.get(f"{FILES}/{file['id']}", headers=account.headers).json() == {
        **file,
        "updated_at": back.json()["updated_at"],
    }

    deleted = names_client.delete(f"{FILES}/{file['id']}", headers=account.headers)
    assert deleted.status_code == 204


@EXAMPLES
@given(name=REJECTED)
def test_a_rejected_name_is_400_on_upload_and_rename(names_client, account, name):
    kept = "kept.txt"
    existing = names_client.get(FILES, headers=account.headers).json()["items"]
    if not existing:
        created = upload(names_client, account, b"kept", name=kept)
        assert created.status_code == 202, created.text
        existing = [created.json()]
    (file,) = existing

    assert_problem(upload(names_client, account, b"bytes", name=name), 400)
    assert_problem(_rename(names_client, account, file["id"], name), 400)

    listing = names_client.get(FILES, headers=account.headers).json()
    assert listing["total"] == 1
    assert listing["items"][0]["name"] == kept
