"""core.calls beyond the API: what a start or an end leaves behind in the caller's session."""

from datetime import datetime

import pytest
from sqlalchemy import create_engine, select, text, update

from core.app import _ping_after_idle
from core.calls import CallError, CallPolicy, end_call, start_call
from core.models import Company, db
from core.money import eur


def company_name(company_id):
    return db.session.scalar(select(Company.name).where(Company.id == company_id))


def test_after_every_kind_of_end_the_session_writes_in_transactions_again(app, make_company):
    """An end may run its statements without a transaction (PostgreSQL); whatever way it returns,
    the next writes of the caller's session are a transaction again that a rollback undoes."""
    company_id, _ = make_company(name="Mine GmbH", balance=eur("10"), created_at=datetime(2026, 1, 1))
    other_id, _ = make_company(name="Theirs GmbH", balance=eur("10"), created_at=datetime(2026, 1, 1))
    with app.app_context():
        end_call(db.session, other_id, "theirs", duration_seconds=5)
        start_call(db.session, company_id, "reserved", started_at=datetime(2026, 11, 21, 10, 0), policy=CallPolicy())
        ends = {
            "new": dict(call_id="mine", duration_seconds=61),
            "repeat": dict(call_id="mine", duration_seconds=61),
            "free": dict(call_id="free", duration_seconds=0),
            "reserved": dict(call_id="reserved", duration_seconds=30, ended_at=datetime(2026, 11, 21, 10, 1)),
            "another company's": dict(call_id="theirs", duration_seconds=5),
            "end before start": dict(call_id="reserved-2", duration_seconds=5, ended_at=datetime(2026, 11, 21, 9, 0)),
        }
        start_call(db.session, company_id, "reserved-2", started_at=datetime(2026, 11, 21, 10, 0), policy=CallPolicy())
        db.session.rollback()
        for kind, arguments in ends.items():
            try:
                end_call(db.session, company_id, **arguments)
            except CallError:
                pass
            db.session.execute(update(Company).where(Company.id == company_id).values(name="Overwritten"))
            db.session.rollback()
            assert company_name(company_id) == "Mine GmbH", kind
            db.session.rollback()  # the next end starts with no transaction open


def test_a_pooled_connection_that_died_while_idle_is_replaced(app):
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"], **app.config["SQLALCHEMY_ENGINE_OPTIONS"])
    _ping_after_idle(engine, idle_seconds=0)
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
        dead = connection.connection.dbapi_connection
    dead.close()  # as when the server restarted while it sat in the pool
    with engine.connect() as connection:
        assert connection.execute(text("SELECT 1")).scalar() == 1
        assert connection.connection.dbapi_connection is not dead
    engine.dispose()


def test_a_connection_that_just_served_is_handed_out_without_a_ping(app):
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"], **app.config["SQLALCHEMY_ENGINE_OPTIONS"])
    _ping_after_idle(engine, idle_seconds=3600)
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
        dead = connection.connection.dbapi_connection
    dead.close()
    with pytest.raises(Exception), engine.connect() as connection:
        connection.execute(text("SELECT 1"))  # not pinged: the dead connection itself fails
    engine.dispose()
