"""`instashare-server`: run the embedded default, the API, the worker, migrations, checks."""

from __future__ import annotations

import contextlib
import errno
import gc
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TextIO

import click

from app.settings import Settings, SettingsError, default_database_url

DEV_LOG = "dev.log"
# `dev` is gone this long, at most, after SIGTERM or Ctrl-C: less than the 5 s container
# runtimes and service managers are commonly given before they kill.
DEV_STOP_SECONDS = 3.5
# Of which requests in flight get this long to finish before they are cut off.
DEV_REQUEST_GRACE_SECONDS = 2
# At start, `dev` moves a log grown past this aside (to dev.log.1) and begins a new one.
DEV_LOG_MAX_BYTES = 16 * 1024 * 1024


def use_metrics_dir(settings: Settings, role: str) -> None:
    """Give this service's processes one fresh multiprocess metrics directory.

    prometheus_client reads PROMETHEUS_MULTIPROC_DIR when it is imported, so this runs
    before anything imports it. An operator's own setting is kept as it is.
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    path = (settings.data_dir / f"metrics-{role}").resolve()
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)


def load_settings(**overrides) -> Settings:
    """Settings from the environment (and `overrides`), or one clear line and exit status 2."""
    try:
        return Settings.from_env(**overrides)
    except SettingsError as exc:
        click.echo(f"instashare-server: configuration error: {exc}", err=True)
        sys.exit(2)


@contextlib.contextmanager
def database_errors(settings: Settings):
    """A database that cannot be reached or migrated: one line naming it, exit status 1."""
    from alembic.util import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    from app.services.health import reason

    try:
        yield
    except (SQLAlchemyError, CommandError) as exc:
        shown = settings.masked()["INSTASHARE_DATABASE_URL"]
        click.echo(f"instashare-server: database {shown}: {reason(exc)}", err=True)
        sys.exit(1)


def forwarded_allow_ips(settings: Settings) -> str:
    """The proxies whose X-Forwarded-For the server believes: only the configured ones."""
    return ",".join(settings.trusted_proxies)


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket listening on host:port, or one line saying why not and exit status 1."""
    sock = None
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        if sock is not None:
            sock.close()
        if exc.errno == errno.EADDRINUSE:
            click.echo(
                f"instashare-server: port {port} is in use on {host} (is Instashare already "
                f"running?); choose another with --port, e.g. --port {port + 1}",
                err=True,
            )
        else:
            reason = exc.strerror or str(exc)
            click.echo(f"instashare-server: cannot listen on {host}:{port}: {reason}", err=True)
        sys.exit(1)
    return sock


def open_dev_log(path: Path) -> TextIO:
    """`dev`'s log file, appended to (line by line, so the worker's lines interleave whole)."""
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_size > DEV_LOG_MAX_BYTES:
            path.replace(path.with_name(f"{path.name}.1"))
    return open(path, "a", buffering=1, encoding="utf-8")


def _base_url(host: str, port: int) -> str:
    # A wildcard address is where the server listens, not an address a browser can open.
    shown = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)  # noqa: S104
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


def dev_banner(settings: Settings, host: str, port: int, log_path: Path | None) -> str:
    """What `dev` prints once it listens: the app's address, where the data is, how to stop."""
    base = _base_url(host, port)
    lines = [
        f"Instashare is running: open {base}/",
        f"  API docs  {base}/api/v1/ui",
        f"  data      {settings.data_dir}",
    ]
    if settings.database_url != default_database_url(settings.data_dir):
        lines.append(f"  database  {settings.masked()['INSTASHARE_DATABASE_URL']}")
    if settings.storage_backend == "gcs":
        lines.append(f"  files     gs://{settings.gcs_bucket}")
    elif settings.storage_dir is not None:
        lines.append(f"  files     {settings.storage_dir}")
    lines.append(f"  logs      {log_path if log_path else 'on this terminal (--verbose)'}")
    lines.append(f"  mail      {mail_destination(settings)}")
    lines.append("Press Ctrl-C to stop.")
    return "\n".join(lines)


def mail_destination(settings: Settings) -> str:
    """Where the worker's mails go, in words (the banner's and `check`'s)."""
    if settings.smtp_host:
        from app.mail.smtp import SMTPTransport

        return SMTPTransport.from_settings(settings).describe()
    if settings.mail_outbox is not None:
        return f"{settings.mail_outbox} (no SMTP server is set: each mail is a file there)"
    return "not configured (set INSTASHARE_SMTP_HOST; until then password recovery answers 503)"


