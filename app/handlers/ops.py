"""Handlers for operators: liveness, readiness and metrics."""

from __future__ import annotations

import logging

import flask
from connexion.problem import problem

from app import observability
from app.http.request import runtime
from app.http.responses import json_body
from app.services import files
from app.services import health as health_checks

log = logging.getLogger(__name__)


def health():
    """Liveness; touches no dependency."""
    return json_body({"status": "ok"})


def ready():
    """Readiness; the database, broker and storage answer."""
    rt = runtime()
    results = health_checks.check(rt.settings, rt.sessions, rt.storage)
    # Anyone may ask, so the answer names the dependency, never the driver's message (it
    # holds hosts and ports): that goes to the log, for the operator.
    checks = {name: "unavailable" if error else "ok" for name, error in results.items()}
    failed = [name for name, error in results.items() if error]
    for name in failed:
        log.warning("not ready: %s: %s", name, results[name])
    if failed:
        return problem(
            503,
            "Not Ready",
            "Unavailable: " + ", ".join(failed) + ".",
            type="/problems/not-ready",
            ext={"checks": checks},
        )
    return json_body({"status": "ready", "checks": checks})


def metrics():
    """Prometheus metrics (text exposition format)."""
    rt = runtime()

    def files_by_status() -> dict[str, int]:
        with rt.sessions() as session:
            return files.count_by_status(session)

    collector = observability.StateCollector(files_by_status, rt.jobs.queue_depth)
    body, content_type = observability.render(collector)
    return flask.Response(body, content_type=content_type)
