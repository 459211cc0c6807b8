"""The embedded default's broker: kombu's `filesystem://` transport, publishing atomically.

kombu 5.7 creates a message file and then writes it, while a consumer may already have
moved and read it: an empty payload, a JSONDecodeError, and the whole worker stops
("Unrecoverable error"). Seen under `instashare-server dev` when the API and the beat
scheduler published while the worker polled. Here a message is written under a name no
consumer looks at (it does not end in `.<queue>.msg`) and renamed into place, whole.
`app.queue.celery` names this Transport for a `filesystem://` broker. Guarded in
app.overrides (`check_versions`).
"""

from __future__ import annotations

import contextlib
import os
import uuid

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

# The longest one wait for a message lasts before the worker's loop looks up again.
DRAIN_SECONDS = 0.25


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        """Put `payload` onto `queue`: written beside its final name, then renamed."""
        name = f"{round(filesystem.monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        temp = os.path.join(self.data_folder_out, f".{uuid.uuid4().hex}.writing")
        try:
            with open(temp, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(temp, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel

    def drain_events(self, connection, timeout=None):
        # Celery's loop for a broker like this one (no event loop to watch) notices a
        # shutdown only between two calls here, each polling for up to 2 s: polling for at
        # most a quarter of a second lets a worker told to stop begin at once.
        if timeout is not None:
            timeout = min(timeout, DRAIN_SECONDS)
        return super().drain_events(connection, timeout=timeout)