class WorkerStop:
    """Ends `dev`'s worker: SIGTERM (a warm shutdown), and whatever of its process group is
    left at the deadline is killed. A job cut short this way is sent again by the worker's
    sweep once its lease runs out, as after a crash."""

    def __init__(self, worker: subprocess.Popen):
        self.worker = worker
        self.began: float | None = None

    def begin(self) -> None:
        """Ask the worker to stop (once); the clock starts."""
        if self.began is None:
            self.began = time.monotonic()
            with contextlib.suppress(ProcessLookupError):
                self.worker.send_signal(signal.SIGTERM)

    def finish(self, seconds: float) -> None:
        """Wait for the worker until `seconds` after `begin`, then kill what is left."""
        self.begin()
        assert self.began is not None
        left = self.began + seconds - time.monotonic()
        try:
            self.worker.wait(timeout=max(left, 0.01))
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            logging.getLogger(__name__).warning(
                "The worker had not stopped %.1f s after it was asked to; it is killed. A job "
                "it was running is sent again once its lease runs out.",
                seconds,
            )
        # Its pool and beat processes too, even when the worker itself has exited.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.worker.pid, signal.SIGKILL)
        self.worker.wait()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Run and operate the Instashare service."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, help="default: INSTASHARE_PORT (8000)")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="default: INSTASHARE_DATA_DIR, else $XDG_DATA_HOME/instashare (~/.local/share/instashare)",
)
@click.option("--verbose", is_flag=True, help="logs on the terminal instead of <data dir>/dev.log")
def dev(host: str, port: int | None, data_dir: Path | None, verbose: bool) -> None:
    """The embedded default: API and worker, with SQLite and local storage in the data dir.

    Needs no PostgreSQL, Redis or cloud storage. Example: instashare-server dev --port 8000
    """
    # The worker is a separate process: it must find the same data dir, wherever it starts.
    data_dir = (data_dir or load_settings().data_dir).expanduser().absolute()
    signup = {} if os.environ.get("INSTASHARE_SIGNUP") else {"signup": "open"}  # anyone: dev
    settings = load_settings(data_dir=data_dir, **signup)
    if not settings.smtp_host and settings.mail_outbox is None:
        # No mail server: mails are files a newcomer can open (and click the link in).
        settings = load_settings(data_dir=data_dir, mail_outbox=data_dir / "mail", **signup)
    port = port or settings.port
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        click.echo(f"instashare-server: cannot use {data_dir}: {exc.strerror or exc}", err=True)
        sys.exit(1)
    # Bound and listening before anything is printed: the URL shown is one that answers,
    # and a taken port is one line, not a URL followed by a traceback.
    sock = listening_socket(host, port)
    log_path = data_dir / DEV_LOG
    log = sys.stderr if verbose else open_dev_log(log_path)

    from app.observability import configure_logging

    configure_logging(settings.log_level, log)
    logging.captureWarnings(True)  # a library's warning is a log line, not terminal noise

    import uvicorn

    from app.http import protocol
    from app.migrate import upgrade
    from app.web import create_app

    with database_errors(settings):
        upgrade(settings.database_url)
    worker_env = {"INSTASHARE_WORKER_METRICS_PORT": "0", **os.environ}
    worker_env["INSTASHARE_DATA_DIR"] = str(data_dir)
    if settings.mail_outbox is not None:
        worker_env["INSTASHARE_MAIL_OUTBOX"] = str(settings.mail_outbox)
    # A process group of its own (its pool and beat processes with it), so that it can be
    # ended whole; `dev` passes its signals on.
    worker = subprocess.Popen(
        [sys.executable, "-m", "app.server", "worker", "--beat", "--concurrency", "1"],
        env=worker_env,
        stdout=None if verbose else log,
        stderr=None if verbose else subprocess.STDOUT,
        process_group=0,
    )
    stop = WorkerStop(worker)

    def _stop(_signum, _frame):
        # uvicorn re-raises SIGTERM once it has shut down; exiting this way still runs
        # the `finally` below, so the worker is stopped too.
        raise SystemExit(0)

    class DevServer(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            stop.begin()  # the worker's warm shutdown runs beside the server's
            super().handle_exit(sig, frame)

    signal.signal(signal.SIGTERM, _stop)
    try:
        config = uvicorn.Config(
            create_app(settings),
            http=protocol.HTTP,
            log_config=None,
            proxy_headers=bool(settings.trusted_proxies),
            forwarded_allow_ips=forwarded_allow_ips(settings),
            timeout_graceful_shutdown=DEV_REQUEST_GRACE_SECONDS,
        )
        server = DevServer(config)
        # The terminal closing: stop as on SIGTERM (the worker, in its own process group,
        # would not hear it).
        signal.signal(signal.SIGHUP, lambda _s, frame: server.handle_exit(signal.SIGTERM, frame))
        click.echo(dev_banner(settings, host, port, None if verbose else log_path))
        # uvicorn re-raises the Ctrl-C it handled once it has shut down: that is the way out.
        with contextlib.suppress(KeyboardInterrupt):
            server.run(sockets=[sock])
    finally:
        click.echo("Stopping...")
        stop.finish(DEV_STOP_SECONDS)
        # What is left is freed by the exit: the collector need not walk it first (a
        # second, for an app this size, on a busy machine).
        gc.freeze()
    click.echo("Stopped.")


@main.command()
@click.option("--host", default="0.0.0.0", show_default=True)  # noqa: S104 - a server's job
@click.option("--port", type=int, help="default: INSTASHARE_PORT (8000)")
@click.option("--workers", default=2, show_default=True, type=int, help="gunicorn processes")
def serve(host: str, port: int | None, workers: int) -> None:
    """The production API: gunicorn with uvicorn workers, settings from the environment.

    Example: INSTASHARE_ENV=production instashare-server serve --workers 4
    """
    settings = load_settings()  # fail here, with one line, rather than in every worker
    port = port or settings.port
    if settings.admin_email:  # a container's first administrator (idempotent)
        click.echo(make_admin(settings, settings.admin_email, settings.admin_password, exit=2))
    use_metrics_dir(settings, "api")
    args = [
        sys.executable, "-m", "gunicorn",
        "--worker-class", "app.http.protocol.Worker",
        "--workers", str(workers),
        "--bind", f"{host}:{port}",
        "--graceful-timeout", "30",
        "--forwarded-allow-ips", forwarded_allow_ips(settings),
        "app.asgi:app",
    ]  # fmt: skip
    os.execv(sys.executable, args)  # noqa: S606 - become gunicorn, so signals reach it


def make_admin(settings: Settings, email: str, password: str | None, exit: int = 0) -> str | None:
    """Make `email` an administrator (app.services.admin.ensure_admin): what was done. With
    no account and no `password` to make one: None, or with `exit`, a line and that status."""
    from app.db import make_engine, make_session_factory
    from app.errors import AppError
    from app.services import admin

    with (
        database_errors(settings),
        make_session_factory(make_engine(settings.database_url))() as session,
    ):
        try:
            user, outcome = admin.ensure_admin(session, settings, email, password)
        except AppError as exc:
            if isinstance(exc, admin.NoPassword) and not exit:
                return None
            click.echo(f"instashare-server: {exc.detail}", err=True)
            sys.exit(exit or 1)
    said = {"created": "made an administrator", "promoted": "is an administrator now"}
    return f"{user.email} {said.get(outcome, 'was an administrator already')}"


@main.command("create-admin")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="read the password from standard input")
def create_admin(email: str, password_stdin: bool) -> None:
    """Make EMAIL an administrator: an existing account promoted, or a new one whose
    password is asked twice (or read from stdin). Example: instashare-server create-admin
    ada@example.com"""
    settings = load_settings()
    done = make_admin(settings, email, None)
    if done is None:
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        done = make_admin(settings, email, password)
    click.echo(done)


