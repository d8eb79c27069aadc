"""Shared fixtures. The suite runs on PostgreSQL when DATABASE_URL is set, else on a SQLite file.

The schema is built once per run by the committed Alembic migrations; after every test the
ledger invariants are checked and all rows are deleted.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-of-at-least-32-bytes")
os.environ.setdefault("STRIPE_SANDBOX", "1")
os.environ.setdefault("STRIPE_WEBHOOK_SECRET", "whsec_test_only_" + os.urandom(12).hex())

from core.accounts.users import create_user  # noqa: E402
from app.config import database_uri, engine_options  # noqa: E402
from core.ledger.postings import verify_ledger  # noqa: E402
from app.extensions import db  # noqa: E402
from core.schema import Role  # noqa: E402
from stripe_sandbox.install import install_sandbox  # noqa: E402
from tests.builders import COMPANY_PASSWORD, add_company  # noqa: E402

STAFF_PASSWORD = "staff-password-1"


@pytest.fixture(scope="session")
def instance_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("instance")
    os.environ["INSTANCE_PATH"] = str(path)
    return path


@pytest.fixture(scope="session")
def database_url(instance_path) -> str:
    return database_uri(os.environ.get("DATABASE_URL"), instance_path)


@pytest.fixture(scope="session")
def app(instance_path, database_url):
    from flask_migrate import upgrade

    from app.factory import create_app

    # Jobs run inline unless a test hands them to a real worker (the redis_jobs fixture).
    application = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url, "JOBS_INLINE": True})
    install_sandbox(application, deliver=WebhookRelay(application), settle_delay_seconds=None)
    with application.app_context():
        _reset_schema(database_url)
        upgrade()
    return application


class WebhookRelay:
    """Delivers sandbox webhooks to the app at once (inline), or holds them for a test to send."""

    def __init__(self, app):
        self._app = app
        self.hold = False
        self.held: list[tuple[str, str]] = []
        self.responses: list[int] = []

    def __call__(self, payload: str, signature: str) -> bool:
        if self.hold:
            self.held.append((payload, signature))
            return True
        return self.send(payload, signature) == 200

    def send(self, payload: str, signature: str) -> int:
        status = self._app.test_client().post("/api/stripe/webhook", data=payload, content_type="application/json",
                                              headers={"Stripe-Signature": signature}).status_code
        self.responses.append(status)
        return status

    def reset(self) -> None:
        self.hold = False
        self.held.clear()
        self.responses.clear()


def _reset_schema(url: str) -> None:
    """Start from an empty database so the migrations are what builds the schema."""
    if url.startswith("postgresql"):
        with db.engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))


@pytest.fixture(autouse=True)
def _push_request_context():
    """Replaces pytest-flask's fixture of this name, which pushes one request context for a whole
    test: every client request would then share its `g` (and with it Flask-Babel's cached locale
    and Flask-Login's cached user). Tests open an app context themselves where they need one."""
    yield


@pytest.fixture
def client(app):
    """Replaces pytest-flask's client, which keeps the last request's context pushed (`with client`),
    so a second client's requests would share that request's `g` and logged-in user."""
    return app.test_client()


@pytest.fixture(autouse=True)
def _clean_database(request):
    """After each test that touched the database: invariants must hold, then wipe all rows."""
    yield
    if "app" not in request.fixturenames:
        return
    application = request.getfixturevalue("app")
    with application.app_context():
        db.session.rollback()
        mismatches = verify_ledger(db.session)
    wipe_database(application)
    assert not mismatches, f"ledger invariants broken: {mismatches}"


def wipe_database(application) -> None:
    """Delete every row (a test's own run of many examples calls it between them)."""
    with application.app_context():
        db.session.rollback()
        if db.engine.dialect.name == "postgresql":  # TRUNCATE: audit records refuse DELETE there
            names = ", ".join(table.name for table in db.metadata.sorted_tables)
            db.session.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(db.metadata.sorted_tables):
                db.session.execute(table.delete())
        db.session.commit()
        db.session.remove()


@pytest.fixture(autouse=True)
def _reset_rate_limits_and_webhooks(request):
    if "app" in request.fixturenames:
        from app.extensions import limiter

        application = request.getfixturevalue("app")
        with application.app_context():
            limiter.reset()
        application.extensions["stripe_sandbox"].deliver.reset()
    yield


# The jobs' Redis: the suite's own database when REDIS_URL is set (each run keeps to its own), else
# TEST_JOBS_REDIS_URL (a run without REDIS_URL that must keep off db 3, e.g. beside another run), else db 3.
JOBS_REDIS_URL = os.environ.get("REDIS_URL") or os.environ.get("TEST_JOBS_REDIS_URL") or "redis://127.0.0.1:6379/3"


@pytest.fixture
def redis_jobs(app):
    """Jobs go to RQ on the local Redis (which must be running: no skip) for the length of a test."""
    from redis import Redis

    connection = Redis.from_url(JOBS_REDIS_URL)
    connection.ping()
    connection.flushdb()
    saved = app.config["JOBS_INLINE"], app.config["REDIS_URL"], app.extensions.pop("redis", None)
    app.config.update(JOBS_INLINE=False, REDIS_URL=JOBS_REDIS_URL)
    yield connection
    app.config["JOBS_INLINE"], app.config["REDIS_URL"] = saved[0], saved[1]
    app.extensions.pop("redis", None)
    if saved[2] is not None:
        app.extensions["redis"] = saved[2]
    connection.flushdb()


@pytest.fixture
def sandbox(app):
    """The Stripe sandbox the test app talks to (webhooks delivered inline unless held)."""
    return app.extensions["stripe_sandbox"]


@pytest.fixture
def webhooks(sandbox):
    return sandbox.deliver


@pytest.fixture(scope="session")
def engine(app, database_url):
    """An engine of its own on the test database the app fixture prepared, with the app's options
    (app.config.engine_options; the SQLite PRAGMAs come from app.factory's listener on every engine).
    It pushes no app context: core's tests run without Flask."""
    plain_engine = create_engine(database_url, **engine_options(database_url))
    yield plain_engine
    plain_engine.dispose()


@pytest.fixture
def session(engine):
    """A plain SQLAlchemy session on the test database, for core's tests. The test commits, as an
    entry point would; threads that race open Sessions of their own on ``engine``."""
    with Session(engine) as plain_session:
        yield plain_session


@pytest.fixture
def make_company(app):
    """Create a company (with an optional opening top-up) and a company admin for it."""
    counter = iter(range(1, 1000))

    def make(name: str | None = None, balance: int = 0, member: bool = False, **details):
        with app.app_context():
            created = add_company(db.session, next(counter), name, balance, member, **details)
            db.session.commit()
            return created

    return make


@pytest.fixture
def make_staff(app):
    def make(role: Role = Role.STAFF_ADMIN, email: str = "staff-user@example.com"):
        with app.app_context():
            create_user(db.session, email, STAFF_PASSWORD, role)
            db.session.commit()
        return email

    return make
