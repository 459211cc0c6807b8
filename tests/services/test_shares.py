"""The resume rule of a link with a limit: a counted download's ticket resumes it for a while
and for about one more copy of the file, counted in the database for every API process.

Run on PostgreSQL (`serve`) and on SQLite (the embedded default), with sessions that commit
for real: the racing tests need each request's own transaction.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

from app.db import make_session_factory, utcnow
from app.errors import Gone
from app.models import File, FileStatus, Share, ShareDownload, User
from app.services import shares
from tests.factories import PASSWORD_HASH
from tests.helpers import committing_engine

SIZE = 1_000_000
HOUR = dt.timedelta(hours=1)
SECRET = "a secret for the tests of tickets"


@pytest.fixture(params=["postgresql", "sqlite"])
def committing(request, tmp_path) -> Iterator[sessionmaker]:
    """Sessions that commit on this run's PostgreSQL database, or on a new SQLite one."""
    engine = committing_engine(request, tmp_path)
    factory = make_session_factory(engine)
    owners: list[uuid.UUID] = []
    request.node.owners = owners
    yield factory
    with factory() as session:
        session.execute(sa.delete(User).where(User.id.in_(owners)))  # cascades to links
        session.commit()
    if request.param == "sqlite":
        engine.dispose()


def _link(request, committing: sessionmaker, max_downloads: int | None = 3) -> Share:
    owner = User(id=uuid.uuid4(), email=f"{uuid.uuid4().hex}@example.com")
    owner.password_hash = PASSWORD_HASH
    file = File(
        id=uuid.uuid4(),
        owner_id=owner.id,
        name="data.bin",
        status=FileStatus.READY,
        size=SIZE,
        crc32=0,
        content_type="application/octet-stream",
        attempts=0,
    )
    share = Share(
        id=uuid.uuid4(),
        file_id=file.id,
        owner_id=owner.id,
        serves="original",
        max_downloads=max_downloads,
        downloads=0,
    )
    with committing() as session:
        session.add(owner)
        session.flush()
        session.add(file)
        session.flush()
        session.add(share)
        session.commit()
    request.node.owners.append(owner.id)
    return share


def _count(committing: sessionmaker, share: Share) -> int:
    with committing() as session:
        return shares.count_download(session, share.id, resume_window=24 * HOUR)


def _reserve(committing: sessionmaker, share: Share, number: int, length: int) -> bool:
    with committing() as session:
        return shares.reserve_resume(session, share.id, number, length, size=SIZE, window=24 * HOUR)


def _rows(committing: sessionmaker, share: Share) -> dict[int, int]:
    with committing() as session:
        rows = session.scalars(select_downloads(share))
        return {row.number: row.resumed_bytes for row in rows}


def select_downloads(share: Share):
    return sa.select(ShareDownload).where(ShareDownload.share_id == share.id)


def test_the_budget_is_one_copy_and_a_quarter_reserved_a_sixteenth_at_a_time():
    assert shares.resume_budget(1_000_000) == 1_250_000
    assert shares.resume_budget(13) == 13 + 4  # rounded up
    assert shares.resume_budget(0) == 0
    assert shares.resume_step(1_000_000_000) == 1_250_000_000 // 16
    assert shares.resume_step(1_000_000) == 256 * 1024  # at least


def test_a_ticket_names_its_download_and_nothing_else_passes(request, committing):
    share = _link(request, committing)
    base = '"abc123"'
    ticket = shares.resume_ticket(SECRET, share, 2, base)
    assert shares.presented_ticket(SECRET, share, base, None, ticket) == shares.Ticket(ticket, 2)
    forged = ticket.replace(".d2.", ".d3.")
    assert shares.presented_ticket(SECRET, share, base, forged, base) is None
    assert shares.presented_ticket("another secret", share, base, ticket) is None
    assert shares.presented_ticket(SECRET, share, '"other"', ticket) is None  # a new file


def test_resumes_spend_the_budget_and_what_was_not_sent_comes_back(request, committing):
    share = _link(request, committing)
    number = _count(committing, share)
    assert _rows(committing, share) == {number: 0}
    assert _reserve(committing, share, number, SIZE - 1)  # a whole resume
    assert not _reserve(committing, share, number, SIZE - 1)  # the same again: too much
    assert _reserve(committing, share, number, 250_001)  # up to the budget exactly
    assert not _reserve(committing, share, number, 1)
    with committing() as session:
        shares.give_back(session, share.id, number, 600_000)  # a cut one sent the rest only
    assert _rows(committing, share) == {number: 650_000}
    with committing() as session:
        # A resume starts only with room for all it is to send, reserving a first step.
        assert not shares.reserve_resume(
            session, share.id, number, 1000, size=SIZE, window=24 * HOUR, room=600_001
        )
        assert shares.reserve_resume(
            session, share.id, number, 1000, size=SIZE, window=24 * HOUR, room=600_000
        )
    assert _rows(committing, share) == {number: 651_000}
    assert _reserve(committing, share, number, 599_000)
    assert not _reserve(committing, share, number + 1, 1)  # no such download: no resume


def test_a_ticket_resumes_only_within_its_window(request, committing):
    share = _link(request, committing)
    number = _count(committing, share)
    with committing() as session:
        assert shares.reserve_resume(session, share.id, number, 10, size=SIZE, window=HOUR)
        session.execute(
            sa.update(ShareDownload)
            .where(ShareDownload.share_id == share.id)
            .values(began_at=utcnow() - HOUR - dt.timedelta(seconds=5))
        )
        session.commit()
        assert not shares.reserve_resume(session, share.id, number, 10, size=SIZE, window=HOUR)
        assert shares.reserve_resume(session, share.id, number, 10, size=SIZE, window=2 * HOUR)
        # A resume under way reserves its next steps without the hours: they do not cut it.
        assert shares.reserve_resume(session, share.id, number, 10, size=SIZE, window=None)


