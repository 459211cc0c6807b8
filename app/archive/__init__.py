"""Stored archives, written and read: one place that knows how a file's ZIP is laid out.

`writer` streams an upload into a one-entry ZIP and verifies what was stored, deflating
on one thread or, for a large file, on every core (`deflate`, as pigz does); `reader`
serves the ZIP (under the file's current name) and any range of the original out of it;
`bundle` makes one ZIP of many files from their stored entries, copied as they are;
`seek_index` is the map of the points a deflated entry can be inflated from, made while
compressing (`IndexedDeflate`, and the parallel deflate's unprimed blocks) or, for
archives written before there was one, by one pass over them (`zran`). Everything here
calls storage, downward, and nothing above it: the services call this package (the
compression job, which holds a lease and a row, is `app.services.compress_job`).
"""

from app.archive.layout import ArchiveMismatch

__all__ = ["ArchiveMismatch"]
