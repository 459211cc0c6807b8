"""Handlers for the documents that describe the routes outside the API's base path."""

from __future__ import annotations

import functools
from importlib.resources import files

import yaml

from app.http.responses import json_body
from app.http.streaming import Exchange


@functools.cache
def _share_links() -> dict:
    return yaml.safe_load(files("app.spec").joinpath("share.yaml").read_text(encoding="utf-8"))


async def share_links(request: Exchange) -> None:
    """The share links' OpenAPI document, as JSON, for REST clients."""
    await request.reply(json_body(_share_links()))
