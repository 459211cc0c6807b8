"""Properties: the API takes exactly the names `check_name` takes, and keeps them intact."""

from __future__ import annotations

import unicodedata

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import accepted_names, rejected_names
from tests.helpers import assert_problem, upload

FILES = "/api/v1/files"
# The fixtures are set up once per test, not per example: each example makes an account of
# its own (rows in the test's transaction), so no example sees another's files.
EXAMPLES = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _rename(client, account, file_id, name):
    return client.patch(f"{FILES}/{file_id}", headers=account.headers, json={"name": name})


@EXAMPLES
@given(name=accepted_names, other=accepted_names)
def test_an_accepted_name_round_trips(local_client, make_account, name, other):
    account = make_account()
    created = upload(local_client, account, b"bytes", filename="client.bin", name=name)
    assert created.status_code == 202, created.text
    file = created.json()
    assert file["name"] == name

    listing = local_client.get(FILES, headers=account.headers).json()
    assert [item["name"] for item in listing["items"]] == [name]
    got = local_client.get(f"{FILES}/{file['id']}", headers=account.headers)
    assert got.json()["name"] == name

    if other != name:
        renamed = _rename(local_client, account, file["id"], other)
        assert renamed.status_code == 200, renamed.text
        assert renamed.json()["name"] == other
        got = local_client.get(f"{FILES}/{file['id']}", headers=account.headers)
        assert got.json()["name"] == other
    back = _rename(local_client, account, file["id"], name)
    assert back.status_code == 200, back.text
    assert local_client.get(f"{FILES}/{file['id']}", headers=account.headers).json() == {
        **file,
        "updated_at": back.json()["updated_at"],
    }

    deleted = local_client.delete(f"{FILES}/{file['id']}", headers=account.headers)
    assert deleted.status_code == 204


@EXAMPLES
@given(name=rejected_names)
def test_a_rejected_name_is_400_on_upload_and_rename(local_client, make_account, name):
    account = make_account()
    kept = "kept.txt"
    created = upload(local_client, account, b"kept", name=kept)
    assert created.status_code == 202, created.text
    file = created.json()

    assert_problem(upload(local_client, account, b"bytes", name=name), 400)
    assert_problem(_rename(local_client, account, file["id"], name), 400)

    listing = local_client.get(FILES, headers=account.headers).json()
    assert listing["total"] == 1
    assert listing["items"][0]["name"] == kept


@EXAMPLES
@given(name=accepted_names.map(lambda name: unicodedata.normalize("NFD", name)))
def test_any_spelling_of_an_accepted_name_is_stored_as_nfc(local_client, make_account, name):
    account = make_account()
    composed = unicodedata.normalize("NFC", name)
    created = upload(local_client, account, b"bytes", filename="client.bin", name=name)
    assert created.status_code == 202, created.text
    assert created.json()["name"] == composed
    # Whichever spelling comes next, it is the same name.
    assert_problem(upload(local_client, account, b"again", name=composed), 409)
    assert_problem(upload(local_client, account, b"again", name=name), 409)


@EXAMPLES
@given(raw=st.text(min_size=1, max_size=40))
def test_a_client_filename_is_stored_cleaned_or_refused_with_a_reason(
    local_client, make_account, raw
):
    account = make_account()
    response = upload(local_client, account, b"bytes", filename=raw)
    if response.status_code == 400:
        assert "cannot contain" in assert_problem(response, 400)["detail"]
        return
    assert response.status_code == 202, response.text
    name = response.json()["name"]
    assert unicodedata.is_normalized("NFC", name)
    assert _rename(local_client, account, response.json()["id"], name).status_code == 200
