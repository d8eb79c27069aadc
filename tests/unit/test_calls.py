"""core.calls.live beyond the API: what a start or an end sends and leaves behind."""

from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import pytest
import time_machine
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from core.accounts.audit import Actor
from core.calls.live import (
    CallOfAnotherCompany, CallPolicy, end_call, expire_reservation, stale_reservations, start_call,
)
from core.accounts.companies import change_rate
from core.ledger.postings import verify_ledger
from core.schema import CallCharge, CallReservation, PrepaidBalance
from core.money import eur


def committed(session, result):
    """What a service returned, once the caller (the test, as the entry point) has committed."""
    session.commit()
    return result


def account(session, company_id):
    row = session.execute(select(PrepaidBalance.balance, PrepaidBalance.reserved)
                          .where(PrepaidBalance.company_id == company_id)).one()
    session.rollback()
    return tuple(row)


def test_an_end_without_a_start_obeys_every_rule_of_the_call_id_and_the_rate(session, make_company):
    """A repeat, another company's call, a reserved call and a changed rate come out right."""
    company_id, _ = make_company(name="Mine GmbH", balance=eur("10"), created_at=datetime(2026, 1, 1))
    other_id, _ = make_company(name="Theirs GmbH", balance=eur("10"), created_at=datetime(2026, 1, 1))
    committed(session, end_call(session, company_id, "first", duration_seconds=60))
    committed(session, end_call(session, other_id, "theirs", duration_seconds=60))

    repeat = committed(session, end_call(session, company_id, "first", duration_seconds=999))
    assert (repeat.created, repeat.charge.amount) == (False, eur("0.42"))
    with pytest.raises(CallOfAnotherCompany):
        end_call(session, company_id, "theirs", duration_seconds=5)
    session.rollback()

    committed(session, start_call(session, company_id, "held", started_at=datetime(2026, 11, 21, 10, 0),
                                  policy=CallPolicy()))
    held = committed(session, end_call(session, company_id, "held", duration_seconds=30,
                                       ended_at=datetime(2026, 11, 21, 10, 0, 30)))
    assert (held.created, held.charge.amount) == (True, eur("0.21"))
    assert account(session, company_id) == (eur("10") - eur("0.42") - eur("0.21"), 0)

    with time_machine.travel(datetime(2026, 11, 21, 11, 0, tzinfo=timezone.utc), tick=False):
        committed(session, change_rate(session, Actor(None, "test", None), company_id, eur("0.6"), 1, "new price"))
    before = committed(session, end_call(session, company_id, "before-change", duration_seconds=60,
                                         ended_at=datetime(2026, 11, 21, 10, 59)))
    after = committed(session, end_call(session, company_id, "after-change", duration_seconds=60,
                                        ended_at=datetime(2026, 11, 21, 11, 2)))
    assert (before.charge.amount, after.charge.amount) == (eur("0.42"), eur("0.6"))
    assert session.scalar(select(func.count()).select_from(CallCharge)) == 5
    assert verify_ledger(session) == []


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


def test_a_start_and_its_end_each_read_once_and_write_in_one_transaction(session, make_company):
    """No row is loaded again by its key: one read of everything stored under the call id, then the
    writes. A start: the hold on the balance row and the reservation. An end: the reservation
    captured, the balance debited with the hold let go in the same UPDATE, the ledger row and the
    call charge."""
    company_id, _ = make_company(balance=eur("10"), created_at=datetime(2026, 1, 1))
    engine = session.get_bind()
    started = first_words(engine, lambda: committed(session, start_call(
        session, company_id, "c1", policy=CallPolicy(), started_at=datetime(2026, 11, 21, 10, 0))))
    ended = first_words(engine, lambda: committed(session, end_call(
        session, company_id, "c1", duration_seconds=61, ended_at=datetime(2026, 11, 21, 10, 1, 1))))
    assert account(session, company_id) == (eur("9.573"), 0)
    assert started == (["SELECT", "UPDATE", "INSERT"], 1)
    assert ended == (["SELECT", "UPDATE", "UPDATE", "INSERT", "INSERT"], 1)


def test_a_start_on_a_short_balance_holds_what_is_available(session, make_company):
    company_id, _ = make_company(balance=eur("1"), created_at=datetime(2026, 1, 1))
    hold = committed(session, start_call(session, company_id, "short", started_at=datetime(2026, 11, 21, 10, 0),
                                         policy=CallPolicy()))
    assert (hold.amount, hold.available_after, hold.max_seconds) == (eur("1"), 0, 142)
    assert account(session, company_id) == (eur("1"), eur("1"))


