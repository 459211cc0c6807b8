"""The spec's bearer scheme: verifies the JWT. Runs on the event loop, so CPU only."""

from __future__ import annotations

from app.services import tokens
from app.settings import Settings

_settings: Settings | None = None


def configure(settings: Settings) -> None:
    """Called by create_app: Connexion's security handlers run outside any app context."""
    global _settings
    _settings = settings


def bearer_info(token: str) -> dict[str, str]:
    """Token info for a valid token; raises Unauthorized (401) for anything else."""
    assert _settings is not None, "create_app() configures security first"
    return {"sub": str(tokens.verify(_settings, token))}