def _celery():
    from app.queue.celery import make_celery

    settings = load_settings()
    return settings, make_celery(settings)


# How much lower the CPU priority of the pool compressing large files is than the small
# lane's: behind a backlog, a small file's job and the API get the cores first.
BULK_NICENESS = 10


@main.command()
@click.option("--concurrency", default=2, show_default=True, type=int)
@click.option("--beat", is_flag=True, help="also run the periodic sweeps in this process")
@click.option(
    "--small-lane/--no-small-lane",
    default=True,
    show_default=True,
    help="also run a one-slot worker for small files, so they never wait behind large ones",
)
@click.option("--lane", type=click.Choice(["small"]), hidden=True)  # that worker itself
def worker(concurrency: int, beat: bool, small_lane: bool, lane: str | None) -> None:
    """The compression worker (Celery). Example: instashare-server worker --concurrency 4"""
    from app.queue import QUEUE, SMALL_QUEUE
    from app.queue.supervision import LaneWatch, end_with_this_process, run_celery

    settings = load_settings()
    use_metrics_dir(settings, "worker")  # the small lane shares its parent's (inherited)
    from celery import signals

    from app.observability import configure_logging

    @signals.setup_logging.connect
    def _json_logs(**_kwargs) -> None:
        configure_logging(settings.log_level)

    if settings.worker_metrics_port and lane is None:
        from prometheus_client import CollectorRegistry, multiprocess, start_http_server

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        start_http_server(settings.worker_metrics_port, registry=registry)
    settings, celery = _celery()
    argv = ["worker", "--loglevel", settings.log_level, "--concurrency", str(concurrency)]
    # Workers never talk to each other (no remote control, no clock sync is used): mingle
    # only delays each start, and gossip's broadcast channel, torn down after Redis went
    # away, is where kombu raised AttributeError while the worker reconnected.
    argv += ["--without-mingle", "--without-gossip"]
    if lane == "small":
        argv += ["--queues", SMALL_QUEUE, "--hostname", "small@%h"]
        run_celery(celery, argv)
        return
    # Small files first when a slot frees; the lane below keeps one slot for them alone,
    # and gets the CPU first: large files are compressed at a lower priority (nice).
    argv += ["--queues", f"{SMALL_QUEUE},{QUEUE}"]
    if small_lane:

        @signals.worker_process_init.connect(weak=False)
        def _lower_priority(**_kwargs) -> None:
            os.nice(BULK_NICENESS)

    if beat:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        argv += ["--beat", "--schedule", str(settings.data_dir / "celerybeat-schedule")]
    if not small_lane:
        run_celery(celery, argv)
        return
    small = subprocess.Popen(
        [sys.executable, "-m", "app.server", "worker", "--lane", "small", "--concurrency", "1"],
        preexec_fn=end_with_this_process,
    )
    watch = LaneWatch(small)
    try:
        run_celery(celery, argv)
    finally:
        watch.stop()
    if watch.failed:
        sys.exit(1)


