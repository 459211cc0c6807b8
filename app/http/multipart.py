"""A streaming `multipart/form-data` body validator for Connexion.

Connexion's own form validator reads the whole body into memory before validating it
(connexion issue #2062). This one parses the body as it arrives: the file part goes
straight to a spool file on disk (hashed on the way), the small text fields are kept,
and the fields are then validated against the operation's schema. Downstream, the
handler finds the spooled upload in the ASGI scope and receives an empty body.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any

from connexion.validators import AbstractRequestBodyValidator
from jsonschema import Draft4Validator, ValidationError
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope

from app.errors import InvalidInput, TooLarge
from app.http.streaming import Idle
from app.http.validation import describe, field_place
from app.services.sizes import iec
from app.services.spool import SpooledUpload

if TYPE_CHECKING:  # a TypedDict the package defines for type checkers only
    from python_multipart.multipart import MultipartCallbacks

UPLOAD_KEY = "instashare.upload"
FORM_KEY = "instashare.form"
MAX_FIELD_BYTES = 64 * 1024
MAX_PARTS = 16


def _is_file_schema(schema: dict) -> bool:
    return schema.get("type") == "string" and schema.get("format") in {"binary", "base64"}


def body_too_large(limit: int) -> TooLarge:
    return TooLarge(f"An upload form may be at most {iec(limit)} in all.", limit="body")


def misplaced_file(file_field: str, got: str) -> InvalidInput:
    """The answer to a file sent under another field's name (`curl -F data=@x`)."""
    return InvalidInput(f"Put the file in the form field {file_field!r} (got {got!r}).")


