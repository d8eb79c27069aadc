import threading

import pytest
from sqlalchemy import event, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.accounts.users import create_company
from core.ledger.postings import (
    InsufficientBalance, Reference, UnknownCompany, ZeroAmount, change_reserved, post_entry, verify_ledger,
)
from core.schema import BalanceTransaction, EntryType, PrepaidBalance
from tests.builders import add_hold
from core.money import eur


@pytest.fixture
def company_id(session):
    company = create_company(session, "Ledger Test GmbH")
    session.commit()
    return company.id


def balance_of(session, company_id):
    return session.scalar(
        select(PrepaidBalance.balance).where(PrepaidBalance.company_id == company_id).execution_options(populate_existing=True)
    )


def test_a_credit_raises_the_balance_and_records_before_and_after(session, company_id):
    entry = post_entry(session, company_id, EntryType.TOPUP, eur("100"), description="Top-up", actor="user:1")
    session.commit()
    assert (entry.balance_before, entry.amount, entry.balance_after) == (0, eur("100"), eur("100"))
    assert balance_of(session, company_id) == eur("100")
    assert entry.actor == "user:1"


def test_entries_chain_each_before_to_the_previous_after(session, company_id):
    post_entry(session, company_id, EntryType.TOPUP, eur("50"))
    post_entry(session, company_id, EntryType.CHARGE, -eur("0.427"))
    post_entry(session, company_id, EntryType.ADJUSTMENT, eur("1.5"))
    session.commit()
    rows = session.scalars(select(BalanceTransaction).order_by(BalanceTransaction.id)).all()
    assert [r.balance_before for r in rows[1:]] == [r.balance_after for r in rows[:-1]]
    assert rows[-1].balance_after == eur("51.073") == balance_of(session, company_id)
    assert verify_ledger(session) == []


def test_a_debit_beyond_the_available_balance_is_refused_and_changes_nothing(session, company_id):
    post_entry(session, company_id, EntryType.TOPUP, eur("10"))
    add_hold(session, company_id, eur("4"))
    session.commit()
    with pytest.raises(InsufficientBalance) as error:
        post_entry(session, company_id, EntryType.ADJUSTMENT, -eur("6.01"))
    session.rollback()
    assert error.value.available == eur("6")
    assert balance_of(session, company_id) == eur("10")
    assert session.scalar(select(BalanceTransaction.id).where(BalanceTransaction.type == "adjustment")) is None


def test_a_debit_may_go_negative_when_the_caller_allows_it(session, company_id):
    entry = post_entry(session, company_id, EntryType.CHARGE, -eur("3"), allow_negative=True)
    session.commit()
    assert entry.balance_after == -eur("3")


def test_zero_amounts_and_unknown_companies_are_refused(session, company_id):
    with pytest.raises(ZeroAmount):
        post_entry(session, company_id, EntryType.ADJUSTMENT, 0)
    with pytest.raises(UnknownCompany):
        post_entry(session, company_id + 999, EntryType.ADJUSTMENT, -eur("1"))
    session.rollback()


def test_the_same_outside_reference_cannot_be_posted_twice(session, company_id):
    post_entry(session, company_id, EntryType.TOPUP, eur("5"), reference=Reference("topup", "7"))
    session.commit()
    with pytest.raises(IntegrityError):
        post_entry(session, company_id, EntryType.TOPUP, eur("5"), reference=Reference("topup", "7"))
    session.rollback()
    assert balance_of(session, company_id) == eur("5")


def test_verify_ledger_finds_a_balance_that_drifted_from_its_ledger(session, company_id):
    post_entry(session, company_id, EntryType.TOPUP, eur("20"))
    session.execute(update(PrepaidBalance).values(balance=eur("25")))
    session.commit()
    problems = verify_ledger(session)
    assert [p.company_id for p in problems] == [company_id]
    assert "ledger sum" in problems[0].problem
    _repair(session)


def test_verify_ledger_finds_reserved_funds_no_open_hold_explains(session, company_id):
    post_entry(session, company_id, EntryType.TOPUP, eur("20"))
    session.execute(update(PrepaidBalance).values(reserved=eur("2.10")))  # a hold without its call
    session.commit()
    problems = verify_ledger(session)
    assert [(p.company_id, p.problem) for p in problems] == [(company_id, "reserved 21000 != open holds 0")]
    session.execute(update(PrepaidBalance).values(reserved=0))
    session.commit()
    assert verify_ledger(session) == []


def test_verify_ledger_finds_a_row_whose_arithmetic_is_wrong(session, company_id):
    entry = post_entry(session, company_id, EntryType.TOPUP, eur("20"))
    session.commit()
    session.execute(update(BalanceTransaction).where(BalanceTransaction.id == entry.id).values(balance_before=1))
    session.commit()
    problems = {p.problem for p in verify_ledger(session)}
    assert any("before + amount != after" in p for p in problems)
    _repair(session)