@main.command()
def scheduler() -> None:
    """The periodic sweeps alone (Celery beat), for a separate container."""
    from app.queue.supervision import run_celery

    settings, celery = _celery()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    run_celery(
        celery,
        ["beat", "--loglevel", settings.log_level, "--schedule",
         str(settings.data_dir / "celerybeat-schedule")],
    )  # fmt: skip


@main.command()
def migrate() -> None:
    """Bring the database schema up to date (safe to run again, and from several replicas)."""
    from app.migrate import upgrade

    settings = load_settings()
    with database_errors(settings):
        upgrade(settings.database_url)
    click.echo("database is at the newest schema")


@main.command()
@click.option("--repair", is_flag=True, help="set drifted counters to what the rows say")
def recount(repair: bool) -> None:
    """Check every account's usage counters against its files and uploads.

    Prints each account whose counters drifted; exit status 1 if any did and --repair was
    not given. Example: instashare-server recount --repair
    """
    from app.db import make_engine, make_session_factory
    from app.services import quota

    settings = load_settings()
    with (
        database_errors(settings),
        make_session_factory(make_engine(settings.database_url))() as session,
    ):
        drifts = quota.recount(session, repair=repair)
    for drift in drifts:
        counted, actual = drift.counted, drift.actual
        click.echo(
            f"{drift.owner_id}: counted {counted.file_count} files, {counted.bytes_stored} "
            f"bytes stored, {counted.bytes_reserved} reserved; the rows say "
            f"{actual.file_count}, {actual.bytes_stored}, {actual.bytes_reserved}"
            + (
                f"; files pending/processing/ready/failed counted "
                f"{'/'.join(map(str, drift.counted_by_status))}, the rows say "
                f"{'/'.join(map(str, drift.actual_by_status))}"
                if drift.counted_by_status != drift.actual_by_status
                else ""
            )
            + (" (repaired)" if repair else "")
        )
    if not drifts:
        click.echo("every account's usage counters match its files and uploads")
    sys.exit(1 if drifts and not repair else 0)


@main.command("index-archives")
def index_archives() -> None:
    """Send the job that makes a seek index for every archive written before there were any.

    Until its job has run, a range of such a file's original is inflated from the start
    of its archive (correct, but slow near the end of a large file). Safe to run again:
    an archive indexed meanwhile is skipped. Example: instashare-server index-archives
    """
    from app.db import make_engine, make_session_factory
    from app.queue.jobs import JobQueue, celery_sender
    from app.services import archive_index

    settings, celery = _celery()
    jobs = JobQueue(celery_sender(celery))
    with (
        database_errors(settings),
        make_session_factory(make_engine(settings.database_url))() as session,
    ):
        pending = archive_index.unindexed(session)
    for file_id in pending:
        try:
            jobs.send_indexing(file_id)
        except Exception:
            raise click.ClickException(
                f"The job queue did not take the indexing jobs ({file_id} and after); "
                "run the command again once the broker answers."
            ) from None
    click.echo(f"sent {len(pending)} indexing job(s)" if pending else "every archive has its index")