class _FormCollector:
    """Receives the parser's callbacks: one file part to disk, text parts to memory."""

    def __init__(self, file_fields: set[str], spool_dir, known_fields: set[str]):
        self.file_fields = file_fields
        self.known_fields = known_fields
        # Where a file sent under a wrong name should have gone: said only when unambiguous.
        self.file_field = next(iter(file_fields)) if len(file_fields) == 1 else None
        self.spool_dir = spool_dir
        self.upload: SpooledUpload | None = None
        self.fields: dict[str, list[str]] = {}
        self.file_counts: dict[str, int] = {}
        self._fd: int | None = None
        self._headers: dict[bytes, bytes] = {}
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._name: str | None = None
        self._value: bytearray | None = None
        self.parts = 0

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
        }

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise InvalidInput(f"The form has too many fields (at most {MAX_PARTS}).")
        self._headers = {}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[bytes(self._header_field).lower()] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def on_headers_finished(self) -> None:
        disposition, options = parse_options_header(
            self._headers.get(b"content-disposition", b"").decode("latin-1")
        )
        if disposition != b"form-data" or b"name" not in options:
            raise InvalidInput("Every form part needs a Content-Disposition with a name.")
        self._name = options[b"name"].decode("utf-8", "replace")
        if self._name in self.file_fields:
            self.file_counts[self._name] = self.file_counts.get(self._name, 0) + 1
            if self.upload is not None:
                raise InvalidInput(f"Send one file per request (field {self._name!r}).")
            self.upload, self._fd = SpooledUpload.create(self.spool_dir)
            filename = options.get(b"filename")
            # Browsers and curl send UTF-8 here; RFC 7578 forbids the filename* form.
            self.upload.filename = filename.decode("utf-8", "replace") if filename else None
            content_type = self._headers.get(b"content-type")
            self.upload.content_type = content_type.decode("latin-1") if content_type else None
        elif self.file_field is not None and b"filename" in options:
            # A file under another name would be refused as an unknown or oversized text
            # field, which does not tell the client what to change.
            raise misplaced_file(self.file_field, self._name)
        else:
            self._value = bytearray()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = memoryview(data)[start:end]
        if self._fd is not None and self.upload is not None:
            self.upload.update(chunk)
            while chunk:
                written = os.write(self._fd, chunk)
                chunk = chunk[written:]
        elif self._value is not None:
            self._value += chunk
            if len(self._value) > MAX_FIELD_BYTES:
                if self.file_field is not None and self._name not in self.known_fields:
                    raise misplaced_file(self.file_field, self._name or "")
                raise InvalidInput(f"Form field {self._name!r} is over {MAX_FIELD_BYTES} bytes.")

    def on_part_end(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        elif self._value is not None and self._name is not None:
            try:
                text = self._value.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidInput(f"Form field {self._name!r} is not UTF-8 text.") from None
            self.fields.setdefault(self._name, []).append(text)
            self._value = None

    def abort(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        if self.upload is not None:
            self.upload.discard()


class StreamingMultipartValidator(AbstractRequestBodyValidator):
    """Validates multipart bodies with bounded memory; see the module docstring."""

    spool_dir: Any = None
    max_body_bytes: int = 0
    idle_seconds: float = 60.0

    @classmethod
    def configured(
        cls, spool_dir, max_body_bytes: int, idle_seconds: float
    ) -> type[StreamingMultipartValidator]:
        """This validator bound to the service's spool directory, body limit and idle time."""
        return type(
            cls.__name__,
            (cls,),
            {
                "spool_dir": spool_dir,
                "max_body_bytes": max_body_bytes,
                "idle_seconds": idle_seconds,
            },
        )

    def __init__(self, *, schema: dict, strict_validation: bool, **kwargs: Any):
        super().__init__(schema=schema, strict_validation=strict_validation, **kwargs)
        properties = schema.get("properties", {})
        self._file_fields = {k for k, v in properties.items() if _is_file_schema(v)}
        self._known_fields = set(properties)

    async def wrap_receive(self, receive: Receive, *, scope: Scope) -> tuple[Receive, Scope]:
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise body_too_large(self.max_body_bytes)
        _, params = parse_options_header(headers.get("content-type", ""))
        boundary = params.get(b"boundary")
        if not boundary:
            raise InvalidInput("A multipart/form-data body needs a boundary parameter.")

        collector = _FormCollector(self._file_fields, self.spool_dir, self._known_fields)
        try:
            await self._parse_stream(receive, MultipartParser(boundary, collector.callbacks()))
            form = self._validate_form(collector)
        except BaseException:
            collector.abort()
            raise

        scope = dict(scope)
        scope["extensions"] = {
            **scope.get("extensions", {}),
            UPLOAD_KEY: collector.upload,
            FORM_KEY: form,
        }
        scope["headers"] = [
            (k, v) for k, v in scope["headers"] if k.lower() not in {b"content-length"}
        ] + [(b"content-length", b"0")]

        async def empty_body() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        return empty_body, scope

    async def _parse_stream(self, receive: Receive, parser: MultipartParser) -> None:
        received = 0
        with Idle(self.idle_seconds) as idle:
            while True:
                message = await idle.receive(receive)
                if message["type"] == "http.disconnect":
                    raise ClientDisconnect()
                body = message.get("body", b"")
                received += len(body)
                if received > self.max_body_bytes:
                    raise body_too_large(self.max_body_bytes)
                try:
                    parser.write(body)
                except MultipartParseError as exc:
                    raise InvalidInput(f"The multipart body is malformed: {exc}") from None
                if not message.get("more_body", False):
                    break
        if parser.state != MultipartState.END:
            # A body cut short must not pass for a complete (truncated) file.
            raise InvalidInput("The multipart body ended before its closing boundary.")

    def _validate_form(self, collector: _FormCollector) -> dict[str, Any]:
        """Check the text fields and the file's presence against the operation's schema."""
        data: dict[str, Any] = {}
        for key, values in collector.fields.items():
            data[key] = values[0] if len(values) == 1 else values
        for key, count in collector.file_counts.items():
            data[key] = "" if count == 1 else [""] * count
        if self._strict_validation:
            extra = set(data) - self._known_fields
            if extra and collector.file_field is not None and not collector.file_counts:
                raise misplaced_file(collector.file_field, sorted(extra)[0])
            if extra:
                raise InvalidInput(f"Unknown form fields: {', '.join(sorted(extra))}.")
        try:
            Draft4Validator(self._schema, format_checker=Draft4Validator.FORMAT_CHECKER).validate(
                data
            )
        except ValidationError as exc:
            raise InvalidInput(describe(exc, field_place(exc, "The form"))) from None
        return {k: v for k, v in data.items() if k not in self._file_fields}
