"""Sending a download, for every operation that sends one: a file's, a grant's, a link's.

Ranges and conditional requests (app.http.ranges), the headers every download carries, and
for a link, counting the download it makes (the rule is app.services.shares's) and the
resume of a counted one, whose bytes are reserved from its budget as they go.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterator, Mapping

from app import observability
from app.http import ranges
from app.http.links import refusals_counted
from app.http.responses import content_disposition
from app.http.streaming import Allowance, Exchange
from app.models import File, Share
from app.services import files, selections, shares

DOWNLOAD_CSP = "default-src 'none'; sandbox"


async def send_download(
    request: Exchange,
    result: files.Download,
    *,
    with_body: bool,
    extra_headers: Mapping[str, str] | None = None,
    allowance: Allowance | None = None,
    plan: ranges.Answer | None = None,
) -> int:
    """Answer with `result`'s bytes: ranges, conditional requests, HEAD; how many bytes of
    the body were sent (fewer than asked when the client went away, or `allowance` refused
    to let more go: see `Exchange.send_chunks`). `plan` is `answer`'s, if made already.

    Bytes that are one stored object, where the storage signs URLs, are not sent: a 302
    sends the client to a signed URL for them (the download decided and counted already;
    without `allowance`, which needs the bytes to pass here)."""
    if plan is None:
        plan = answer(request, result.size, result.etag)
    if with_body and allowance is None and plan.status != 304 and result.stored is not None:
        signed = await _signed(request, result)
        if signed is not None:
            await request.respond(
                302,
                {**(extra_headers or {}), "Location": signed, "Cache-Control": "private, no-store"},
            )
            return 0
    response_headers = {
        **plan.headers,
        "Content-Disposition": content_disposition(result.filename),
        # The bytes are whatever the uploader sent: never a page of ours that runs.
        "Content-Security-Policy": DOWNLOAD_CSP,
        **(extra_headers or {}),
    }
    if plan.status != 304:
        response_headers["Content-Type"] = result.content_type
    if not with_body or plan.status == 304:
        await request.respond(plan.status, response_headers)
        return 0
    chunks = result.chunks_from(plan.start, plan.length)
    # The first chunk before the status line: storage that does not answer is then a 503
    # with Retry-After (see app.http.problems), not a 200 that ends short.
    first = await request.run(next, chunks, b"")
    await request.respond(plan.status, response_headers, more=True)
    return await request.send_chunks(_beginning_with(first, chunks), allowance)


async def _signed(request: Exchange, result: files.Download) -> str | None:
    """A signed URL for `result`'s stored object, if the storage signs them."""
    assert result.stored is not None
    key, generation = result.stored
    rt = request.runtime
    return await request.run(
        rt.storage.signed_url,
        key,
        generation=generation,
        disposition=content_disposition(result.filename),
        content_type=result.content_type,
        seconds=rt.settings.signed_url_seconds,
    )


def _beginning_with(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


async def send_shared(
    request: Exchange,
    share: Share,
    file: File | None,
    *,
    with_body: bool,
    extra_headers: Mapping[str, str],
    member: uuid.UUID | None = None,
) -> None:
    """Answer with what `share` serves, counting the download (a link's or a grant's): its
    file, or for a folder or selection link (`file` None) its Download all, or its file
    `member` (which must be one it holds)."""
    storage = request.runtime.storage
    original = share.serves == "original"
    with refusals_counted():
        if file is not None and member is None:
            result = files.download_of(storage, file, original=original)
        else:
            result = await request.lookup(selections.download, storage, share, member)
        etag, plan, resume = await counted_etag(request, share, result, with_body=with_body)
    sent = 0
    try:
        sent = await send_download(
            request,
            dataclasses.replace(result, etag=etag),
            with_body=with_body,
            extra_headers=extra_headers,
            allowance=resume.reserve if resume is not None else None,
            plan=plan,
        )
    finally:
        if resume is not None:
            await resume.settle(sent)


class Resume:
    """A resume this request makes: it reserves its bytes from its download's budget a
    `shares.resume_step` ahead of what it sends, and gives back, once it ends, what it
    reserved and did not send (its client went away)."""

    def __init__(self, request: Exchange, share_id: uuid.UUID, number: int, length: int, size: int):
        self.request = request
        self.share_id = share_id
        self.number = number
        self.length = length
        self.size = size
        self.step = shares.resume_step(size)
        self.reserved = 0

    async def reserve(self, upto: int) -> bool:
        """Whether the first `upto` bytes of this answer may be sent (reserving the next
        step when they are not yet)."""
        if upto <= self.reserved:
            return True
        more = min(self.length - self.reserved, max(upto - self.reserved, self.step))
        granted = await self.request.lookup(
            shares.reserve_resume, self.share_id, self.number, more, size=self.size, window=None
        )
        if granted:
            self.reserved += more
        return granted

    async def start(self, window: dt.timedelta) -> bool:
        """Whether the ticket resumes (within `window` of its download's start, with room
        left in its budget for all this answer sends), reserving the first step if so."""
        first = min(self.length, self.step)
        granted = await self.request.lookup(
            shares.reserve_resume,
            self.share_id,
            self.number,
            first,
            size=self.size,
            window=window,
            room=self.length,
        )
        if granted:
            self.reserved = first
        return granted

    async def settle(self, sent: int) -> None:
        if sent < self.reserved:
            await self.request.lookup(
                shares.give_back, self.share_id, self.number, self.reserved - sent
            )
            self.reserved = sent


def answer(request: Exchange, size: int, etag: str) -> ranges.Answer:
    """How to answer this request's Range and conditional headers for `etag`."""
    headers = request.headers
    return ranges.answer(
        size,
        etag,
        range_header=headers.get("Range"),
        if_range=headers.get("If-Range"),
        if_none_match=headers.get("If-None-Match"),
    )


async def counted_etag(
    request: Exchange, share: Share, result: files.Download, *, with_body: bool
) -> tuple[str, ranges.Answer | None, Resume | None]:
    """Count the download this request makes, if it makes one (by the rule of
    `shares.download_counts`); the ETag to answer with, the plan of the answer (None when
    the ETag changed: a new ticket), and the resume it makes, if it makes one (its first
    step reserved)."""
    rt = request.runtime
    secret = rt.settings.secret_key
    headers = request.headers
    limited = share.max_downloads is not None
    ticket = (
        shares.presented_ticket(
            secret, share, result.etag, headers.get("If-Range"), headers.get("If-None-Match")
        )
        if limited
        else None
    )
    etag = ticket.tag if ticket is not None else result.etag
    plan = answer(request, result.size, etag)
    bodiless = not with_body or plan.status == 304
    count = shares.download_counts(
        share, ticket, bodiless=bodiless, not_modified=plan.status == 304, starts_at=plan.start
    )
    if count is shares.Count.RESUME:
        assert ticket is not None
        resume = Resume(request, share.id, ticket.number, plan.length, result.size)
        if await resume.start(dt.timedelta(hours=rt.settings.share_resume_hours)):
            return etag, plan, resume
        # Past its time or its bytes: not a resume any more, but a new download.
        count = shares.new_download(share, bodiless=False, starts_at=plan.start)
    if count is shares.Count.NONE:
        return etag, plan, None
    number = await request.lookup(
        shares.count_download,
        share.id,
        resume_window=dt.timedelta(hours=rt.settings.share_resume_hours) if limited else None,
    )
    observability.SHARE_DOWNLOADS.inc()
    if not limited:
        return etag, plan, None
    # A ticket of its own: the request's If-Range (an older ticket's) no longer matches.
    return shares.resume_ticket(secret, share, number, result.etag), None, None
