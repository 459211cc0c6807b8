"""One settings object, read from the environment once and validated at start."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_SECRET = "development-only-secret-do-not-use-in-production"  # noqa: S105 - the value production refuses
GIB = 1024**3


class SettingsError(ValueError):
    """A setting has a value the service cannot run with; the message names it."""


def _int(minimum: int = 0) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw.replace("_", ""))
        if value < minimum:
            raise ValueError(f"must be at least {minimum}")
        return value

    return parse


def _float(minimum: float = 0.0) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        value = float(raw)
        if value < minimum:
            raise ValueError(f"must be at least {minimum}")
        return value

    return parse


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("must be true or false")


def _choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return raw

    return parse


def _origins(raw: str) -> tuple[str, ...]:
    return tuple(o.strip() for o in raw.split(",") if o.strip())


def _networks(raw: str) -> tuple[str, ...]:
    networks = _origins(raw)
    for network in networks:
        try:
            ipaddress.ip_network(network)
        except ValueError:
            raise ValueError(f"{network!r} is not an address or a network") from None
    return networks


def _domains(raw: str) -> tuple[str, ...]:
    """E-mail domains or addresses: compared whatever their case."""
    return tuple(value.lower() for value in _origins(raw))


def default_data_dir(environ: Mapping[str, str]) -> Path:
    """`$XDG_DATA_HOME/instashare`, else `~/.local/share/instashare` (a relative one is ignored)."""
    base = environ.get("XDG_DATA_HOME", "")
    if not os.path.isabs(base):
        home = environ.get("HOME") or str(Path.home())
        base = os.path.join(home, ".local", "share")
    return Path(base) / "instashare"


def default_database_url(data_dir: Path) -> str:
    """The embedded default's database: SQLite in the data dir (absolute, whatever the cwd)."""
    return f"sqlite:///{(data_dir / 'instashare.db').absolute()}"


def _setting(env: str, default: Any, parse: Callable[[str], Any] = str, doc: str = "") -> Any:
    return field(default=default, metadata={"env": env, "parse": parse, "doc": doc})


