"""core.calls.live beyond the API: what a start or an end sends and leaves behind, and the pool's
connections surviving a database that dropped them."""

from datetime import datetime, timedelta, timezone

import pytest
import time_machine
from sqlalchemy import create_engine, event, func, select, text

from core.accounts.audit import Actor
from core.calls.live import (
    CallOfAnotherCompany, CallPolicy, end_call, expire_reservation, stale_reservations, start_call,
)
from core.accounts.companies import change_rate
from core.calls.api_keys import create_api_key
from core.ledger.postings import verify_ledger
from app.extensions import db
from core.schema import CallCharge, CallReservation, PrepaidBalance
from core.money import eur


def committed(result):
    """What a service returned, once the caller (the test, as the entry point) has committed."""
    db.session.commit()
    return result


def account(company_id):
    row = db.session.execute(select(PrepaidBalance.balance, PrepaidBalance.reserved)
                             .where(PrepaidBalance.company_id == company_id)).one()
    db.session.rollback()
    return tuple(row)


def test_an_end_without_a_start_obeys_every_rule_of_the_call_id_and_the_rate(app, make_company):
    """A repeat, another company's call, a reserved call and a changed rate come out right."""
    company_id, _ = make_company(name="Mine GmbH", balance=eur("10"), created_at=datetime(2026, 1, 1))
    other_id, _ = make_company(name="Theirs GmbH", balance=eur("10"), created_at=datetime(2026, 1, 1))
    with app.app_context():
        committed(end_call(db.session, company_id, "first", duration_seconds=60))
        committed(end_call(db.session, other_id, "theirs", duration_seconds=60))

        repeat = committed(end_call(db.session, company_id, "first", duration_seconds=999))
        assert (repeat.created, repeat.charge.amount) == (False, eur("0.42"))
        with pytest.raises(CallOfAnotherCompany):
            end_call(db.session, company_id, "theirs", duration_seconds=5)
        db.session.rollback()

        committed(start_call(db.session, company_id, "held", started_at=datetime(2026, 11, 21, 10, 0),
                             policy=CallPolicy()))
        held = committed(end_call(db.session, company_id, "held", duration_seconds=30,
                                  ended_at=datetime(2026, 11, 21, 10, 0, 30)))
        assert (held.created, held.charge.amount) == (True, eur("0.21"))
        assert account(company_id) == (eur("10") - eur("0.42") - eur("0.21"), 0)

        with time_machine.travel(datetime(2026, 11, 21, 11, 0, tzinfo=timezone.utc), tick=False):
            committed(change_rate(db.session, Actor(None, "test", None), company_id, eur("0.6"), 1, "new price"))
        before = committed(end_call(db.session, company_id, "before-change", duration_seconds=60,
                                    ended_at=datetime(2026, 11, 21, 10, 59)))
        after = committed(end_call(db.session, company_id, "after-change", duration_seconds=60,
                                   ended_at=datetime(2026, 11, 21, 11, 2)))
        assert (before.charge.amount, after.charge.amount) == (eur("0.42"), eur("0.6"))
        assert db.session.scalar(select(func.count()).select_from(CallCharge)) == 5
        assert verify_ledger(db.session) == []


def first_words(engine, work):
    """The first word of every statement ``work`` sends, and how many transactions it commits."""
    sent, commits = [], []
    listeners = [("before_cursor_execute", lambda *a: sent.append(a[2].split(None, 1)[0].upper())),
                 ("commit", lambda *a: commits.append(1))]
    for name, listener in listeners:
        event.listen(engine, name, listener)
    try:
        work()
    finally:
        for name, listener in listeners:
            event.remove(engine, name, listener)
    return sent, len(commits)


def test_a_start_and_its_end_each_read_once_and_write_in_one_transaction(app, make_company):
    """No row is loaded again by its key: one read of everything stored under the call id, then the
    writes. A start: the hold on the balance row and the reservation. An end: the reservation
    captured, the balance debited with the hold let go in the same UPDATE, the ledger row and the
    call charge."""
    company_id, _ = make_company(balance=eur("10"), created_at=datetime(2026, 1, 1))
    with app.app_context():
        engine = db.engine
        started = first_words(engine, lambda: committed(start_call(
            db.session, company_id, "c1", policy=CallPolicy(), started_at=datetime(2026, 11, 21, 10, 0))))
        ended = first_words(engine, lambda: committed(end_call(
            db.session, company_id, "c1", duration_seconds=61, ended_at=datetime(2026, 11, 21, 10, 1, 1))))
        assert account(company_id) == (eur("9.573"), 0)
    assert started == (["SELECT", "UPDATE", "INSERT"], 1)
    assert ended == (["SELECT", "UPDATE", "UPDATE", "INSERT", "INSERT"], 1)


def test_a_start_on_a_short_balance_holds_what_is_available(app, make_company):
    company_id, _ = make_company(balance=eur("1"), created_at=datetime(2026, 1, 1))
    with app.app_context():
        hold = committed(start_call(db.session, company_id, "short", started_at=datetime(2026, 11, 21, 10, 0),
                                    policy=CallPolicy()))
        assert (hold.amount, hold.available_after, hold.max_seconds) == (eur("1"), 0, 142)
        assert account(company_id) == (eur("1"), eur("1"))


def test_an_expired_hold_is_released_once_and_its_late_end_releases_nothing(app, make_company):
    company_id, _ = make_company(balance=eur("10"), created_at=datetime(2026, 1, 1))
    with app.app_context():
        committed(start_call(db.session, company_id, "late", started_at=datetime(2026, 11, 21, 10, 0),
                             policy=CallPolicy()))
        committed(start_call(db.session, company_id, "live", started_at=datetime(2026, 11, 21, 14, 0),
                             policy=CallPolicy()))
        stale = stale_reservations(db.session, datetime(2026, 11, 21, 14, 30), older_than=timedelta(hours=4))
        assert [committed(expire_reservation(db.session, reservation_id)) for reservation_id in stale] == [True]
        assert committed(expire_reservation(db.session, stale[0])) is False  # once
        ended = committed(end_call(db.session, company_id, "late", duration_seconds=60,
                                   ended_at=datetime(2026, 11, 21, 10, 1)))
        assert ended.charge.amount == eur("0.42")
        assert account(company_id) == (eur("9.58"), eur("2.10"))
        assert db.session.scalars(select(CallReservation.status).order_by(CallReservation.call_id)).all() == [
            "expired", "active"]


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