@main.command()
@click.option(
    "--repair",
    is_flag=True,
    help="delete orphan objects; requeue or fail files whose objects are gone",
)
@click.option(
    "--grace-seconds",
    type=click.FloatRange(min=0),
    default=3600,
    show_default=True,
    help="objects written more recently are not judged (an upload may be finishing)",
)
def reconcile(repair: bool, grace_seconds: float) -> None:
    """Check storage against the database: objects without rows, rows without objects.

    Streams the bucket (or the storage directory) once, in key order, beside the files
    table. Prints each finding; exit status 1 if there were any and --repair was not given.
    Example: instashare-server reconcile --repair
    """
    from google.api_core.exceptions import GoogleAPIError

    from app.db import make_engine, make_session_factory
    from app.services import reconcile as service
    from app.storage import make_storage

    settings = load_settings()
    storage = make_storage(settings)
    drift = 0
    with (
        database_errors(settings),
        make_session_factory(make_engine(settings.database_url))() as session,
    ):
        try:
            for finding in service.reconcile(
                session, storage, repair=repair, grace_seconds=grace_seconds
            ):
                click.echo(describe_finding(finding))
                drift += not isinstance(finding, service.Foreign)
        except (OSError, GoogleAPIError) as exc:
            # Findings so far are printed (and, with --repair, repaired): run it again later.
            click.echo(f"instashare-server: storage did not answer: {exc}; try again", err=True)
            sys.exit(1)
    if not drift:
        click.echo("storage and database agree: every object has its row and every row its objects")
    sys.exit(1 if drift and not repair else 0)


def describe_finding(finding) -> str:
    """One line per finding of `reconcile`, as a person reads it."""
    from app.services import reconcile as service

    if isinstance(finding, service.Missing):
        done, would = {
            "requeue": ("queued to be compressed again", "queue it to be compressed again"),
            "fail": ("marked failed", "mark it failed"),
            "none": ("it changed meanwhile: left as it is", "leave it"),
        }[finding.remedy]
        return (
            f"missing {finding.file_id} (owner {finding.owner_id}, {finding.status.value}): "
            f"{finding.reason}; " + (done if finding.repaired else f"--repair would {would}")
        )
    obj = finding.object
    seen = f"{obj.key} ({obj.size} bytes, written {obj.updated:%Y-%m-%d %H:%M:%S} UTC)"
    if isinstance(finding, service.Foreign):
        return f"foreign {seen}: not a key Instashare writes; left alone"
    return f"orphan  {seen}: {finding.reason}; " + (
        "deleted" if finding.repaired else "--repair would delete it"
    )


@main.command()
def check() -> None:
    """Print the effective settings (secrets masked) and test each dependency."""
    from app.db import make_engine, make_session_factory
    from app.services import health
    from app.storage import download_signer, make_storage

    settings = load_settings()
    for name, value in settings.masked().items():
        click.echo(f"{name}={value}")
    results = health.check(
        settings, make_session_factory(make_engine(settings.database_url)), make_storage(settings)
    )
    if settings.sso_enabled:  # here, not in /ready: a provider's outage must not stop the API
        results["openid provider"] = health.openid_provider(settings)
    for name, error in results.items():
        click.echo(f"{name}: {'ok' if error is None else 'FAILED ' + error}")
    click.echo(f"download signer: {download_signer(settings)}")
    # Mail is not needed to serve files: none configured is said, not failed.
    mail = mail_destination(settings)
    if settings.smtp_host:
        from app.mail.smtp import SMTPTransport
        from app.services.health import reason

        try:
            SMTPTransport.from_settings(settings).ping()
            mail = f"ok ({mail})"
        except Exception as exc:
            results["mail"] = reason(exc)
            mail = f"FAILED {mail}: {results['mail']}"
    click.echo(f"mail: {mail}")
    if settings.storage_backend == "gcs":
        from app.storage import bucket_rules

        for kind, rules in bucket_rules.RULES.items():
            click.echo(f"bucket {kind} (instashare-server bucket-rules {kind}): ", nl=False)
            click.echo(json.dumps(rules(settings)))
    sys.exit(0 if all(e is None for e in results.values()) else 1)


@main.command("bucket-rules")
@click.argument("kind", type=click.Choice(["cors", "lifecycle"]))
def bucket_rules_command(kind: str) -> None:
    """Print the bucket's CORS or lifecycle rules as JSON, for `gcloud storage buckets update`."""
    from app.storage import bucket_rules

    click.echo(json.dumps(bucket_rules.RULES[kind](load_settings()), indent=2))


if __name__ == "__main__":
    main()