@dataclass(frozen=True)
class Settings:
    """Every knob of the service; `Settings.from_env()` is the only constructor used at run."""

    env: str = _setting(
        "INSTASHARE_ENV",
        "development",
        _choice("development", "production"),
        "`production` refuses a default secret, SQLite and in-process stores",
    )
    secret_key: str = _setting(
        "INSTASHARE_SECRET_KEY", DEFAULT_SECRET, str, "HS256 key that signs access tokens"
    )
    token_ttl_seconds: int = _setting(
        "INSTASHARE_TOKEN_TTL_SECONDS", 3600, _int(60), "lifetime of an access token"
    )
    session_days: int = _setting(
        "INSTASHARE_SESSION_DAYS",
        30,
        _int(1),
        'how long "Keep me signed in" keeps a browser signed in without being used (each '
        "refresh of its access token starts the days again)",
    )
    database_url: str = _setting(
        "INSTASHARE_DATABASE_URL",
        "",
        str,
        "SQLAlchemy URL (`postgresql+psycopg2://…` in production); empty means SQLite at "
        "`<data dir>/instashare.db`",
    )
    broker_url: str = _setting(
        "INSTASHARE_BROKER_URL",
        "filesystem://",
        str,
        "Celery broker; `filesystem://` keeps queues under the data dir",
    )
    redis_url: str = _setting(
        "INSTASHARE_REDIS_URL",
        "",
        str,
        "Redis for login throttling and single sign-on's one-time values; empty means "
        "in-process (development only); while it cannot be reached each process counts on "
        "its own",
    )
    # Never None once constructed: __post_init__ puts the per-user default in its place.
    data_dir: Path = _setting(
        "INSTASHARE_DATA_DIR",
        None,
        Path,
        "root of local state (database, files, spool, queue, logs of `dev`); default "
        "`$XDG_DATA_HOME/instashare`, else `~/.local/share/instashare`",
    )
    storage_backend: str = _setting(
        "INSTASHARE_STORAGE_BACKEND", "local", _choice("local", "gcs"), "`local` or `gcs`"
    )
    storage_dir: Path | None = _setting(
        "INSTASHARE_STORAGE_DIR",
        None,
        Path,
        "local backend root (a shared mount for several nodes); default `<data dir>/storage`",
    )
    gcs_bucket: str = _setting(
        "INSTASHARE_GCS_BUCKET", "", str, "bucket for the `gcs` backend (required with it)"
    )
    gcs_project: str = _setting(
        "INSTASHARE_GCS_PROJECT", "", str, "project for the GCS client; empty means from ADC"
    )
    gcs_deadline_seconds: float = _setting(
        "INSTASHARE_GCS_DEADLINE_SECONDS",
        20.0,
        _float(1.0),
        "how long one GCS call keeps retrying (503, 429, timeouts) before it gives up: a "
        "download not yet begun answers 503 with `Retry-After`, a compression job is tried "
        "again later; with the timeout, keep it under `INSTASHARE_BODY_IDLE_SECONDS`",
    )
    gcs_timeout_seconds: float = _setting(
        "INSTASHARE_GCS_TIMEOUT_SECONDS",
        10.0,
        _float(0.5),
        "how long one GCS request may wait to connect or for its next bytes",
    )
    spool_dir: Path | None = _setting(
        "INSTASHARE_SPOOL_DIR",
        None,
        Path,
        "where multipart bodies are spooled while they stream in; default `<data dir>/spool`",
    )
    max_upload_bytes: int = _setting(
        "INSTASHARE_MAX_UPLOAD_BYTES", 10 * GIB, _int(1), "largest accepted upload body (413 above)"
    )
    max_json_bytes: int = _setting(
        "INSTASHARE_MAX_JSON_BYTES", 64 * 1024, _int(1024), "largest accepted JSON request body"
    )
    body_idle_seconds: float = _setting(
        "INSTASHARE_BODY_IDLE_SECONDS",
        60.0,
        _float(0.1),
        "a request body or download that moves no byte for this long is cut off (408)",
    )
    quota_bytes: int = _setting(
        "INSTASHARE_QUOTA_BYTES", 100 * GIB, _int(0), "stored bytes allowed per user"
    )
    signup: str = _setting(
        "INSTASHARE_SIGNUP",
        "invite",
        _choice("open", "invite", "closed"),
        "who may register: `open` (anyone), `invite` (with an administrator's invitation) "
        "or `closed` (no one); `dev` defaults to `open`",
    )
    admin_email: str = _setting(
        "INSTASHARE_ADMIN_EMAIL",
        "",
        str,
        "at start-up of `serve`, make this account an administrator (created with "
        "`INSTASHARE_ADMIN_PASSWORD` if it does not exist; an existing one keeps its password)",
    )
    admin_password: str = _setting(
        "INSTASHARE_ADMIN_PASSWORD",
        "",
        str,
        "the password of the account `INSTASHARE_ADMIN_EMAIL` creates (10+ characters)",
    )
    upload_expiry_seconds: int = _setting(
        "INSTASHARE_UPLOAD_EXPIRY_SECONDS",
        24 * 3600,
        _int(60),
        "a resumable upload not written to for this long expires and its parts are removed",
    )
    direct_uploads: bool = _setting(
        "INSTASHARE_DIRECT_UPLOADS",
        True,
        _bool,
        "with the `gcs` backend, clients send an upload's bytes straight to the bucket "
        "(a GCS resumable session per upload); the `local` backend ignores it",
    )
    gcs_signing_key: str = _setting(
        "INSTASHARE_GCS_SIGNING_KEY",
        "",
        str,
        "path to a service account's JSON key that signs download URLs (V4) for the `gcs` "
        "backend; empty: downloads stream through the API",
    )
    gcs_signing_account: str = _setting(
        "INSTASHARE_GCS_SIGNING_ACCOUNT",
        "",
        str,
        "a service account's e-mail that signs download URLs (V4) through the IAM Credentials "
        "API (signBlob) with the runtime's own credentials (Cloud Run: no key file); needs "
        "roles/iam.serviceAccountTokenCreator on that account; not with a signing key",
    )
    signed_downloads: bool = _setting(
        "INSTASHARE_SIGNED_DOWNLOADS",
        True,
        _bool,
        "with a signing key, a download of a file's ZIP answers 302 to a signed URL after the "
        "API has decided it (counted, limited); off: every download streams",
    )
    signed_url_seconds: int = _setting(
        "INSTASHARE_SIGNED_URL_SECONDS",
        60,
        _int(1),
        "how long a signed download URL may start a download (its holder may start more "
        "than one in that time)",
    )
    password_hash_memory_kib: int = _setting(
        "INSTASHARE_PASSWORD_HASH_MEMORY_KIB",
        64 * 1024,
        _int(32),
        "memory of one argon2id password hash, in KiB (production: at least 19456, 19 MiB); "
        "logins rehash passwords made at another cost",
    )
    password_hash_time_cost: int = _setting(
        "INSTASHARE_PASSWORD_HASH_TIME_COST",
        3,
        _int(1),
        "passes of one argon2id password hash (production: at least 2)",
    )
    login_max_failures: int = _setting(
        "INSTASHARE_LOGIN_MAX_FAILURES",
        5,
        _int(1),
        "failed logins for one account from one address before that address must wait "
        "(1 minute, doubling with each further failure, up to the window)",
    )
    login_max_failures_per_ip: int = _setting(
        "INSTASHARE_LOGIN_MAX_FAILURES_PER_IP",
        50,
        _int(1),
        "failed logins and wrong link passwords per client address per window",
    )
    login_max_failures_per_account: int = _setting(
        "INSTASHARE_LOGIN_MAX_FAILURES_PER_ACCOUNT",
        100,
        _int(1),
        "failed logins for one account (or wrong passwords for one share link) from all "
        "addresses per window; beyond them its checks run one at a time, "
        "`…_CAMPAIGN_INTERVAL_SECONDS` apart, except from addresses it let in before",
    )
    login_window_seconds: int = _setting(
        "INSTASHARE_LOGIN_WINDOW_SECONDS", 900, _int(1), "throttling window"
    )
    login_campaign_interval_seconds: float = _setting(
        "INSTASHARE_LOGIN_CAMPAIGN_INTERVAL_SECONDS",
        2.0,
        _float(0.01),
        "under a guessing campaign (beyond `…_PER_ACCOUNT`), the time between two password "
        "checks of one account or link; requests wait their turn in order, up to 30 s",
    )
    job_lease_seconds: int = _setting(
        "INSTASHARE_JOB_LEASE_SECONDS",
        60,
        _int(2),
        "a compression job not heard from for this long is re-queued",
    )
    sweep_interval_seconds: float = _setting(
        "INSTASHARE_SWEEP_INTERVAL_SECONDS",
        30.0,
        _float(0.2),
        "how often the worker's scheduler re-queues stuck or unsent jobs",
    )
    job_time_limit_seconds: int = _setting(
        "INSTASHARE_JOB_TIME_LIMIT_SECONDS", 6 * 3600, _int(10), "hard limit for one job"
    )
    compression: str = _setting(
        "INSTASHARE_COMPRESSION",
        "fast",
        _choice("fast", "small"),
        "the worker's deflate: `fast` (ISA-L level 2, ~9x the speed of `zip -6` at ~1.13x "
        "its size on logs) or `small` (zlib-ng level 5, no larger than `zip -6` at over 2x "
        "its speed); files over 16 MiB are deflated on every core the worker may use",
    )
    public_url: str = _setting(
        "INSTASHARE_PUBLIC_URL",
        "",
        str,
        "base of the share URLs people paste (`https://share.example.com`); empty means "
        "the scheme and host each request came to",
    )
    share_max_days: int = _setting(
        "INSTASHARE_SHARE_MAX_DAYS", 90, _int(1), "longest a share link may last, in days"
    )
    share_allow_never: bool = _setting(
        "INSTASHARE_SHARE_ALLOW_NEVER", False, _bool, "let share links be made that never expire"
    )
    share_resume_hours: int = _setting(
        "INSTASHARE_SHARE_RESUME_HOURS",
        24,
        _int(1),
        "how long after a download of a link with `max_downloads` began its `ETag` may resume "
        "it without counting again (see What counts as one download)",
    )
    download_grant_seconds: int = _setting(
        "INSTASHARE_DOWNLOAD_GRANT_SECONDS",
        300,
        _int(1),
        "how long a download grant (`/api/v1/downloads/…`) may start a download; a download "
        "under way is not cut, a resume after it needs a new grant",
    )
    smtp_host: str = _setting(
        "INSTASHARE_SMTP_HOST",
        "",
        str,
        "SMTP server the worker sends mail through (password recovery, invitations); empty: "
        "`dev` writes mails to `<data dir>/mail`, `serve` sends none and password recovery "
        "answers 503",
    )
    smtp_port: int = _setting(
        "INSTASHARE_SMTP_PORT",
        0,
        _int(0),
        "its port; 0 means the usual one for the security (587 starttls, 465 tls, 25 none)",
    )
    smtp_security: str = _setting(
        "INSTASHARE_SMTP_SECURITY",
        "starttls",
        _choice("starttls", "tls", "none"),
        "`starttls` (plain connection upgraded, required), `tls` (TLS from the first byte) "
        "or `none` (a relay on a trusted network only)",
    )
    smtp_user: str = _setting(
        "INSTASHARE_SMTP_USER", "", str, "user to log in to the SMTP server as; empty: no login"
    )
    smtp_password: str = _setting("INSTASHARE_SMTP_PASSWORD", "", str, "its password")
    mail_from: str = _setting(
        "INSTASHARE_MAIL_FROM",
        "",
        str,
        "sender of the mails (`Instashare <noreply@example.com>`); required with an SMTP host",
    )
    mail_outbox: Path | None = _setting(
        "INSTASHARE_MAIL_OUTBOX",
        None,
        Path,
        "a directory the worker writes mails to (one `.eml` file each) instead of sending "
        "them; `dev` uses `<data dir>/mail` when no SMTP host is set",
    )
    password_reset_minutes: int = _setting(
        "INSTASHARE_PASSWORD_RESET_MINUTES",
        30,
        _int(1),
        "how long a password reset link works (it works once, and any password change "
        "ends every link sent before it)",
    )
    password_reset_max_mails: int = _setting(
        "INSTASHARE_PASSWORD_RESET_MAX_MAILS",
        3,
        _int(1),
        "password reset mails sent to one address (and one account) per hour; further "
        "requests get the same answer and send nothing",
    )
    password_reset_max_per_ip: int = _setting(
        "INSTASHARE_PASSWORD_RESET_MAX_PER_IP",
        20,
        _int(1),
        "password reset requests per client address per hour (429 beyond)",
    )
    validate_responses: bool = _setting(
        "INSTASHARE_VALIDATE_RESPONSES", False, _bool, "check every response against the spec"
    )
    cors_origins: tuple[str, ...] = _setting(
        "INSTASHARE_CORS_ORIGINS", (), _origins, "comma-separated origins allowed by CORS"
    )
    trusted_proxies: tuple[str, ...] = _setting(
        "INSTASHARE_TRUSTED_PROXIES",
        (),
        _networks,
        "comma-separated addresses or networks of proxies whose `X-Forwarded-For` is believed",
    )
    port: int = _setting(
        "INSTASHARE_PORT",
        8000,
        _int(1),
        "port `serve` and `dev` listen on (the API image's health check asks the same one)",
    )
    worker_metrics_port: int = _setting(
        "INSTASHARE_WORKER_METRICS_PORT",
        9808,
        _int(0),
        "port of the worker's Prometheus endpoint (0: none)",
    )
    oidc_issuer: str = _setting(
        "INSTASHARE_OIDC_ISSUER",
        "",
        str,
        "OpenID Connect provider for single sign-on (its issuer URL, such as "
        "`https://accounts.google.com`; its `/.well-known/openid-configuration` says the rest); "
        "empty: no single sign-on",
    )
    oidc_client_id: str = _setting(
        "INSTASHARE_OIDC_CLIENT_ID", "", str, "this server's client id at the provider"
    )
    oidc_client_secret: str = _setting(
        "INSTASHARE_OIDC_CLIENT_SECRET", "", str, "this server's client secret at the provider"
    )
    oidc_scopes: str = _setting(
        "INSTASHARE_OIDC_SCOPES",
        "openid email profile",
        str,
        "scopes asked of the provider (space-separated; `openid` and `email` are needed)",
    )
    oidc_allowed_domains: tuple[str, ...] = _setting(
        "INSTASHARE_OIDC_ALLOWED_DOMAINS",
        (),
        _domains,
        "comma-separated e-mail domains whose people may sign in with SSO; empty: any",
    )
    oidc_admin_emails: tuple[str, ...] = _setting(
        "INSTASHARE_OIDC_ADMIN_EMAILS",
        (),
        _domains,
        "comma-separated addresses made administrators when they sign in with SSO",
    )
    oidc_admin_claim: str = _setting(
        "INSTASHARE_OIDC_ADMIN_CLAIM",
        "",
        str,
        "ID token claim (such as `groups` or `roles`) naming administrators, with `…_ADMIN_VALUES`",
    )
    oidc_admin_values: tuple[str, ...] = _setting(
        "INSTASHARE_OIDC_ADMIN_VALUES",
        (),
        _origins,
        "comma-separated values of `…_ADMIN_CLAIM` (one of them in it) that make an administrator",
    )
    oidc_label: str = _setting(
        "INSTASHARE_OIDC_LABEL",
        "single sign-on",
        str,
        "the provider's name on the log-in page's button (`Sign in with <label>`)",
    )
    log_level: str = _setting(
        "INSTASHARE_LOG_LEVEL", "INFO", _choice("DEBUG", "INFO", "WARNING", "ERROR"), "log level"
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read every setting from `environ` (default: the process's), then validate."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            name = f.metadata["env"]
            raw = environ.get(name)
            if raw is None:
                continue
            try:
                values[f.name] = f.metadata["parse"](raw)
            except ValueError as exc:
                raise SettingsError(f"{name}={raw!r} is invalid: {exc}") from None
        parsers = {f.name: f.metadata["parse"] for f in dataclasses.fields(cls)}
        for name, value in overrides.items():
            # Overrides may be given as the environment would give them: text.
            values[name] = parsers[name](value) if isinstance(value, str) else value
        if values.get("data_dir") is None:
            values["data_dir"] = default_data_dir(environ)
        settings = cls(**values)
        settings.validate()
        return settings

    def __post_init__(self) -> None:
        # The defaults that hang on others: one place for the data dir, wherever the
        # process was started from (a database relative to the cwd seemed to lose accounts).
        if self.data_dir is None:
            object.__setattr__(self, "data_dir", default_data_dir(os.environ))
        if not self.database_url:
            object.__setattr__(self, "database_url", default_database_url(self.data_dir))

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def sso_enabled(self) -> bool:
        """Whether people may sign in through the OpenID provider (app.services.sso)."""
        return bool(self.oidc_issuer)

    @property
    def storage_root(self) -> Path:
        return self.storage_dir or self.data_dir / "storage"

    @property
    def spool_root(self) -> Path:
        return self.spool_dir or self.data_dir / "spool"

    def validate(self) -> None:
        """Raise SettingsError naming the first setting the service cannot run with."""
        if self.storage_backend == "gcs" and not self.gcs_bucket:
            raise SettingsError("INSTASHARE_GCS_BUCKET is required when the storage is gcs")
        if self.gcs_signing_key and not Path(self.gcs_signing_key).is_file():
            raise SettingsError(
                f"INSTASHARE_GCS_SIGNING_KEY names {self.gcs_signing_key!r}, which is not a file"
            )
        if self.gcs_signing_key and self.gcs_signing_account:
            raise SettingsError(
                "INSTASHARE_GCS_SIGNING_KEY and INSTASHARE_GCS_SIGNING_ACCOUNT are both set; "
                "set one: a key file signs here, an account signs through IAM"
            )
        self._check_database_url()
        if self.public_url and not self.public_url.startswith(("http://", "https://")):
            raise SettingsError("INSTASHARE_PUBLIC_URL must start with http:// or https://")
        self._check_oidc()
        self._check_mail()
        if not self.production:
            return
        if (
            self.secret_key == DEFAULT_SECRET
            or len(self.secret_key) < 32
            or "change-me" in self.secret_key.lower()
        ):
            raise SettingsError(
                "INSTASHARE_SECRET_KEY must be set to a random value of 32+ characters "
                "in production"
            )
        if self.database_url.startswith("sqlite"):
            raise SettingsError("INSTASHARE_DATABASE_URL must name PostgreSQL in production")
        if self.password_hash_memory_kib < 19 * 1024 or self.password_hash_time_cost < 2:
            raise SettingsError(
                "INSTASHARE_PASSWORD_HASH_MEMORY_KIB must be at least 19456 (19 MiB) and "
                "INSTASHARE_PASSWORD_HASH_TIME_COST at least 2 in production"
            )
        if not self.redis_url:
            raise SettingsError("INSTASHARE_REDIS_URL is required in production (throttling)")
        if self.broker_url.startswith("filesystem"):
            raise SettingsError("INSTASHARE_BROKER_URL must name Redis in production")

    def _check_oidc(self) -> None:
        if not self.oidc_issuer:
            return
        if not self.oidc_issuer.startswith(("https://", "http://")):
            raise SettingsError("INSTASHARE_OIDC_ISSUER must start with https://")
        if self.production and not self.oidc_issuer.startswith("https://"):
            raise SettingsError("INSTASHARE_OIDC_ISSUER must start with https:// in production")
        if not (self.oidc_client_id and self.oidc_client_secret):
            raise SettingsError(
                "INSTASHARE_OIDC_CLIENT_ID and INSTASHARE_OIDC_CLIENT_SECRET are required with "
                "INSTASHARE_OIDC_ISSUER"
            )
        if not {"openid", "email"} <= set(self.oidc_scopes.split()):
            raise SettingsError("INSTASHARE_OIDC_SCOPES must include openid and email")
        if bool(self.oidc_admin_claim) != bool(self.oidc_admin_values):
            raise SettingsError(
                "INSTASHARE_OIDC_ADMIN_CLAIM and INSTASHARE_OIDC_ADMIN_VALUES go together"
            )

    @property
    def smtp_port_or_default(self) -> int:
        """The SMTP port: the one set, else the usual one for the security."""
        return self.smtp_port or {"starttls": 587, "tls": 465, "none": 25}[self.smtp_security]

    def _check_mail(self) -> None:
        from email.errors import HeaderParseError
        from email.headerregistry import Address
        from email.policy import SMTP

        if not self.smtp_host:
            return
        if not self.mail_from:
            raise SettingsError("INSTASHARE_MAIL_FROM is required when INSTASHARE_SMTP_HOST is set")
        try:
            parsed = SMTP.header_factory("From", self.mail_from)
            addresses: tuple[Address, ...] = parsed.addresses  # type: ignore[attr-defined]
        except (HeaderParseError, IndexError, ValueError):
            addresses = ()
        if len(addresses) != 1 or not addresses[0].domain or parsed.defects:
            raise SettingsError(
                f"INSTASHARE_MAIL_FROM={self.mail_from!r} is not one sender address (give "
                "one like noreply@example.com or Instashare <noreply@example.com>)"
            )
        if self.smtp_password and not self.smtp_user:
            raise SettingsError("INSTASHARE_SMTP_PASSWORD is set but INSTASHARE_SMTP_USER is not")

    def _check_database_url(self) -> None:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError

        try:
            make_url(self.database_url).get_dialect()
        except (ArgumentError, NoSuchModuleError, ValueError):
            shown = self.masked()["INSTASHARE_DATABASE_URL"]
            raise SettingsError(
                f"INSTASHARE_DATABASE_URL={shown!r} is not a database URL (give one like "
                "postgresql+psycopg2://USER:PASSWORD@HOST/DB or sqlite:///PATH)"
            ) from None

    def masked(self) -> dict[str, str]:
        """Effective settings by environment name, secrets masked, for `instashare-server check`."""
        shown: dict[str, str] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("secret_key", "admin_password", "oidc_client_secret", "smtp_password"):
                value = "****" if value else ""
            elif isinstance(value, str) and "@" in value and "://" in value:
                scheme, rest = value.split("://", 1)
                value = f"{scheme}://****@{rest.rsplit('@', 1)[1]}"
            elif isinstance(value, tuple):
                value = ",".join(value)
            shown[f.metadata["env"]] = "" if value is None else str(value)
        return shown


def documented_settings() -> list[tuple[str, str, str]]:
    """(environment name, default, meaning) for every setting: the README table's source."""
    rows = []
    for f in dataclasses.fields(Settings):
        default = f.default
        if isinstance(default, tuple):
            default = ",".join(default)
        rows.append((f.metadata["env"], "" if default is None else str(default), f.metadata["doc"]))
    return rows
