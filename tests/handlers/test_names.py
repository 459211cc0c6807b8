"""Names that spoof, over HTTP: refused with a reason wherever a name comes in, and one
spelling (NFC) per name, in the listing, in clashes and in the ZIP entry."""

from __future__ import annotations

import io
import uuid
import zipfile

import pytest
from sqlalchemy import update

from app.models import File
from tests.handlers.test_tus import create as tus_create
from tests.helpers import assert_problem, run_jobs, runtime, spooled_files, stored_keys, upload

FILES = "/api/v1/files"
NFC = "caf\u00e9.txt"
NFD = "cafe\u0301.txt"

# (name, what the problem's detail must say)
DISGUISED = [
    ("invoice\u202efdp.exe", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
    ("report\u2066.pdf", "U+2066 (LEFT-TO-RIGHT ISOLATE)"),
    ("\u200freport.pdf", "U+200F (RIGHT-TO-LEFT MARK)"),
    ("\u061creport.pdf", "U+061C (ARABIC LETTER MARK)"),
    ("pay\u200bpal.pdf", "U+200B (ZERO WIDTH SPACE)"),
    ("pay\u200dpal.pdf", "U+200D (ZERO WIDTH JOINER)"),
    ("report\u2060.pdf", "U+2060 (WORD JOINER)"),
    ("\ufeffreport.pdf", "U+FEFF (ZERO WIDTH NO-BREAK SPACE)"),
    ("pay\u00adpal.pdf", "U+00AD (SOFT HYPHEN)"),
]
# Refused when chosen (the `name` field, a rename); a client's filename is cleaned of them.
UNTIDY = [
    ("two\u2028lines.txt", "line separators"),
    ("para\u2029graph.txt", "line separators"),
    ("   ", "only spaces"),
    ("report.pdf.", "end with a dot or a space"),
    ("report.pdf ", "end with a dot or a space"),
    ("C:report.txt", "drive letter such as 'C:'"),
]


def detail(response, status: int = 400) -> str:
    return assert_problem(response, status)["detail"]


def names_of(client, account) -> list[str]:
    listing = client.get(FILES, headers=account.headers, params={"sort": "name"})
    return [item["name"] for item in listing.json()["items"]]


def rename(client, account, file_id: str, name: str):
    return client.patch(f"{FILES}/{file_id}", headers=account.headers, json={"name": name})


@pytest.mark.parametrize(("name", "why"), DISGUISED + UNTIDY)
def test_a_disguised_explicit_name_is_refused_with_the_reason(
    local_app, local_client, alice, name, why
):
    response = upload(local_client, alice, b"data", filename="plain.txt", name=name)
    assert why in detail(response)
    assert names_of(local_client, alice) == []
    assert stored_keys(local_app, alice.id) == []
    assert spooled_files(runtime(local_app).settings) == []


@pytest.mark.parametrize(("name", "why"), DISGUISED)
def test_a_disguised_client_filename_is_refused_not_cleaned(local_client, alice, name, why):
    response = upload(local_client, alice, b"data", filename=f"Downloads/{name}")
    assert why in detail(response)
    assert names_of(local_client, alice) == []


@pytest.mark.parametrize(("name", "why"), DISGUISED)
def test_a_disguised_tus_filename_is_refused(local_client, alice, name, why):
    assert why in detail(tus_create(local_client, alice, 10, name))
    me = local_client.get("/api/v1/users/me", headers=alice.headers).json()
    assert me["usage"]["bytes_reserved"] == 0  # no upload was started
    assert names_of(local_client, alice) == []


@pytest.mark.parametrize(("name", "why"), DISGUISED + UNTIDY)
def test_a_rename_to_a_disguised_name_is_refused(local_client, alice, name, why):
    created = upload(local_client, alice, b"data", filename="kept.txt")
    assert created.status_code == 202, created.text
    assert why in detail(rename(local_client, alice, created.json()["id"], name))
    assert names_of(local_client, alice) == ["kept.txt"]


@pytest.mark.parametrize(
    ("filename", "stored"),
    [
        ("C:report.txt", "report.txt"),  # a drive-relative path, like a directory
        ("report.pdf.", "report.pdf"),  # as Windows would save it
        ("report.pdf . ", "report.pdf"),
        ("two\u2028lines.txt", "twolines.txt"),  # a line break, like "\n"
        (NFD, NFC),
    ],
)
def test_a_client_filename_is_tidied(local_client, make_account, filename, stored):
    account = make_account()
    response = upload(local_client, account, b"data", filename=filename)
    assert response.status_code == 202, response.text
    assert response.json()["name"] == stored
    created = tus_create(local_client, account, 4, filename)
    assert created.status_code == 409, created.text  # the same name: the clash rule applies


@pytest.mark.parametrize(
    "name",
    [
        "تقرير.pdf",  # right-to-left text needs no controls
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645.txt",  # Persian needs its ZWNJ
        "👩\u200d💻 notes.txt",  # an emoji ZWJ sequence
        "❤\ufe0f.txt",
        "10:30 meeting.txt",
        " leading space.txt",
    ],
)
def test_names_that_only_look_unusual_are_kept(local_client, alice, name):
    response = upload(local_client, alice, b"data", name=name)
    assert response.status_code == 202, response.text
    assert response.json()["name"] == name
    assert names_of(local_client, alice) == [name]


# One spelling per name


def test_a_decomposed_name_is_stored_composed(local_client, alice):
    response = upload(local_client, alice, b"data", name=NFD)
    assert response.status_code == 202, response.text
    assert response.json()["name"] == NFC
    assert names_of(local_client, alice) == [NFC]


@pytest.mark.parametrize(("first", "second"), [(NFD, NFC), (NFC, NFD)])
def test_both_spellings_clash_on_every_path(local_client, alice, first, second):
    assert upload(local_client, alice, b"one", name=first).status_code == 202
    assert_problem(upload(local_client, alice, b"two", name=second), 409)
    assert_problem(upload(local_client, alice, b"two", filename=second), 409)
    assert_problem(tus_create(local_client, alice, 3, second), 409)
    other = upload(local_client, alice, b"three", filename="other.txt").json()
    assert_problem(rename(local_client, alice, other["id"], second), 409)
    assert names_of(local_client, alice) == [NFC, "other.txt"]


def test_an_unfinished_tus_upload_holds_its_name_in_either_spelling(local_client, alice):
    assert tus_create(local_client, alice, 3, NFD).status_code == 201
    assert_problem(upload(local_client, alice, b"two", name=NFC), 409)
    assert_problem(tus_create(local_client, alice, 3, NFC), 409)


def test_renaming_to_the_other_spelling_of_its_own_name_changes_nothing(local_client, alice):
    created = upload(local_client, alice, b"one", name=NFC)
    response = rename(local_client, alice, created.json()["id"], NFD)
    assert response.status_code == 200, response.text
    assert response.json() == created.json()


def _zip_names(client, account, file_id: str) -> tuple[list[str], str]:
    response = client.get(f"{FILES}/{file_id}/content", headers=account.headers)
    assert response.status_code == 200, response.text
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.testzip() is None
        return archive.namelist(), response.headers["Content-Disposition"]


def test_the_zip_entry_carries_the_normalised_name(local_app, local_client, alice):
    created = upload(local_client, alice, b"text " * 1000, filename=f"dir/{NFD}")
    assert created.status_code == 202, created.text
    assert run_jobs(local_app) == ["ready"]
    entries, _ = _zip_names(local_client, alice, created.json()["id"])
    assert entries == [NFC]


def test_a_row_named_before_the_rules_downloads_under_a_clean_name(
    local_app, local_client, alice, session
):
    created = upload(local_client, alice, b"text " * 1000, filename="quarterly.txt")
    file_id = created.json()["id"]
    assert run_jobs(local_app) == ["ready"]
    # As if it had been stored before names were checked for disguises.
    session.execute(
        update(File).where(File.id == uuid.UUID(file_id)).values(name="invoice\u202efdp.exe")
    )
    session.commit()
    entries, disposition = _zip_names(local_client, alice, file_id)
    assert entries == ["invoicefdp.exe"]
    assert "\u202e" not in disposition and "%E2%80%AE" not in disposition
    assert "invoicefdp.exe.zip" in disposition
