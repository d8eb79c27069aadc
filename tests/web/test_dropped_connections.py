"""The pool's connections surviving a database that dropped them, through the usage API."""

from datetime import datetime

from sqlalchemy import create_engine, text

from app.extensions import db
from core.calls.api_keys import create_api_key
from core.money import eur


def kill(engine, connection_id):
    """Drop a pooled connection from the database's side, as a restart or an idle timeout would."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as other:  # a connection of its own, outside the pool being tested
            assert other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": connection_id}).scalar()
    else:
        connection_id.close()  # SQLite has no server: the file handle itself goes away


def pooled_connection_id(engine):
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            return connection.execute(text("SELECT pg_backend_pid()")).scalar()
        return connection.connection.dbapi_connection


def test_a_pooled_connection_the_database_dropped_is_replaced_before_the_next_request(app, make_company):
    company_id, _ = make_company(balance=eur("10"), created_at=datetime(2026, 1, 1))
    with app.app_context():
        _, key = create_api_key(db.session, company_id, "Platform")
        db.session.commit()
        db.session.remove()
        db.engine.dispose()  # the next request's connection is the only one in the pool
    client = app.test_client()
    headers = {"Authorization": f"Bearer {key}"}
    assert client.post("/api/v1/calls/before/end", json={"duration_seconds": 5}, headers=headers).status_code == 200
    with app.app_context():
        dropped = pooled_connection_id(db.engine)
        outside = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
        kill(outside, dropped)
        outside.dispose()
    assert client.post("/api/v1/calls/after/end", json={"duration_seconds": 5}, headers=headers).status_code == 200
    with app.app_context():
        assert pooled_connection_id(db.engine) != dropped
