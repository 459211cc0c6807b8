"""Mail written to a directory, one `.eml` file each: `dev`'s transport, with no SMTP server.

A newcomer opens the file (any mail program reads `.eml`, and it is text) and clicks the
link in it. A file appears whole or not at all (written aside, then renamed).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import uuid
from email.message import EmailMessage
from pathlib import Path

from app.mail import MailDeferred

log = logging.getLogger(__name__)


class OutboxTransport:
    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def describe(self) -> str:
        return f"files in {self.directory}"

    def send(self, message: EmailMessage) -> None:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
        path = self.directory / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        partial = path.with_suffix(".part")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            partial.write_bytes(message.as_bytes())
            os.replace(partial, path)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise MailDeferred(f"cannot write {path}: {exc.strerror or exc}") from exc
        log.info("mail to %s (%s) written to %s", message["To"], message["Subject"], path)
