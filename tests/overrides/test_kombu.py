"""The embedded default's broker: a consumer never reads a message that is half-written."""

from __future__ import annotations

import multiprocessing

from kombu import Connection
from kombu.transport import filesystem

from app.overrides.kombu import Transport

MESSAGES = 3000


def _connect(transport, tmp_path) -> Connection:
    options = {"data_folder_in": str(tmp_path), "data_folder_out": str(tmp_path)}
    return Connection("filesystem://", transport=transport, transport_options=options)


def _publish(transport, tmp_path) -> None:
    with _connect(transport, tmp_path) as connection:
        channel = connection.channel()
        for i in range(MESSAGES):
            channel._put("jobs", {"body": "x" * 20000, "n": i})


def _hammer(transport, tmp_path) -> list[Exception]:
    """Publish from another process (the API) while this one consumes (the worker)."""
    errors: list[Exception] = []
    received = 0
    publisher = multiprocessing.get_context("spawn").Process(
        target=_publish, args=(transport, tmp_path)
    )
    with _connect(transport, tmp_path) as connection:
        consumer = connection.channel()
        publisher.start()
        while received + len(errors) < MESSAGES:
            try:
                consumer._get("jobs")
                received += 1
            except filesystem.Empty:
                if not publisher.is_alive() and not any(tmp_path.glob("*.jobs.msg")):
                    break
            except ValueError as exc:  # JSONDecodeError: it read a file still being written
                errors.append(exc)
    publisher.join()
    assert publisher.exitcode == 0
    assert received + len(errors) == MESSAGES
    return errors


def test_every_message_is_read_whole(tmp_path):
    # kombu's own filesystem.Transport fails this in most runs (2 of 3 here): its consumer
    # reads files the publisher has created but not yet written.
    assert _hammer(Transport, tmp_path) == []
