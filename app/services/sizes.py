"""Sizes as people read them: binary units written the IEC way (B, KiB, MiB, GiB, TiB).

Quotas and limits are configured in binary, so they read back exactly ("100 GiB", not
"107 GB"); one decimal place under 10, whole numbers from there ("4.2 MiB", "107 MiB").
The web app's `formatBytes` (app/webapp/ui.js) writes them the same way.
"""

from __future__ import annotations

UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def iec(size: int) -> str:
    """`size` bytes in the largest binary unit it reaches: "512 B", "4.2 MiB", "100 GiB"."""
    value, unit = float(size), 0
    while abs(value) >= 1024 and unit < len(UNITS) - 1:
        value /= 1024
        unit += 1
    if unit == 0:
        return f"{size} B"
    shown = f"{value:.1f}" if round(value, 1) < 10 else f"{round(value):.0f}"
    return f"{shown} {UNITS[unit]}"
