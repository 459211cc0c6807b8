"""A link's QR code, for a phone to open it: an SVG made here (segno, pure Python), served
from the link's own origin, so the web app's and the share page's CSP stay as they are."""

from __future__ import annotations

import io

import segno


def svg(url: str) -> bytes:
    """The QR code of `url` as a standalone SVG (dark on light, a quiet zone of 4 modules;
    no script, no style)."""
    out = io.BytesIO()
    # Level M (15% of the code may be lost): a link printed or shown on a screen with a glare.
    segno.make(url, error="m", micro=False).save(
        out,
        kind="svg",
        border=4,
        omitsize=True,  # a viewBox only: the page that shows it says how big
        dark="#000",
        light="#fff",
        title="QR code of the link",
        xmldecl=False,
        nl=False,
    )
    return out.getvalue()
