"""Where this code reaches into libraries' internals, and the versions each was written for.

Five places replace or lean on what a library keeps to itself, each for a reason its module
gives; an upgrade of that library may change what they rely on without a word:

- `app.overrides.uvicorn`: httptools' protocol hands a request body's pieces on uncopied
  (`on_body`); `app.http.protocol` builds on it, and its `data_received` restates uvicorn's.
- `app.overrides.stream_zip`: stream-zip takes its CRC-32 from ISA-L (its `zlib`).
- `app.overrides.kombu`: the `filesystem://` broker publishes a message whole (rename).
- `app.overrides.connexion`: parameters checked with validators built once, and a security
  function's signature kept on it (Connexion asks for it on every request).

So each library has a guard here naming the versions its override was written for (those
requirements.lock pins, and what `pip install -e .` installs when it differs): the API's
factory and the worker's Celery app call `check_versions()` first, and any other version
stops the process with one line naming the library, the version found and those
supported. After reading the library's new code against the override, add the version.

This module imports no library it guards (the worker never loads uvicorn's or Connexion's
override; the API never loads kombu's), so each override is imported where it is used.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib.metadata import version


class UnsupportedVersion(RuntimeError):
    """An installed library is not a version the override of its internals was written for."""


@dataclass(frozen=True)
class Guard:
    library: str  # the distribution's name, as pip and requirements.lock spell it
    supported: tuple[str, ...]
    overrides: str  # what of it is overridden, and where

    def check(self, found: str | None = None) -> None:
        """Raise UnsupportedVersion unless `found` (default: the installed one) is supported."""
        found = version(self.library) if found is None else found
        if found not in self.supported:
            raise UnsupportedVersion(
                f"{self.library} {found} is installed, but {self.overrides} was written for "
                f"{self.library} {' or '.join(self.supported)}: read the override against "
                "that version, then add it to app/overrides/__init__.py."
            )


GUARDS = (
    # 0.54.0 is the lock's; 0.55.0 what `pip install -e .` takes, its on_body and
    # data_received unchanged (tests/http/test_protocol.py compares their source).
    Guard("uvicorn", ("0.54.0", "0.55.0"), "app.overrides.uvicorn (and app.http.protocol)"),
    Guard("stream-zip", ("0.0.84",), "app.overrides.stream_zip"),
    Guard("kombu", ("5.7.0",), "app.overrides.kombu"),
    Guard("connexion", ("3.3.0",), "app.overrides.connexion"),
)


@functools.cache
def check_versions() -> None:
    """Raise UnsupportedVersion (one line) if any guarded library is not a supported version."""
    for guard in GUARDS:
        guard.check()
