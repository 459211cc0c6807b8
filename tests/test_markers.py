"""The `slow` marker: `pytest -m "not slow"` leaves out exactly the tests that start processes.

tests/conftest.py marks a test `slow` when one of its fixtures starts a server, a worker,
Chromium, the wheel build or the CLI; a test that starts one itself carries the mark.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.helpers import ROOT

# Every test of these starts processes (through its fixtures, or itself).
SLOW = [
    "tests/browser/test_webapp.py",
    "tests/browser/test_big_download.py",
    "tests/browser/test_sso.py",
    "tests/browser/test_direct.py",
    "tests/client/test_direct.py",
    "tests/client/test_accounts.py",
    "tests/client/test_files.py",
    "tests/client/test_resume.py",
    "tests/client/test_shares.py",
    "tests/client/test_tokens.py",
    "tests/deploy/test_wheel.py",
    "tests/handlers/test_admin_live.py",
    "tests/handlers/test_password_attempts.py",
    "tests/storage/test_gcs_crashes.py",
    "tests/handlers/test_slow_clients.py",
    "tests/test_observability.py",
    "tests/test_readme_sessions.py",
    "tests/test_server_command.py",
    "tests/test_server_reconcile.py",
    "tests/test_shutdown.py",
    "tests/worker/test_compression_setting.py",
    "tests/worker/test_crash_safety.py",
    "tests/worker/test_fairness.py",
    "tests/worker/test_folder_objects.py",
    "tests/worker/test_forget_share_downloads.py",
    "tests/worker/test_index_archives.py",
    "tests/worker/test_mail.py",
    "tests/worker/test_signals.py",
    "tests/worker/test_storage_faults.py",
]
# Some tests of these start processes: those named first; the others (some named) do not.
MIXED = {
    "tests/deploy/test_deploy_files.py": (
        {"test_compose_file_matches_the_compose_spec", "test_zizmor_finds_nothing_of_high_severity",
         "test_the_api_healthcheck_follows_the_port_serve_listens_on"},
        {"test_the_api_healthcheck_compiles_and_its_url_is_served"},
    ),
    "tests/handlers/test_direct_uploads.py": (
        {"test_twenty_starts_race_for_the_quota"},
        {"test_direct_upload_becomes_a_ready_file", "test_a_wrong_crc32c_removes_the_upload"},
    ),
    "tests/handlers/test_ops.py": (
        {"test_ready_names_redis_when_it_is_stopped", "test_request_id_reaches_the_worker_log"},
        {"test_health_touches_nothing", "test_request_id_is_echoed_or_generated"},
    ),
    "tests/handlers/test_kept_sessions.py": (
        {"test_an_ended_session_is_refused_by_every_process_of_a_live_server"},
        set(),
    ),
    "tests/handlers/test_shares.py": (
        {"test_the_limit_is_exact_under_concurrency",
         "test_the_embedded_default_keeps_the_rule_too",
         "test_the_resume_rule_holds_across_two_api_processes"},
        set(),
    ),
    "tests/handlers/test_tus.py": (
        {"test_tuspy_round_trip_becomes_a_ready_file",
         "test_body_cut_off_midway_keeps_what_arrived"},
        set(),
    ),
    "tests/http/test_protocol.py": (
        {"test_bodies_of_every_size_arrive_whole", "test_a_target_over_8_kib_is_refused_with_414"},
        {"test_uvicorn_still_does_what_the_overrides_restate"},
    ),
    "tests/services/test_leases.py": (
        set(),
        {"test_redelivery_after_its_process_died_takes_the_lease_over"},  # `true`, milliseconds
    ),
    "tests/test_migrations.py": (
        {"test_replicas_that_migrate_at_once_all_succeed"},
        {"test_writes_do_not_queue_long_behind_a_migration_waiting_for_a_lock"},
    ),
    "tests/test_markers.py": (
        {"test_not_slow_keeps_the_tests_that_start_no_process_and_only_those"},
        {"test_every_module_that_starts_processes_itself_is_classified_here"},
    ),
    "tests/worker/test_lifecycle.py": (
        {"test_status_moves_forward_to_ready"},
        {"test_zip_round_trip", "test_running_the_job_again_changes_nothing"},
    ),
}  # fmt: skip
# These start no process: every test of theirs stays in the quick loop.
PURE = [
    "tests/test_settings.py",
    "tests/test_specs.py",
    "tests/http/test_ranges.py",
    "tests/services/test_names.py",
    "tests/services/test_tokens.py",
    "tests/storage/test_backends.py",
]
# How a test module starts a process itself (`unzip -t`, a check that takes milliseconds, is
# not counted).
STARTS = re.compile(
    r"subprocess\.(?:run|Popen)\((?!\[\"unzip\")|WorkerProcess\(|start_server\(|serve_live\("
    r"|uvicorn\.Server\(|sync_playwright\(|\bDev\("
)


def _node_ids(*args: str) -> list[str]:
    """The node ids `pytest --collect-only` lists for `args`, without their parameters."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-n", "0",
         "-p", "no:cacheprovider", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return [line.split("[")[0] for line in done.stdout.splitlines() if "::" in line]


@pytest.mark.slow  # a pytest of its own, collecting
def test_not_slow_keeps_the_tests_that_start_no_process_and_only_those():
    kept = _node_ids("-m", "not slow", *SLOW, *MIXED, *PURE)
    modules = {node.split("::")[0] for node in kept}
    assert not modules & set(SLOW)
    assert set(PURE) <= modules
    names = {node.split("::")[-1] for node in kept}
    for module, (slow, pure) in MIXED.items():
        assert not slow & names, f"{module}: {slow & names} start processes"
        assert pure <= names, f"{module}: {pure - names} start none"
        assert module in modules, f"{module}: some of its tests start none"


def test_every_module_that_starts_processes_itself_is_classified_here():
    starting = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "tests").rglob("test_*.py")
        if STARTS.search(path.read_text(encoding="utf-8"))
    }
    unclassified = starting - set(SLOW) - set(MIXED)
    assert not unclassified, f"mark what starts processes `slow`, and list it here: {unclassified}"
