"""Fixtures the worker tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import WorkerProcess


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    """The worker processes a test started (it appends them); all are killed at its end."""
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.kill()
