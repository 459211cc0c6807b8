"""Metrics under `instashare-server serve` with several gunicorn workers, and the suite's guard."""

import os
import re
import subprocess
import sys

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from tests.helpers import ROOT, free_port, make_settings, start_server

pytestmark = pytest.mark.slow  # every test here starts a server, or pytest itself

MAX_REQUESTS = 400
HEALTH_200 = re.compile(
    r'^instashare_http_requests_total\{method="GET",operation="app\.handlers\.ops\.health",'
    r'status="200"\} (\S+)$',
    re.MULTILINE,
)


def _health_count_per_process(metrics_dir) -> dict[str, float]:
    """What each process's own counter file holds for GET /health → 200."""
    counts = {}
    for db in metrics_dir.glob("counter_*.db"):
        for metric in MultiProcessCollector.merge([str(db)]):
            for sample in metric.samples:
                labels = sample.labels
                if (
                    sample.name == "instashare_http_requests_total"
                    and labels.get("operation") == "app.handlers.ops.health"
                    and labels.get("status") == "200"
                ):
                    counts[db.name] = sample.value
    return counts


def test_metrics_add_up_every_gunicorn_worker(tmp_path, database_url, redis_url):
    server, base = start_server(make_settings(tmp_path, database_url), workers=2)
    try:
        sent = 0
        # New connections until both workers have answered some (the kernel picks).
        while sent < MAX_REQUESTS:
            response = httpx.get(f"{base}/api/v1/health", headers={"Connection": "close"})
            assert response.status_code == 200
            sent += 1
            per_process = _health_count_per_process(tmp_path / "metrics-api")
            if sent >= 20 and len([c for c in per_process.values() if c]) == 2:
                break
        assert len(per_process) == 2, per_process
        for _ in range(6):
            page = httpx.get(f"{base}/metrics", headers={"Connection": "close"})
            assert page.status_code == 200
            # Whichever worker answers, it reports the total of both.
            assert [float(c) for c in HEALTH_200.findall(page.text)] == [sent], page.text[:2000]
    finally:
        server.terminate()
        server.wait(timeout=40)


def test_the_suite_stops_at_once_when_postgresql_is_missing(tmp_path):
    env = {
        **os.environ,
        "INSTASHARE_TEST_DATABASE_URL": f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/x",
    }
    # A test that needs the database: the pure ones (tests/test_readme.py) need no server.
    # One xdist process, not the run's four: a worker's stop reaches the controller the same
    # way, and the three others would only start up to find nothing to run.
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "1",
         "tests/test_migrations.py::test_postgres_schema_is_at_head"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 3
    assert "PostgreSQL is not reachable" in run.stdout + run.stderr
    assert "pg_ctlcluster" in run.stdout + run.stderr
    assert " passed" not in run.stdout
