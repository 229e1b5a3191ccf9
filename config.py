"""Configuration defaults, read from the environment."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

BASE_DIR = Path(__file__).resolve().parent


def instance_path() -> Path:
    """Where the database, the secret key and (later) signing keys live: never committed."""
    return Path(os.environ.get("BEIAN_INSTANCE_PATH", BASE_DIR / "instance")).resolve()


def load_or_create_secret_key(folder: Path) -> str:
    """SECRET_KEY from the environment, else from instance/secret_key (generated once, 0600)."""
    from_env = os.environ.get("SECRET_KEY")
    if from_env:
        return from_env
    key_file = folder / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    folder.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in {"1", "true", "yes", "on"}


def _env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


_LOOPBACK = {"127.0.0.1", "::1", "[::1]"}


def webauthn_rp_id(public_base_url: str) -> str:
    """The public URL's host name; "localhost" for a loopback address (a WebAuthn relying party is never an IP)."""
    host = urlsplit(public_base_url).hostname or "localhost"
    return "localhost" if host in _LOOPBACK else host


def webauthn_origin(public_base_url: str) -> str:
    """The public URL's origin, with "localhost" for a loopback address (as `webauthn_rp_id`)."""
    parts = urlsplit(public_base_url)
    host = webauthn_rp_id(public_base_url)
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def trusted_hosts(public_base_url: str) -> list[str]:
    """TRUSTED_HOSTS from the environment (comma-separated), else the public URL's host and loopback."""
    if listed := os.environ.get("TRUSTED_HOSTS", "").strip():
        return [host.strip() for host in listed.split(",") if host.strip()]
    return sorted({urlsplit(public_base_url).hostname or "localhost", "localhost", "127.0.0.1"})