def test_counting_makes_the_row_and_drops_the_links_rows_past_the_window(request, committing):
    share = _link(request, committing, max_downloads=5)
    assert [_count(committing, share) for _ in range(2)] == [1, 2]
    with committing() as session:
        session.execute(
            sa.update(ShareDownload)
            .where(ShareDownload.share_id == share.id, ShareDownload.number == 1)
            .values(began_at=utcnow() - 25 * HOUR)
        )
        session.commit()
    assert _count(committing, share) == 3
    assert sorted(_rows(committing, share)) == [2, 3]
    # A link without a limit keeps no rows: its ranges never count.
    unlimited = _link(request, committing, max_downloads=None)
    with committing() as session:
        assert shares.count_download(session, unlimited.id) == 1
    assert _rows(committing, unlimited) == {}


def test_the_sweep_forgets_downloads_past_their_hours_and_keeps_the_rest(request, committing):
    share = _link(request, committing, max_downloads=10)
    for _ in range(5):
        _count(committing, share)
    with committing() as session:
        session.execute(
            sa.update(ShareDownload)
            .where(ShareDownload.share_id == share.id, ShareDownload.number <= 3)
            .values(began_at=utcnow() - 25 * HOUR)
        )
        session.commit()
        assert shares.forget_downloads(session, 24 * HOUR, batch=2) == 3  # in two batches
    assert sorted(_rows(committing, share)) == [4, 5]
    assert _reserve(committing, share, 5, 10)  # a live ticket still resumes
    with committing() as session:
        assert shares.forget_downloads(session, 24 * HOUR) == 0


def test_the_last_download_is_counted_once_and_then_gone(request, committing):
    share = _link(request, committing, max_downloads=1)
    assert _count(committing, share) == 1
    with pytest.raises(Gone) as refused:
        _count(committing, share)
    assert refused.value.extra["reason"] == "exhausted"
    assert sorted(_rows(committing, share)) == [1]


def test_racing_replays_get_one_copy_between_them(request, committing):
    """Twenty resumes of the whole file at once (as from any number of API processes):
    the database lets exactly one through."""
    share = _link(request, committing, max_downloads=1)
    number = _count(committing, share)
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda _: _reserve(committing, share, number, SIZE - 1), range(20)))
    assert results.count(True) == 1
    assert _rows(committing, share) == {number: SIZE - 1}


# --- what counts as a download (no database: the rule alone) ---------------------------------


def _unsaved(max_downloads: int | None = None, downloads: int = 0) -> Share:
    return Share(
        id=uuid.uuid4(),
        file_id=uuid.uuid4(),
        max_downloads=max_downloads,
        downloads=downloads,
        serves="zip",
    )


TICKET = shares.Ticket('"abc.d1.0011223344556677"', 1)
Count = shares.Count


@pytest.mark.parametrize(
    ("max_downloads", "bodiless", "starts_at", "counts"),
    [
        (None, False, 0, Count.NEW),  # a GET from the first byte
        (None, False, 10, Count.NONE),  # a range of a link without a limit: one download
        (None, True, 0, Count.NONE),  # HEAD or 304
        (3, False, 0, Count.NEW),
        (3, False, 10, Count.NEW),  # a range without a ticket on a limited link counts
        (3, True, 0, Count.NONE),
    ],
)
def test_without_a_ticket_a_get_from_the_first_byte_counts(
    max_downloads, bodiless, starts_at, counts
):
    share = _unsaved(max_downloads)
    got = shares.download_counts(
        share, None, bodiless=bodiless, not_modified=False, starts_at=starts_at
    )
    assert got is counts


def test_a_ticket_resumes_a_range_from_further_on_and_a_head_of_it_is_not_counted():
    share = _unsaved(3, downloads=3)  # used up: a resume still answers
    resume = shares.download_counts(share, TICKET, bodiless=False, not_modified=False, starts_at=5)
    assert resume is Count.RESUME
    head = shares.download_counts(share, TICKET, bodiless=True, not_modified=False, starts_at=5)
    assert head is Count.NONE
    cached = shares.download_counts(share, TICKET, bodiless=True, not_modified=True, starts_at=0)
    assert cached is Count.NONE


def test_a_ticket_from_the_first_byte_is_a_new_download():
    share = _unsaved(3, downloads=1)
    got = shares.download_counts(share, TICKET, bodiless=False, not_modified=False, starts_at=0)
    assert got is Count.NEW


def test_a_used_up_link_refuses_a_new_download_even_a_head():
    share = _unsaved(2, downloads=2)
    for bodiless in (False, True):
        with pytest.raises(Gone) as refused:
            shares.download_counts(share, None, bodiless=bodiless, not_modified=False, starts_at=0)
        assert refused.value.extra["reason"] == "exhausted"
    # A resume whose time or bytes ran out becomes a new download: refused as well.
    with pytest.raises(Gone):
        shares.new_download(share, bodiless=False, starts_at=5)


def test_a_ticket_is_for_one_link_and_one_download():
    link, other = _unsaved(3), _unsaved(3)
    base = '"abc123"'
    ticket = shares.resume_ticket(SECRET, link, 4, base)
    assert shares.presented_ticket(SECRET, link, base, "junk", f"{ticket}, *") == shares.Ticket(
        ticket, 4
    )
    assert shares.presented_ticket(SECRET, other, base, ticket) is None
    assert shares.resume_ticket(SECRET, link, 5, base) != ticket
