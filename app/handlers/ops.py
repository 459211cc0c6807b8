"""Handlers for operators: liveness, readiness and metrics."""

from __future__ import annotations

import flask
from connexion.problem import problem
from sqlalchemy import func, select

from app import observability
from app.handlers import json_body
from app.models import File, FileStatus
from app.services import health as health_checks
from app.web import runtime


def health():
    """Liveness; touches no dependency."""
    return json_body({"status": "ok"})


def ready():
    """Readiness; the database, broker and storage answer."""
    rt = runtime()
    results = health_checks.check(rt.settings, rt.sessions, rt.storage)
    checks = {name: error or "ok" for name, error in results.items()}
    failed = [f"{name}: {error}" for name, error in results.items() if error]
    if failed:
        return problem(
            503,
            "Not Ready",
            "Unavailable: " + "; ".join(failed),
            type="/problems/not-ready",
            ext={"checks": checks},
        )
    return json_body({"status": "ready", "checks": checks})


def _files_by_status() -> dict[str, int]:
    with runtime().sessions() as session:
        rows = session.execute(select(File.status, func.count()).group_by(File.status)).all()
    counts = {status.value: 0 for status in FileStatus}
    counts.update({status.value: count for status, count in rows})
    return counts


def metrics():
    """Prometheus metrics (text exposition format)."""
    rt = runtime()
    collector = observability.StateCollector(_files_by_status, rt.jobs.queue_depth)
    body, content_type = observability.render(collector)
    return flask.Response(body, content_type=content_type)