def test_verify_ledger_finds_a_broken_chain(session, company_id):
    post_entry(session, company_id, EntryType.TOPUP, eur("20"))
    second = post_entry(session, company_id, EntryType.TOPUP, eur("5"))
    session.commit()
    session.execute(
        update(BalanceTransaction).where(BalanceTransaction.id == second.id)
        .values(balance_before=eur("21"), balance_after=eur("26"))
    )
    session.commit()
    problems = {p.problem for p in verify_ledger(session)}
    assert any("previous row's after" in p for p in problems)
    _repair(session)


def _repair(session):
    """Tests that plant drift remove it again, so the after-test invariant check stays meaningful."""
    session.execute(BalanceTransaction.__table__.delete())
    session.execute(update(PrepaidBalance).values(balance=0, reserved=0))
    session.commit()


def test_concurrent_writers_end_with_the_exact_balance_and_intact_invariants(engine, company_id):
    """Many threads, each with its own connection, post credits and debits to one company at once."""
    threads_count, posts_each = 12, 15
    errors = []
    start = threading.Barrier(threads_count)

    def writer(number):
        try:
            start.wait()
            for i in range(posts_each):
                with Session(engine) as worker:
                    amount = eur("1.0007") if i % 3 else -eur("0.0021")
                    post_entry(worker, company_id, EntryType.ADJUSTMENT, amount, allow_negative=True,
                               reference=Reference("thread", f"{number}-{i}"))
                    worker.commit()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    credits = sum(1 for i in range(posts_each) if i % 3) * threads_count
    debits = threads_count * posts_each - credits
    with Session(engine) as check:
        assert balance_of(check, company_id) == credits * eur("1.0007") - debits * eur("0.0021")
        assert verify_ledger(check) == []


def test_concurrent_debits_never_overdraw_the_available_balance(engine, company_id, session):
    post_entry(session, company_id, EntryType.TOPUP, eur("30"))
    session.commit()
    accepted, refused = [], []
    lock = threading.Lock()
    start = threading.Barrier(10)

    def spender(number):
        start.wait()
        for i in range(5):
            with Session(engine) as worker:
                try:
                    post_entry(worker, company_id, EntryType.ADJUSTMENT, -eur("1"))
                    worker.commit()
                    outcome = accepted
                except InsufficientBalance:
                    worker.rollback()
                    outcome = refused
            with lock:
                outcome.append((number, i))

    threads = [threading.Thread(target=spender, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(accepted) == 30 and len(refused) == 20
    assert balance_of(session, company_id) == 0


def reserved_of(session, company_id):
    return session.scalar(
        select(PrepaidBalance.reserved).where(PrepaidBalance.company_id == company_id)
        .execution_options(populate_existing=True)
    )


def test_a_posting_that_captures_a_hold_releases_it_in_the_same_update(session, company_id):
    post_entry(session, company_id, EntryType.TOPUP, eur("10"))
    change_reserved(session, company_id, eur("2.10"))
    session.commit()
    statements = []
    event.listen(session.get_bind(), "before_cursor_execute", remember := lambda *a: statements.append(a[2]))
    entry = post_entry(session, company_id, EntryType.CHARGE, -eur("0.427"), release=eur("2.10"))
    event.remove(session.get_bind(), "before_cursor_execute", remember)
    session.commit()
    assert (entry.balance_before, entry.balance_after) == (eur("10"), eur("9.573"))
    assert (balance_of(session, company_id), reserved_of(session, company_id)) == (eur("9.573"), 0)
    assert [statement.split(None, 1)[0] for statement in statements] == ["UPDATE", "INSERT"]


def test_a_debit_counts_the_hold_it_releases_as_available(session, company_id):
    post_entry(session, company_id, EntryType.TOPUP, eur("1"))
    change_reserved(session, company_id, eur("1"))
    session.commit()
    with pytest.raises(InsufficientBalance):
        post_entry(session, company_id, EntryType.CHARGE, -eur("0.5"))
    session.rollback()
    post_entry(session, company_id, EntryType.CHARGE, -eur("0.5"), release=eur("1"))
    session.commit()
    assert (balance_of(session, company_id), reserved_of(session, company_id)) == (eur("0.5"), 0)


def test_a_balance_row_the_session_has_loaded_shows_the_posting_at_once(session, company_id):
    account = session.get(PrepaidBalance, company_id)
    entry = post_entry(session, company_id, EntryType.TOPUP, eur("10"))
    post_entry(session, company_id, EntryType.CHARGE, -eur("1"), release=0)
    assert (account.balance, account.reserved) == (eur("9"), 0)
    assert session.get(BalanceTransaction, entry.id) is entry  # the ledger row is the session's, loaded
    session.commit()
    assert balance_of(session, company_id) == eur("9")
