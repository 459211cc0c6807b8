"""Thin HTTP handlers: validated arguments in, one service call, (body, status, headers) out."""

JSON = {"Content-Type": "application/json"}


def json_body(body: dict, status: int = 200, **headers: str) -> tuple[dict, int, dict[str, str]]:
    """A JSON answer; the spec declares several media types, so the type is named."""
    return body, status, {**JSON, **headers}
