"""factory_boy factories for rows, and hypothesis strategies beside them.

Each test's factories write through that test's session (see conftest.py: `factories`),
so the rows vanish with its transaction.
"""

from __future__ import annotations

import datetime as dt
import uuid

import factory
from hypothesis import strategies as st

from app.db import utcnow
from app.errors import InvalidInput
from app.models import File, FileStatus, Upload, User
from app.services import passwords
from app.services.names import BIDI_CONTROLS, MAX_NAME, check_name

PASSWORD = "correct horse battery staple"
# Real argon2id at a fraction of the production cost (0.15 s a hash): the suite registers,
# logs in and checks link passwords thousands of times. tests/services/test_passwords.py
# checks the production profile and that a login moves an old hash to the current cost.
TEST_PASSWORD_COST = {"password_hash_memory_kib": 256, "password_hash_time_cost": 1}
# One argon2 hash for every factory-made account, at the tests' cost.
_COST = TEST_PASSWORD_COST
PASSWORD_HASH = passwords.at_cost(
    _COST["password_hash_memory_kib"], _COST["password_hash_time_cost"]
).hash(PASSWORD)


class _Base(factory.alchemy.SQLAlchemyModelFactory):
    class Meta:
        abstract = True
        sqlalchemy_session_persistence = "commit"


class UserFactory(_Base):
    class Meta:
        model = User

    id = factory.LazyFunction(uuid.uuid4)
    email = factory.Sequence(lambda n: f"user-{n}-{uuid.uuid4().hex[:8]}@example.com")
    password_hash = PASSWORD_HASH


class FileFactory(_Base):
    """A file as an upload leaves it: pending, its bytes staged (not in storage here)."""

    class Meta:
        model = File

    id = factory.LazyFunction(uuid.uuid4)
    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"file-{n}.txt")
    status = FileStatus.PENDING
    size = 11
    sha256 = None
    crc32 = 0
    content_type = "text/plain"
    attempts = 0


class UploadFactory(_Base):
    """A resumable upload in progress, nothing written yet."""

    class Meta:
        model = Upload

    id = factory.LazyFunction(uuid.uuid4)
    owner_id = factory.LazyFunction(lambda: UserFactory().id)
    name = factory.Sequence(lambda n: f"upload-{n}.bin")
    content_type = "application/octet-stream"
    length = 100
    offset = 0
    crc32 = 0
    parts = 0
    expires_at = factory.LazyFunction(lambda: utcnow() + dt.timedelta(days=1))


FACTORIES = (UserFactory, FileFactory, UploadFactory)


def _accepted(name: str) -> bool:
    try:
        check_name(name)
    except InvalidInput:
        return False
    return True


def _kept_as_is(name: str) -> bool:
    return _accepted(name) and check_name(name) == name


# Names the service takes as they are (accepted, and already NFC), and names it refuses
# (`app.services.names`): path and control characters, and disguises.
accepted_names = st.text(min_size=1, max_size=MAX_NAME).filter(_kept_as_is)
_FORBIDDEN_CHARS = (
    st.sampled_from("/\\\x00\u2028\u2029")
    | st.characters(categories=["Cc"])
    | st.sampled_from(sorted(BIDI_CONTROLS))
    | st.sampled_from("\u200b\u2060\ufeff\u00ad\u3164")  # invisible wherever they are
)
rejected_names = st.one_of(
    st.sampled_from(["", ".", "..", "   ", "C:x", "x.", "x "]),
    st.text(min_size=MAX_NAME + 1, max_size=MAX_NAME + 40),
    st.tuples(st.text(max_size=20), _FORBIDDEN_CHARS, st.text(max_size=20)).map("".join),
).filter(lambda name: not _accepted(name))