def test_an_expired_hold_is_released_once_and_its_late_end_releases_nothing(session, make_company):
    company_id, _ = make_company(balance=eur("10"), created_at=datetime(2026, 1, 1))
    committed(session, start_call(session, company_id, "late", started_at=datetime(2026, 11, 21, 10, 0),
                                  policy=CallPolicy()))
    committed(session, start_call(session, company_id, "live", started_at=datetime(2026, 11, 21, 14, 0),
                                  policy=CallPolicy()))
    stale = stale_reservations(session, datetime(2026, 11, 21, 14, 30), older_than=timedelta(hours=4))
    assert [committed(session, expire_reservation(session, reservation_id)) for reservation_id in stale] == [True]
    assert committed(session, expire_reservation(session, stale[0])) is False  # once
    ended = committed(session, end_call(session, company_id, "late", duration_seconds=60,
                                        ended_at=datetime(2026, 11, 21, 10, 1)))
    assert ended.charge.amount == eur("0.42")
    assert account(session, company_id) == (eur("9.58"), eur("2.10"))
    assert session.scalars(select(CallReservation.status).order_by(CallReservation.call_id)).all() == [
        "expired", "active"]


def test_a_start_that_arrives_after_its_end_holds_nothing(session, make_company):
    company_id, _ = make_company(balance=eur("10"), created_at=datetime(2026, 1, 1))
    committed(session, end_call(session, company_id, "late-start", duration_seconds=60,
                                ended_at=datetime(2026, 11, 21, 10, 1)))
    hold = committed(session, start_call(session, company_id, "late-start", started_at=datetime(2026, 11, 21, 10, 0),
                                         policy=CallPolicy()))
    assert (hold.ended, hold.amount, hold.max_seconds, hold.available_after) == (True, 0, 0, eur("9.58"))
    assert account(session, company_id) == (eur("9.58"), 0)
    assert session.scalar(select(func.count()).select_from(CallReservation)) == 0


@contextmanager
def once_before_the_balance_update(session, work):
    """Run ``work`` (another entry point, committed) just before ``session`` first locks the account:
    what a concurrent request does between this one's read and its lock."""
    engine, pending = session.get_bind(), [work]

    def interpose(_connection, _cursor, statement, *_args):
        if pending and statement.lstrip().upper().startswith("UPDATE PREPAID_BALANCES"):
            with Session(engine) as other:
                pending.pop()(other)
                other.commit()

    event.listen(engine, "before_cursor_execute", interpose)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", interpose)
    assert not pending, "the other request never ran"


def test_a_start_racing_its_end_gives_its_hold_back(session, make_company):
    """The end commits while the start waits for the account: the start holds nothing."""
    company_id, _ = make_company(balance=eur("10"), created_at=datetime(2026, 1, 1))
    with once_before_the_balance_update(session, lambda other: end_call(
            other, company_id, "raced", duration_seconds=60, ended_at=datetime(2026, 11, 21, 10, 1))):
        hold = committed(session, start_call(session, company_id, "raced",
                                             started_at=datetime(2026, 11, 21, 10, 0), policy=CallPolicy()))
    assert (hold.ended, hold.amount) == (True, 0)
    assert account(session, company_id) == (eur("9.58"), 0)
    assert session.scalar(select(func.count()).select_from(CallReservation)) == 0


def test_an_end_racing_its_start_lets_the_late_hold_go(session, make_company):
    """The start commits while the end waits for the account: the end captures that hold too."""
    company_id, _ = make_company(balance=eur("10"), created_at=datetime(2026, 1, 1))
    with once_before_the_balance_update(session, lambda other: start_call(
            other, company_id, "raced", started_at=datetime(2026, 11, 21, 10, 0), policy=CallPolicy())):
        ended = committed(session, end_call(session, company_id, "raced", duration_seconds=60,
                                            ended_at=datetime(2026, 11, 21, 10, 1)))
    assert ended.charge.amount == eur("0.42")
    assert account(session, company_id) == (eur("9.58"), 0)
    assert session.scalars(select(CallReservation.status)).all() == ["captured"]
    assert verify_ledger(session) == []
