"""core.calls.live beyond the API: what a start or an end leaves behind in the caller's session."""

from datetime import datetime, timezone

import pytest
import time_machine
from sqlalchemy import create_engine, event, func, select, text, update

from app.factory import _ping_after_idle
from core.accounts.audit import Actor
from core.calls.live import CallError, CallOfAnotherCompany, CallPolicy, end_call, start_call
from core.accounts.companies import change_rate
from core.ledger.postings import verify_ledger
from core.schema import CallCharge, Company, PrepaidBalance, db
from core.money import eur


def company_name(company_id):
    return db.session.scalar(select(Company.name).where(Company.id == company_id))


def test_after_every_kind_of_end_the_session_writes_in_transactions_again(app, make_company):
    """Whatever way an end returns (charged, repeated, refused), it leaves nothing open: the
    caller's next writes are a transaction of their own that a rollback undoes."""
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


def engine_with_a_dead_pooled_connection(app, idle_seconds: float):  # not money
    """An engine pinging after ``idle_seconds``, and the pooled connection that died while idle
    (as when the server restarted while it sat in the pool)."""
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"], **app.config["SQLALCHEMY_ENGINE_OPTIONS"])
    _ping_after_idle(engine, idle_seconds=idle_seconds)
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
        dead = connection.connection.dbapi_connection
    dead.close()
    return engine, dead


def test_a_pooled_connection_that_died_while_idle_is_replaced(app):
    engine, dead = engine_with_a_dead_pooled_connection(app, idle_seconds=0)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT 1")).scalar() == 1
        assert connection.connection.dbapi_connection is not dead
    engine.dispose()


def test_a_connection_that_just_served_is_handed_out_without_a_ping(app):
    engine, _dead = engine_with_a_dead_pooled_connection(app, idle_seconds=3600)
    with pytest.raises(Exception), engine.connect() as connection:
        connection.execute(text("SELECT 1"))  # not pinged: the dead connection itself fails
    engine.dispose()


def test_an_end_tried_in_one_statement_still_obeys_every_rule(app, make_company):
    """After a first end, a company's next ends are tried as one guarded statement (PostgreSQL):
    a repeat, another company's call, a reserved call and a changed rate must all come out as the
    full path would have them."""
    company_id, _ = make_company(name="Mine GmbH", balance=eur("10"), created_at=datetime(2026, 1, 1))
    other_id, _ = make_company(name="Theirs GmbH", balance=eur("10"), created_at=datetime(2026, 1, 1))
    with app.app_context():
        end_call(db.session, company_id, "first", duration_seconds=60)  # charged at 0.42 €/min; the hint
        end_call(db.session, other_id, "theirs", duration_seconds=60)
        db.session.rollback()
        statements = []
        event.listen(db.engine, "before_cursor_execute", capture := lambda *a: statements.append(a[2].split()[0]))
        end_call(db.session, company_id, "second", duration_seconds=60)
        event.remove(db.engine, "before_cursor_execute", capture)
        if db.engine.dialect.name == "postgresql":
            assert statements == ["WITH"]  # the balance UPDATE, the ledger row and the call charge at once

        charge, created = end_call(db.session, company_id, "first", duration_seconds=999)
        assert (created, charge.amount) == (False, eur("0.42"))
        with pytest.raises(CallOfAnotherCompany):
            end_call(db.session, company_id, "theirs", duration_seconds=5)

        start_call(db.session, company_id, "held", started_at=datetime(2026, 11, 21, 10, 0), policy=CallPolicy())
        charge, created = end_call(db.session, company_id, "held", duration_seconds=30,
                                   ended_at=datetime(2026, 11, 21, 10, 0, 30))
        assert (created, charge.amount) == (True, eur("0.21"))
        assert db.session.scalar(select(PrepaidBalance.reserved).where(PrepaidBalance.company_id == company_id)) == 0

        with time_machine.travel(datetime(2026, 11, 21, 11, 0, tzinfo=timezone.utc), tick=False):
            change_rate(db.session, Actor(None, "test", None), company_id, eur("0.6"), 1, "new price")
        before, created = end_call(db.session, company_id, "before-change", duration_seconds=60,
                                   ended_at=datetime(2026, 11, 21, 10, 59))
        after, created = end_call(db.session, company_id, "after-change", duration_seconds=60,
                                  ended_at=datetime(2026, 11, 21, 11, 2))
        assert (before.amount, after.amount) == (eur("0.42"), eur("0.6"))
        again, _ = end_call(db.session, company_id, "after-change-2", duration_seconds=60,
                            ended_at=datetime(2026, 11, 21, 11, 3))
        assert again.amount == eur("0.6")
        assert db.session.scalar(select(func.count()).select_from(CallCharge)) == 7
        assert verify_ledger(db.session) == []
