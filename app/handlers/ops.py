"""Handlers for operators: liveness, readiness and metrics."""

from __future__ import annotations

import json
import logging

from app import observability
from app.http.responses import json_body
from app.http.streaming import Exchange, Reply
from app.services import files
from app.services import health as health_checks

log = logging.getLogger(__name__)


async def health(request: Exchange) -> None:
    """Liveness; touches no dependency."""
    await request.reply(json_body({"status": "ok"}))


async def ready(request: Exchange) -> None:
    """Readiness; the database, broker and storage answer."""
    await request.reply(await request.run(_ready, request))


def _ready(request: Exchange) -> Reply:
    rt = request.runtime
    results = health_checks.check(rt.settings, rt.sessions, rt.storage)
    # Anyone may ask, so the answer names the dependency, never the driver's message (it
    # holds hosts and ports): that goes to the log, for the operator.
    checks = {name: "unavailable" if error else "ok" for name, error in results.items()}
    failed = [name for name, error in results.items() if error]
    for name in failed:
        log.warning("not ready: %s: %s", name, results[name])
    if failed:
        problem = {
            "type": "/problems/not-ready",
            "title": "Not Ready",
            "detail": "Unavailable: " + ", ".join(failed) + ".",
            "status": 503,
            "checks": checks,
        }
        return json.dumps(problem), 503, {"Content-Type": "application/problem+json"}
    return json_body({"status": "ready", "checks": checks})


async def metrics(request: Exchange) -> None:
    """Prometheus metrics (text exposition format)."""
    await request.reply(await request.run(_metrics, request))


def _metrics(request: Exchange) -> Reply:
    rt = request.runtime

    def files_by_status() -> dict[str, int]:
        try:
            return files.count_by_status(request.session)
        finally:
            request.release()

    collector = observability.StateCollector(files_by_status, rt.jobs.queue_depth)
    body, content_type = observability.render(collector)
    return body, 200, {"Content-Type": content_type}
