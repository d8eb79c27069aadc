import pytest

from core.config import ConfigError, database_uri, load_config


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
    assert load_config(tmp_path, {"DATABASE_URL": "postgresql://x/y", "SECRET_KEY": "k"})["SESSION_COOKIE_SECURE"]
