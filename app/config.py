"""Settings from the environment. Without DATABASE_URL the app runs as the embedded demo."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class ConfigError(RuntimeError):
    pass


def database_uri(url: str | None, instance_path: Path) -> str:
    if not url:
        return f"sqlite:///{instance_path / 'portal.db'}"
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


MIN_SECRET_KEY_BYTES = 32
# Seconds: a Redis that hangs must not hang a request (rate limits fall back, jobs wait in the outbox).
REDIS_TIMEOUTS = {"socket_connect_timeout": 2, "socket_timeout": 5}


def _instance_secret(instance_path: Path, name: str, make) -> str:
    """A random secret the embedded demo keeps in instance/, made on first start, so that sessions
    and signed webhooks survive a restart and every process of the instance shares it."""
    secret_file = instance_path / name
    if not secret_file.exists():
        instance_path.mkdir(parents=True, exist_ok=True)
        secret_file.write_text(make())
        secret_file.chmod(0o600)
    return secret_file.read_text().strip()


def load_config(instance_path: Path, environ: os._Environ | dict = os.environ) -> dict:
    database_url = environ.get("DATABASE_URL")
    demo = not database_url
    secret_key = environ.get("SECRET_KEY")
    if not secret_key:
        if not demo:
            raise ConfigError("SECRET_KEY must be set when DATABASE_URL is set (production).")
        secret_key = _instance_secret(instance_path, "secret_key", lambda: secrets.token_hex(32))
    if not demo and len(secret_key.encode()) < MIN_SECRET_KEY_BYTES:
        raise ConfigError(f"SECRET_KEY must be at least {MIN_SECRET_KEY_BYTES} bytes (sessions, CSRF and set-password "
                          "links are signed with it).")
    redis_url = environ.get("REDIS_URL") or None
    stripe_key = environ.get("STRIPE_SECRET_KEY") or None
    webhook_secret = environ.get("STRIPE_WEBHOOK_SECRET") or None
    if stripe_key and not webhook_secret:
        raise ConfigError("STRIPE_WEBHOOK_SECRET must be set together with STRIPE_SECRET_KEY.")
    sandbox = stripe_key is None
    if sandbox and not demo and environ.get("STRIPE_SANDBOX") != "1":
        raise ConfigError("STRIPE_SECRET_KEY must be set in production (STRIPE_SANDBOX=1 only for test installations).")
    if not webhook_secret:
        if not demo:  # a test installation's sandbox signs with a secret of its own too
            raise ConfigError("STRIPE_WEBHOOK_SECRET must be set whenever DATABASE_URL is set.")
        webhook_secret = _instance_secret(instance_path, "stripe_webhook_secret",
                                          lambda: "whsec_" + secrets.token_hex(24))
    uri = database_uri(database_url, instance_path)
    return {
        "DEMO_MODE": demo,
        "SECRET_KEY": secret_key,
        "SQLALCHEMY_DATABASE_URI": uri,
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options(uri),
        "REDIS_URL": redis_url,
        "RATELIMIT_STORAGE_URI": redis_url or "memory://",
        # Redis down: count in this process's memory (Flask-Limiter logs a warning) and go back to Redis
        # once it answers again, rather than failing every limited request (logins, top-ups).
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
        "RATELIMIT_STORAGE_OPTIONS": REDIS_TIMEOUTS if redis_url else {},
        "RATELIMIT_HEADERS_ENABLED": True,
        "LOGIN_RATE_LIMIT_PER_ACCOUNT": environ.get("LOGIN_RATE_LIMIT_PER_ACCOUNT", "5 per minute"),
        "LOGIN_RATE_LIMIT_PER_ADDRESS": environ.get("LOGIN_RATE_LIMIT_PER_ADDRESS", "30 per minute"),
        "BABEL_DEFAULT_LOCALE": "de",
        "BABEL_DEFAULT_TIMEZONE": environ.get("DISPLAY_TIMEZONE", "Europe/Berlin"),
        "BABEL_TRANSLATION_DIRECTORIES": str(ROOT / "translations"),
        # Reverse proxies in front of the app whose X-Forwarded-* headers are believed (0: none).
        "TRUSTED_PROXIES": int(environ.get("TRUSTED_PROXIES", "0")),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": environ.get("SESSION_COOKIE_SECURE", "0" if demo else "1") == "1",
        "REMEMBER_COOKIE_HTTPONLY": True,
        # A login lasts at most SESSION_MAX_HOURS, and ends after SESSION_IDLE_MINUTES without a
        # request; both are checked on the server against times kept in the signed session.
        "SESSION_MAX_HOURS": float(environ.get("SESSION_MAX_HOURS", "12")),  # not money
        "SESSION_IDLE_MINUTES": float(environ.get("SESSION_IDLE_MINUTES", "60")),  # not money
        "WTF_CSRF_TIME_LIMIT": None,
        "WTF_I18N_ENABLED": True,  # WTForms' own messages in the page's language (Flask-WTF over Flask-Babel)
        "TRANSACTIONS_PAGE_SIZE": 50,
        "DOCUMENTS_PAGE_SIZE": 50,  # invoices and credit notes per page (portal list, staff tab)
        # Request limits (413 beyond them): a body, the part of a form held in memory, a form's fields.
        "MAX_CONTENT_LENGTH": int(environ.get("MAX_REQUEST_BYTES", str(1024 * 1024))),
        "MAX_FORM_MEMORY_SIZE": int(environ.get("MAX_FORM_MEMORY_BYTES", str(100_000))),
        "MAX_FORM_PARTS": int(environ.get("MAX_FORM_PARTS", "200")),
        # Stripe: without a secret key the in-repo sandbox plays Stripe (demo and tests only).
        "STRIPE_SECRET_KEY": stripe_key,
        "STRIPE_PUBLISHABLE_KEY": environ.get("STRIPE_PUBLISHABLE_KEY") or None,
        "STRIPE_WEBHOOK_SECRET": webhook_secret,
        "STRIPE_API_BASE": environ.get("STRIPE_API_BASE") or None,
        "STRIPE_SANDBOX": sandbox,
        "STRIPE_SANDBOX_SETTLE_SECONDS": float(environ.get("STRIPE_SANDBOX_SETTLE_SECONDS", "5")),  # not money
        # An unpaid Checkout Session expires after this long, 24 h as at Stripe; shorter for a demo.
        "STRIPE_SANDBOX_CHECKOUT_EXPIRY_SECONDS": float(environ.get("STRIPE_SANDBOX_CHECKOUT_EXPIRY_SECONDS",
                                                                    "86400")),  # not money
        # The sandbox's state: one SQLite file shared by the server, workers and CLI commands.
        "STRIPE_SANDBOX_DB": environ.get("STRIPE_SANDBOX_DB") or str(instance_path / "stripe-sandbox.db"),
        "PAYMENT_METHOD_TYPES": ["card", "sepa_debit"],
        "TOPUP_MIN_EUR": environ.get("TOPUP_MIN_EUR", "10"),
        "TOPUP_MAX_EUR": environ.get("TOPUP_MAX_EUR", "10000"),
        "TOPUP_PRESETS_EUR": [50, 100, 250, 500],
        "TOPUP_RATE_LIMIT": environ.get("TOPUP_RATE_LIMIT", "10 per hour"),
        # Background jobs: on RQ when REDIS_URL is set, else inline in the process that enqueues.
        "JOBS_INLINE": redis_url is None,
        # Email: SMTP when SMTP_HOST is set, else .eml files in instance/outbox/.
        "SMTP_HOST": environ.get("SMTP_HOST") or None,
        "SMTP_PORT": int(environ.get("SMTP_PORT", "587")),
        "SMTP_USER": environ.get("SMTP_USER") or None,
        "SMTP_PASSWORD": environ.get("SMTP_PASSWORD") or None,
        "SMTP_STARTTLS": environ.get("SMTP_STARTTLS", "1") == "1",
        "MAIL_FROM": environ.get("MAIL_FROM", "Prepaid Billing <billing@example.com>"),
        "OUTBOX_DIR": environ.get("OUTBOX_DIR", str(instance_path / "outbox")),
        "PORTAL_BASE_URL": environ.get("PORTAL_BASE_URL", "http://127.0.0.1:5000").rstrip("/"),
        # Invoices (§14 UStG): the seller and VAT. Demo defaults; set them for production.
        "SELLER_NAME": environ.get("SELLER_NAME", "Demo Telefonie Services GmbH"),
        "SELLER_ADDRESS": environ.get("SELLER_ADDRESS", "Beispielweg 5\n10117 Berlin\nDeutschland"),
        "SELLER_VAT_ID": environ.get("SELLER_VAT_ID", "DE000000000"),
        "SELLER_TAX_NUMBER": environ.get("SELLER_TAX_NUMBER", "30/000/00000"),
        "SELLER_EMAIL": environ.get("SELLER_EMAIL", "billing@example.com"),
        "VAT_RATE_PERCENT": environ.get("VAT_RATE_PERCENT", "19"),
        "TOPUP_AMOUNTS_INCLUDE_VAT": environ.get("TOPUP_AMOUNTS_INCLUDE_VAT", "1") == "1",
        "LOW_BALANCE_WARNING_INTERVAL_HOURS": int(environ.get("LOW_BALANCE_WARNING_INTERVAL_HOURS", "24")),
        # Usage API: what a live call holds, what it needs to start, when a forgotten one expires.
        "CALL_RESERVATION_MINUTES": int(environ.get("CALL_RESERVATION_MINUTES", "5")),
        "CALL_MINIMUM_MINUTES": int(environ.get("CALL_MINIMUM_MINUTES", "1")),
        "RESERVATION_EXPIRY_HOURS": int(environ.get("RESERVATION_EXPIRY_HOURS", "4")),
        "MAX_CALL_SECONDS": int(environ.get("MAX_CALL_SECONDS", str(48 * 3600))),
        "CALL_START_MAX_AHEAD_SECONDS": int(environ.get("CALL_START_MAX_AHEAD_SECONDS", "300")),  # clock drift
        "AUTO_TOPUP_ENABLED": environ.get("AUTO_TOPUP_ENABLED", "1") == "1",
    }


def engine_options(uri: str) -> dict:
    """The engine options of the database at ``uri``: the app's, and any engine of its own (the tests')."""
    # A pooled connection is checked before use, and replaced if the database dropped it (a
    # restart, an idle timeout, a firewall).
    options = {"pool_pre_ping": True}
    if uri.startswith("sqlite"):
        # Python's sqlite3 issues this BEGIN before the first write of a transaction, so every
        # write transaction is BEGIN IMMEDIATE while plain reads take no lock at all.
        options["connect_args"] = {"isolation_level": "IMMEDIATE", "timeout": 30}
    return options
