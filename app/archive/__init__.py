"""Reading stored archives: one place that knows how a file's ZIP is laid out.

`reader` serves the ZIP (under the file's current name) and any range of the original
out of it; `seek_index` is the map of the points a deflated entry can be inflated from,
made while compressing (`IndexedDeflate`, and the parallel deflate's unprimed blocks) or,
for archives written before there was one, by one pass over them (`zran`). Everything
here calls storage, downward, and nothing above it: the services call this package.
"""

from app.archive.layout import ArchiveMismatch

__all__ = ["ArchiveMismatch"]