def from_environment() -> dict[str, object]:
    """The whole configuration as a dict; `create_app(config)` overrides any key."""
    folder = instance_path()
    public_base_url = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:5000").rstrip("/")
    return {
        "INSTANCE_PATH": str(folder),
        "SQLALCHEMY_DATABASE_URI": os.environ.get(
            "DATABASE_URL", f"sqlite:///{folder / 'beian.db'}"
        ),
        "SQLITE_BUSY_TIMEOUT_MS": int(os.environ.get("SQLITE_BUSY_TIMEOUT_MS", "15000")),
        "SECRET_KEY": None,  # resolved in create_app so that tests never touch instance/
        "MIIT_ADMIN_USERNAME": os.environ.get("MIIT_ADMIN_USERNAME", "miit"),
        "MIIT_ADMIN_PASSWORD": os.environ.get("MIIT_ADMIN_PASSWORD"),
        "PASSWORD_HASH_METHOD": os.environ.get("PASSWORD_HASH_METHOD", "scrypt"),
        "BABEL_DEFAULT_LOCALE": "zh_Hans_CN",
        "BABEL_DEFAULT_TIMEZONE": "Asia/Shanghai",
        "LANGUAGES": {"zh_Hans_CN": "中文", "en": "English"},
        "PREFERRED_URL_SCHEME": os.environ.get("PREFERRED_URL_SCHEME", "http"),
        # proxies in front of the app (nginx: 1) whose X-Forwarded-For / -Proto are trusted; 0: none (direct)
        "PROXY_FIX_X_FOR": int(os.environ.get("PROXY_FIX_X_FOR", "0")),
        # links in e-mails start here, never with the request's Host header; other hosts get 400
        "PUBLIC_BASE_URL": public_base_url,
        "TRUSTED_HOSTS": trusted_hosts(public_base_url),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": os.environ.get("PREFERRED_URL_SCHEME") == "https",
        "REMEMBER_COOKIE_HTTPONLY": True,
        "WTF_CSRF_TIME_LIMIT": 8 * 3600,
        "MAX_CONTENT_LENGTH": int(os.environ.get("MAX_CONTENT_LENGTH", str(64 * 1024 * 1024))),
        "FLASK_ADMIN_SWATCH": "default",
        "FLASK_ADMIN_RAISE_ON_VIEW_EXCEPTION": _env_bool("FLASK_ADMIN_RAISE_ON_VIEW_EXCEPTION", False),
        "EXPORT_MAX_ROWS": int(os.environ.get("EXPORT_MAX_ROWS", "2000000")),
        "PAGE_SIZE": 50,
        # applications per transaction of a batch approval: other writers wait for one chunk at most
        "BATCH_APPROVE_CHUNK": int(os.environ.get("BATCH_APPROVE_CHUNK", "500")),
        "API_RATE_LIMIT_PER_MINUTE": int(os.environ.get("API_RATE_LIMIT_PER_MINUTE", "600")),
        # the data-exchange API: calls a minute per credential (a batch of 1,000 records is one call), body size
        "EXCHANGE_RATE_LIMIT_PER_MINUTE": int(os.environ.get("EXCHANGE_RATE_LIMIT_PER_MINUTE", "300")),
        "EXCHANGE_ANSWER_DAYS": int(os.environ.get("EXCHANGE_ANSWER_DAYS", "90")),  # stored answers of write calls
        "EXCHANGE_MAX_BODY_BYTES": int(os.environ.get("EXCHANGE_MAX_BODY_BYTES", str(10 * 1024 * 1024))),
        # webhooks (webhooks.py): https to public addresses only — the two switches are for tests on loopback
        "WEBHOOK_ALLOW_HTTP": _env_bool("WEBHOOK_ALLOW_HTTP", False),
        "WEBHOOK_ALLOW_PRIVATE": _env_bool("WEBHOOK_ALLOW_PRIVATE", False),
        "WEBHOOK_TIMEOUT_SECONDS": float(os.environ.get("WEBHOOK_TIMEOUT_SECONDS", "10")),
        "WEBHOOK_RETRY_SECONDS": int(os.environ.get("WEBHOOK_RETRY_SECONDS", "30")),  # doubled per failure …
        "WEBHOOK_MAX_BACKOFF_SECONDS": int(os.environ.get("WEBHOOK_MAX_BACKOFF_SECONDS", "3600")),  # … up to this
        "WEBHOOK_BATCH": int(os.environ.get("WEBHOOK_BATCH", "500")),  # events per credential per worker pass
        # the website inspector's fetcher (inspector.py, issue 18 §5): bounds on what one website can cost us
        "INSPECTION_CONNECT_TIMEOUT": float(os.environ.get("INSPECTION_CONNECT_TIMEOUT", "5")),
        "INSPECTION_TOTAL_TIMEOUT": float(os.environ.get("INSPECTION_TOTAL_TIMEOUT", "15")),  # a fetch, redirects in
        "INSPECTION_MAX_BODY": int(os.environ.get("INSPECTION_MAX_BODY", str(1024 * 1024))),  # bytes, decompressed
        "INSPECTION_USER_AGENT": os.environ.get("INSPECTION_USER_AGENT", ""),  # "" → inspector.USER_AGENT
        "INSPECTION_THREADS": int(os.environ.get("INSPECTION_THREADS", "32")),  # fetches at once, per process
        "INSPECTION_PER_HOST": int(os.environ.get("INSPECTION_PER_HOST", "2")),  # … of them to one host name
        # hosts a filing-number link must point to (the public site's own host may be added)
        "INSPECTION_REGISTRY_HOSTS": os.environ.get("INSPECTION_REGISTRY_HOSTS", "beian.miit.gov.cn"),
        # non-public networks the fetcher may reach (tests, the demo, the benchmark: 127.0.0.1/32); create_app
        # refuses a non-empty value unless TESTING or DEBUG
        "INSPECTION_ALLOWED_NETWORKS": os.environ.get("INSPECTION_ALLOWED_NETWORKS", ""),
        "INSPECTION_NAMESERVERS": os.environ.get("INSPECTION_NAMESERVERS", ""),  # comma list; "": the system's
        # name → "address[:port]" instead of DNS (tests, the demo, the benchmark): a dict, or a JSON file
        "INSPECTION_STATIC_HOSTS": None,
        "INSPECTION_STATIC_HOSTS_FILE": os.environ.get("INSPECTION_STATIC_HOSTS_FILE", ""),
        # inspection runs (workflow/inspections.py): websites per write transaction; a running run not renewed for
        # INSPECTION_LEASE_SECONDS belongs to a dead worker (taken over); a worker hands a run back after
        # INSPECTION_SLICE_SECONDS so that its other steps (the outbox) are not held up by a national run
        "INSPECTION_BATCH": int(os.environ.get("INSPECTION_BATCH", "200")),
        "INSPECTION_LEASE_SECONDS": int(os.environ.get("INSPECTION_LEASE_SECONDS", "300")),
        "INSPECTION_SLICE_SECONDS": float(os.environ.get("INSPECTION_SLICE_SECONDS", "60")),
        # the rolling pass: websites not inspected for this many days (0: no rolling pass), at most
        # INSPECTION_SCHEDULE_LIMIT of them per province and run
        "INSPECTION_CYCLE_DAYS": int(os.environ.get("INSPECTION_CYCLE_DAYS", "0")),
        "INSPECTION_SCHEDULE_LIMIT": int(os.environ.get("INSPECTION_SCHEDULE_LIMIT", "5000")),
        "RECTIFICATION_DEFAULT_DAYS": int(os.environ.get("RECTIFICATION_DEFAULT_DAYS", "15")),  # a notice's deadline
        # `memory://` counts per process; `redis://host:6379` shares the counts between processes and nodes
        # (RATE_LIMIT_STORAGE_URI: the name before issue 15, still read)
        "RATELIMIT_STORAGE_URI": os.environ.get("RATELIMIT_STORAGE_URI",
                                                os.environ.get("RATE_LIMIT_STORAGE_URI", "memory://")),
        # statistics cached between requests (Flask-Caching): "SimpleCache" per process; "RedisCache" with
        # CACHE_REDIS_URL shared by every node
        "CACHE_TYPE": os.environ.get("CACHE_TYPE", "SimpleCache"),
        "CACHE_REDIS_URL": os.environ.get("CACHE_REDIS_URL", ""),
        "CACHE_KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "beian:"),
        # files (attachments, import uploads, marked files): "local" (the instance folder: one machine) or
        # "database" (tables stored_files / stored_file_chunks: every node)
        "FILE_STORAGE": os.environ.get("FILE_STORAGE", "local"),
        # the worker deletes the files of import jobs finished this many days ago
        "IMPORT_FILES_KEEP_DAYS": int(os.environ.get("IMPORT_FILES_KEEP_DAYS", "30")),
        # the registry's own filing number, shown (linked) in the public footer
        "REGISTRY_FILING_NUMBER": os.environ.get("REGISTRY_FILING_NUMBER", "京ICP备04000001号"),
        # certificate signing keys (issue 15): "local" — PEM files in INSTANCE_PATH/keys (one node); "database" —
        # the signing_keys table, private keys sealed with SIGNING_KEY_KEK (32 random bytes, base64url); every
        # process re-reads the current key this often, so a rotation reaches every node without a restart
        "SIGNING_KEY_STORE": os.environ.get("SIGNING_KEY_STORE", "local"),
        "SIGNING_KEY_KEK": os.environ.get("SIGNING_KEY_KEK"),
        "SIGNING_KEY_REFRESH_SECONDS": float(os.environ.get("SIGNING_KEY_REFRESH_SECONDS", "30")),
        # notices (SPEC §9): attachments outside the web root; None → INSTANCE_PATH/attachments
        "ATTACHMENT_DIR": os.environ.get("ATTACHMENT_DIR"),
        # import (SPEC §8): bounds checked before a file is parsed
        "IMPORT_MAX_ROWS": int(os.environ.get("IMPORT_MAX_ROWS", "200000")),
        "IMPORT_MAX_UNCOMPRESSED_BYTES": int(os.environ.get("IMPORT_MAX_UNCOMPRESSED_BYTES", str(256 * 1024 * 1024))),
        # a running import job not renewed for this long belongs to a dead worker: another one takes it over
        "IMPORT_LEASE_SECONDS": int(os.environ.get("IMPORT_LEASE_SECONDS", "300")),
        # a singleton worker step (reminders, IP findings, domain checks) runs in one worker at a time under a lease
        # renewed every third of this while it runs; a dead worker's step is taken over after at most this long
        "WORKER_LEASE_SECONDS": int(os.environ.get("WORKER_LEASE_SECONDS", "60")),
        # the worker recounts the dashboards' statistics (every province, and the nation) this often
        "DASHBOARD_STATISTICS_SECONDS": int(os.environ.get("DASHBOARD_STATISTICS_SECONDS", "120")),
        # /metrics answers these client networks (comma-separated CIDRs), or `Authorization: Bearer METRICS_TOKEN`
        "METRICS_ALLOWED_NETWORKS": os.environ.get("METRICS_ALLOWED_NETWORKS", "127.0.0.1/32,::1/128"),
        "METRICS_TOKEN": os.environ.get("METRICS_TOKEN", ""),
        "ATTACHMENT_MAX_BYTES": int(os.environ.get("ATTACHMENT_MAX_BYTES", str(20 * 1024 * 1024))),
        # accounts (SPEC §2)
        "CODE_TTL_MINUTES": int(os.environ.get("CODE_TTL_MINUTES", "30")),
        "CODE_MAX_ATTEMPTS": int(os.environ.get("CODE_MAX_ATTEMPTS", "5")),
        "CODE_RESEND_SECONDS": int(os.environ.get("CODE_RESEND_SECONDS", "60")),
        "CAPTCHA_TTL_MINUTES": int(os.environ.get("CAPTCHA_TTL_MINUTES", "30")),
        "CAPTCHA_FIXED_ANSWER": None,  # tests only: refused unless TESTING
        "ACCESS_CODE_TTL_HOURS": int(os.environ.get("ACCESS_CODE_TTL_HOURS", "72")),  # 接入授权码 (新增接入)
        "RESET_TTL_MINUTES": int(os.environ.get("RESET_TTL_MINUTES", "30")),
        "THROTTLE_WINDOW_MINUTES": 15,
        "THROTTLE_PAIR_SLOWDOWN": 3,  # failures of one account from one address before each try waits a minute
        "THROTTLE_PAIR_LOCK": 5,  # … before that address is locked out of that account for the window
        "THROTTLE_ADDRESS_LOCK": 20,  # failures from one address (any accounts) before it locks for the window
        "THROTTLE_ACCOUNT_ALERT": 10,  # failures of one account (any addresses): owner e-mailed, every try slowed
        "CAPTCHA_RATE_LIMIT_PER_MINUTE": int(os.environ.get("CAPTCHA_RATE_LIMIT_PER_MINUTE", "30")),
        # security keys (WebAuthn, issue 17 §3): the relying party is the site's host name (never an IP address:
        # browsers refuse one — a loopback PUBLIC_BASE_URL gives "localhost"), the origin the address users open
        "WEBAUTHN_RP_ID": os.environ.get("WEBAUTHN_RP_ID", webauthn_rp_id(public_base_url)),
        "WEBAUTHN_ORIGIN": os.environ.get("WEBAUTHN_ORIGIN", webauthn_origin(public_base_url)).rstrip("/"),
        "WEBAUTHN_RP_NAME": os.environ.get("WEBAUTHN_RP_NAME", "ICP备案管理系统"),
        # roles that sign in with a security key after the password (comma-separated); any user may add keys
        "WEBAUTHN_REQUIRED_ROLES": _env_list("WEBAUTHN_REQUIRED_ROLES", "preapproval"),
        # messages (SPEC §13)
        "MAIL_SERVER": os.environ.get("MAIL_SERVER", ""),
        "MAIL_PORT": int(os.environ.get("MAIL_PORT", "25")),
        "MAIL_USE_TLS": _env_bool("MAIL_USE_TLS", False),
        "MAIL_USE_SSL": _env_bool("MAIL_USE_SSL", False),
        "MAIL_USERNAME": os.environ.get("MAIL_USERNAME", ""),
        "MAIL_PASSWORD": os.environ.get("MAIL_PASSWORD", ""),
        "MAIL_FROM": os.environ.get("MAIL_FROM", "beian@localhost"),
        "MAIL_TIMEOUT_SECONDS": int(os.environ.get("MAIL_TIMEOUT_SECONDS", "20")),
        "SMS_BACKEND": os.environ.get("SMS_BACKEND", "log"),
        "SMS_HTTP_URL": os.environ.get("SMS_HTTP_URL", ""),
        "SMS_HTTP_TOKEN": os.environ.get("SMS_HTTP_TOKEN", ""),
        "OUTBOX_MAX_ATTEMPTS": int(os.environ.get("OUTBOX_MAX_ATTEMPTS", "8")),
        "OUTBOX_BACKOFF_SECONDS": int(os.environ.get("OUTBOX_BACKOFF_SECONDS", "30")),
        # domain reports (issue 14): "block" — no ISP verification or approval while a domain's registrant check
        # fails; "warn" — the verdicts are shown and the decision audited with them
        "DOMAIN_REGISTRANT_CHECK": os.environ.get("DOMAIN_REGISTRANT_CHECK", "block"),
        # special content (issue 17 §2): the 网站服务内容 codes that need a special filing confirmed by the content
        # department before approval (comma-separated; 23 论坛/社区); a website declaring 电子公告 always needs one
        "SPECIAL_CONTENT_SERVICE_CODES": os.environ.get("SPECIAL_CONTENT_SERVICE_CODES", "23"),
        # IP reports (issue 13): the worker recomputes the audit findings after a change, and at least this often
        "IP_FINDINGS_INTERVAL_MINUTES": int(os.environ.get("IP_FINDINGS_INTERVAL_MINUTES", "60")),
    }
