"""Domain errors. Services raise them; `app.http.problems` turns each into problem+json."""

from __future__ import annotations


def problem_type(title: str) -> str:
    """The `type` of every problem with this title: `/problems/<title in kebab case>`."""
    return "/problems/" + "-".join(title.lower().split())


class AppError(Exception):
    """An error a client can act on: it carries its HTTP status, a title and a detail."""

    status = 400
    title = "Bad Request"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None, **extra):
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra

    @property
    def type(self) -> str:
        return problem_type(self.title)


class InvalidInput(AppError):
    status, title = 400, "Invalid Input"


class Unauthorized(AppError):
    status, title = 401, "Unauthorized"


class Forbidden(AppError):
    status, title = 403, "Forbidden"


class NotFound(AppError):
    status, title = 404, "Not Found"


class Conflict(AppError):
    status, title = 409, "Conflict"


class Gone(AppError):
    """A share link that worked once and no longer does; `reason` says why."""

    status, title = 410, "Gone"


class NotReady(AppError):
    status, title = 409, "Not Ready"


class RequestTimeout(AppError):
    status, title = 408, "Request Timeout"


class PreconditionFailed(AppError):
    status, title = 412, "Precondition Failed"


class TooLarge(AppError):
    status, title = 413, "Payload Too Large"


class UnsupportedMediaType(AppError):
    status, title = 415, "Unsupported Media Type"


class Unprocessable(AppError):
    """Well-formed, but what it asks cannot be done (a direct upload's bytes are not the
    ones it declared)."""

    status, title = 422, "Unprocessable Content"


class TooManyRequests(AppError):
    status, title = 429, "Too Many Requests"


class BadGateway(AppError):
    """A server this one relies on for the request (an OpenID provider) failed."""

    status, title = 502, "Bad Gateway"


# The end of every StorageUnavailable sentence (what failed is said before it).
STORAGE_DOWN = "the storage failed or did not answer; retry in a moment."


class StorageUnavailable(AppError):
    """Storage failed or did not answer in time: the client may try again shortly."""

    status, title = 503, "Storage Unavailable"
    RETRY_AFTER_SECONDS = 30

    def __init__(self, detail: str, **extra):
        super().__init__(detail, headers={"Retry-After": str(self.RETRY_AFTER_SECONDS)}, **extra)


class MailUnavailable(AppError):
    """This server sends no mail (no SMTP server is set), so nothing that needs one works."""

    status, title = 503, "Mail Unavailable"


class RangeNotSatisfiable(AppError):
    status, title = 416, "Range Not Satisfiable"


class ChecksumMismatch(AppError):
    """tus checksum extension: the chunk's digest is not the one the client sent."""

    status, title = 460, "Checksum Mismatch"
