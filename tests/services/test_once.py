"""Values taken once, within a short time (single sign-on's state and one-time codes)."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.services.once import MemoryOneTime, RedisOneTime


@pytest.fixture(params=["memory", "redis"])
def store(request):
    if request.param == "memory":
        return MemoryOneTime()
    return RedisOneTime(request.getfixturevalue("redis_client"))


def test_a_value_is_taken_once(store):
    key = uuid.uuid4().hex
    store.put(key, "kept", 60)
    assert store.take(key) == "kept"
    assert store.take(key) is None
    assert store.take(uuid.uuid4().hex) is None


def test_a_value_is_gone_after_its_time(store):
    key = uuid.uuid4().hex
    store.put(key, "kept", 1)
    time.sleep(1.2)
    assert store.take(key) is None


def test_of_many_takers_at_once_one_gets_it(store):
    key = uuid.uuid4().hex
    store.put(key, "kept", 60)
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda _: store.take(key), range(32)))
    assert got.count("kept") == 1


def test_the_memory_store_holds_at_most_its_limit():
    store = MemoryOneTime(limit=100)
    for i in range(1000):
        store.put(str(i), "v", 60)
    assert len(store._values) <= 100
    assert store.take("999") == "v"  # the newest are kept
    assert store.take("0") is None
