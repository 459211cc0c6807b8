"""Password hashing: argon2id at the cost the settings name.

The default is RFC 9106's second recommended profile (64 MiB, 3 passes, 4 lanes), about
0.15 s a hash here. Production refuses less than OWASP's floor for argon2id (19 MiB, 2
passes); a development or test deployment may go lower, which is what lets the test suite
register and log in thousands of times without spending minutes of CPU on it. A login with
a hash made at other parameters is checked against that hash's own parameters (they are in
the hash) and rehashed at the current ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.settings import Settings

LANES = 4
# The password hash of an account made by single sign-on (app.services.sso): no password
# matches it, and checking one takes as long as for an account that has none.
NO_PASSWORD = "!"  # noqa: S105 - not a password: the mark of having none


@dataclass(frozen=True)
class Passwords:
    hasher: PasswordHasher
    # Verified against when there is no hash to check (no such account), so that a failure
    # takes the same time whether or not the account exists.
    dummy_hash: str

    def hash(self, password: str) -> str:
        return self.hasher.hash(password)

    def matches(self, password_hash: str | None, password: str) -> bool:
        """Whether `password` is the one hashed; as slow for no hash (None, or NO_PASSWORD)
        as for one."""
        hashed = None if password_hash == NO_PASSWORD else password_hash
        try:
            self.hasher.verify(hashed or self.dummy_hash, password)
        except (VerificationError, InvalidHashError):
            return False
        return hashed is not None

    def needs_rehash(self, password_hash: str) -> bool:
        return self.hasher.check_needs_rehash(password_hash)


@cache
def at_cost(memory_kib: int, time_cost: int) -> Passwords:
    """The hasher of this cost (built once per cost, its dummy hash with it)."""
    hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=LANES)
    return Passwords(hasher, hasher.hash("not a real password, only for timing"))


def for_settings(settings: Settings) -> Passwords:
    return at_cost(settings.password_hash_memory_kib, settings.password_hash_time_cost)
