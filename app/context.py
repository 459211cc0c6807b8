"""Per-request context that services may read without importing the web layer."""

from __future__ import annotations

import contextvars

# The request id of the request (or job) being handled, for logs and job headers.
REQUEST_ID = contextvars.ContextVar[str | None]("request_id", default=None)
