"""How the benches report: percentiles, PASS/FAIL verdicts and how busy the machine was."""

from __future__ import annotations

import os


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, round(p / 100 * len(ordered) + 0.4999))
    return ordered[min(rank, len(ordered)) - 1]


def quantiles(values: list[float], ps=(50, 90, 99), scale: float = 1.0, digits: int = 2) -> str:
    """`p50 1.23  p90 4.56  p99 7.89` of `values` times `scale` (1000: seconds as ms)."""
    return "  ".join(f"p{p:g} {percentile(values, p) * scale:.{digits}f}" for p in ps)


def failed(failures: list) -> str:
    """`failed: <the first> and N more`, or nothing when there are none."""
    return f"failed: {failures[0]!r} and {len(failures) - 1} more" if failures else ""


def word(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


class Verdicts:
    """The PASS/FAIL words of a bench's targets, remembering whether any failed."""

    def __init__(self) -> None:
        self.failed = False

    def __call__(self, ok: bool) -> str:
        self.failed |= not ok
        return word(ok)

    @property
    def ok(self) -> bool:
        return not self.failed


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: how busy the machine was."""
    return " ".join(f"{load:.2f}" for load in os.getloadavg())


def machine() -> str:
    """`load average 1.23 on 2 CPUs`: the 1-minute load, and what it is out of."""
    return f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
