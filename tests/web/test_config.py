import pytest

from app.config import ConfigError, database_uri, load_config
from app.extensions import db


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    with pytest.raises(ConfigError):
        load_config(tmp_path, {"DATABASE_URL": "postgresql://db/portal"})


def test_the_demo_keeps_a_generated_secret_key_in_the_instance_folder(tmp_path):
    first = load_config(tmp_path, {})["SECRET_KEY"]
    assert len(first) >= 32 and load_config(tmp_path, {})["SECRET_KEY"] == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_postgres_urls_use_psycopg_3_and_the_default_is_sqlite_in_instance(tmp_path):
    assert database_uri("postgresql://u@h/db", tmp_path) == "postgresql+psycopg://u@h/db"
    assert database_uri("postgres://u@h/db", tmp_path) == "postgresql+psycopg://u@h/db"
    assert database_uri(None, tmp_path) == f"sqlite:///{tmp_path / 'portal.db'}"


def test_redis_url_switches_the_rate_limit_storage(tmp_path):
    config = load_config(tmp_path, {"REDIS_URL": "redis://127.0.0.1:6379/0"})
    assert config["RATELIMIT_STORAGE_URI"] == "redis://127.0.0.1:6379/0"
    assert load_config(tmp_path, {})["RATELIMIT_STORAGE_URI"] == "memory://"
    production = {"DATABASE_URL": "postgresql://x/y", "SECRET_KEY": "k" * 32, "STRIPE_SECRET_KEY": "sk_live_x",
                  "STRIPE_WEBHOOK_SECRET": "whsec_x"}
    assert load_config(tmp_path, production)["SESSION_COOKIE_SECURE"]


def test_the_demo_signs_webhooks_with_a_random_secret_of_its_instance_never_a_well_known_one(tmp_path):
    from stripe_sandbox import DEV_WEBHOOK_SECRET

    secret = load_config(tmp_path, {})["STRIPE_WEBHOOK_SECRET"]
    assert secret.startswith("whsec_") and len(secret) > 40 and secret != DEV_WEBHOOK_SECRET
    assert load_config(tmp_path, {})["STRIPE_WEBHOOK_SECRET"] == secret  # every process of the instance
    assert load_config(tmp_path / "other", {})["STRIPE_WEBHOOK_SECRET"] != secret


def test_production_refuses_a_secret_key_shorter_than_32_bytes(tmp_path):
    production = {"DATABASE_URL": "postgresql://x/y", "STRIPE_SECRET_KEY": "sk_live_x", "STRIPE_WEBHOOK_SECRET": "w"}
    with pytest.raises(ConfigError):
        load_config(tmp_path, {**production, "SECRET_KEY": "k" * 31})
    assert load_config(tmp_path, {**production, "SECRET_KEY": "k" * 32})["SECRET_KEY"] == "k" * 32


def test_production_needs_stripe_keys_and_never_falls_back_to_the_sandbox(tmp_path):
    base = {"DATABASE_URL": "postgresql://x/y", "SECRET_KEY": "k" * 32}
    with pytest.raises(ConfigError):
        load_config(tmp_path, base)
    with pytest.raises(ConfigError):
        load_config(tmp_path, {**base, "STRIPE_SECRET_KEY": "sk_live_x"})
    with pytest.raises(ConfigError):  # a test installation's sandbox needs a secret of its own
        load_config(tmp_path, {**base, "STRIPE_SANDBOX": "1"})
    assert load_config(tmp_path, {**base, "STRIPE_SANDBOX": "1", "STRIPE_WEBHOOK_SECRET": "whsec_own"})["STRIPE_SANDBOX"]
    assert not load_config(tmp_path, {**base, "STRIPE_SECRET_KEY": "sk_live_x", "STRIPE_WEBHOOK_SECRET": "w"})["STRIPE_SANDBOX"]
    assert load_config(tmp_path, {})["STRIPE_SANDBOX"]


def database_settings(engine) -> tuple:
    """What a connection of ``engine`` runs with: its database, and on SQLite the PRAGMAs and BEGIN mode."""
    with engine.connect() as connection:
        if engine.dialect.name != "sqlite":
            return engine.url.render_as_string(hide_password=False), engine.dialect.name
        pragmas = tuple(connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                        for name in ("journal_mode", "foreign_keys", "busy_timeout"))
        return engine.url.render_as_string(), pragmas, connection.connection.dbapi_connection.isolation_level


def test_the_unit_tests_plain_engine_runs_with_the_apps_database_options(app, engine):
    with app.app_context():
        apps = database_settings(db.engine)
    assert database_settings(engine) == apps
    if engine.dialect.name == "sqlite":
        assert apps[1:] == (("wal", 1, 30000), "IMMEDIATE")
