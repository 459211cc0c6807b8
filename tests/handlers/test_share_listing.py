"""The owner's side of links: how long one lasts, pages of them, and how many still work."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import update

from app.models import Share
from tests.helpers import assert_problem, run_jobs, upload

ME = "/api/v1/users/me"


def _ready_file(client, app, account, filename: str) -> str:
    created = upload(client, account, b"some shared bytes", filename)
    assert created.status_code == 202, created.text
    run_jobs(app)
    return created.json()["id"]


def _share(client, account, file_id: str, **body) -> dict:
    made = client.post(f"/api/v1/files/{file_id}/shares", headers=account.headers, json=body)
    assert made.status_code == 201, made.text
    return made.json()


def _all_pages(client, account, path: str, limit: int) -> tuple[list[dict], list[int]]:
    """Every link, following the cursor; and the `total` each page said."""
    seen, totals, cursor = [], [], None
    while True:
        query = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        page = client.get(path, headers=account.headers, params=query)
        assert page.status_code == 200, page.text
        seen += page.json()["items"]
        totals.append(page.json()["total"])
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return seen, totals


def _active(client, account) -> int:
    me = client.get(ME, headers=account.headers)
    assert me.status_code == 200, me.text
    return me.json()["active_shares"]


def test_links_page_newest_first_across_pages_with_an_exact_total(
    local_client, local_app, alice, bob, session
):
    first = _ready_file(local_client, local_app, alice, "a.txt")
    second = _ready_file(local_client, local_app, alice, "b.txt")
    made = [_share(local_client, alice, first if n % 2 else second) for n in range(7)]
    _share(local_client, bob, _ready_file(local_client, local_app, bob, "c.txt"))
    # Three links made in the same instant: the id decides their order, and a page boundary
    # between them loses or repeats none.
    same = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    tied = [uuid.UUID(s["id"]) for s in made[2:5]]
    session.execute(update(Share).where(Share.id.in_(tied)).values(created_at=same))
    session.flush()

    seen, totals = _all_pages(local_client, alice, "/api/v1/shares", limit=3)
    assert len(totals) == 3 and set(totals) == {7}

    def created(share: dict) -> dt.datetime:
        return (
            same
            if uuid.UUID(share["id"]) in tied
            else dt.datetime.fromisoformat(share["created_at"])
        )

    newest_first = sorted(made, key=lambda s: (created(s), uuid.UUID(s["id"])), reverse=True)
    assert [s["id"] for s in seen] == [s["id"] for s in newest_first]

    of_first, totals = _all_pages(local_client, alice, f"/api/v1/files/{first}/shares", limit=2)
    assert set(totals) == {3} and len(totals) == 2
    assert [s["id"] for s in of_first] == [s["id"] for s in newest_first if s["file_id"] == first]


def test_a_cursor_not_given_out_by_the_server_is_400(local_client, alice):
    for cursor in ("not-a-cursor", "WyIyMDI2LTAxLTAxVDAwOjAwOjAwIiwgIngiXQ", "é"):
        response = local_client.get(
            "/api/v1/shares", headers=alice.headers, params={"cursor": cursor}
        )
        assert_problem(response, 400)


def test_active_shares_follow_creation_revocation_expiry_exhaustion_and_deletion(
    local_client, local_app, alice, bob, session
):
    kept = _ready_file(local_client, local_app, alice, "kept.txt")
    doomed = _ready_file(local_client, local_app, alice, "doomed.txt")
    assert _active(local_client, alice) == 0

    revoked = _share(local_client, alice, kept)
    expiring = _share(local_client, alice, kept)
    limited = _share(local_client, alice, kept, max_downloads=1, serves="original")
    _share(local_client, alice, kept, password="open sesame")
    _share(local_client, alice, doomed)
    _share(local_client, alice, doomed)
    _share(local_client, bob, _ready_file(local_client, local_app, bob, "other.txt"))
    assert _active(local_client, alice) == 6
    assert _active(local_client, bob) == 1

    deleted = local_client.delete(f"/api/v1/shares/{revoked['id']}", headers=alice.headers)
    assert deleted.status_code == 204
    assert _active(local_client, alice) == 5

    session.execute(
        update(Share)
        .where(Share.id == uuid.UUID(expiring["id"]))
        .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    )
    session.flush()
    assert _active(local_client, alice) == 4

    path = "/s/" + limited["url"].rsplit("/s/", 1)[1] + "/content"
    assert local_client.get(path).status_code == 200  # its one download
    assert _active(local_client, alice) == 3

    assert local_client.delete(f"/api/v1/files/{doomed}", headers=alice.headers).status_code == 204
    assert _active(local_client, alice) == 1
    assert _active(local_client, bob) == 1


def test_a_link_may_last_hours_instead_of_days(local_client, local_app, alice):
    file_id = _ready_file(local_client, local_app, alice, "brief.txt")
    made = _share(local_client, alice, file_id, expires_in_hours=12)
    left = dt.datetime.fromisoformat(made["expires_at"]) - dt.datetime.now(dt.UTC)
    assert dt.timedelta(hours=12) - left < dt.timedelta(minutes=1)
    for body in (
        {"expires_in_hours": 12, "expires_in_days": 1},
        {"expires_in_hours": 12, "never_expires": True},
        {"expires_in_hours": 100_000},
        {"expires_in_hours": 0},
    ):
        response = local_client.post(
            f"/api/v1/files/{file_id}/shares", headers=alice.headers, json=body
        )
        assert_problem(response, 400)
