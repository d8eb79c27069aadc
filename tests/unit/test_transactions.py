from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from core.accounts.users import create_company
from core.ledger.postings import post_entry
from core.schema import BalanceTransaction, EntryType
from core.money import eur
from core.ledger.history import Cursor, InvalidCursor, TransactionFilter, iter_transactions, transactions_page

START = datetime(2026, 9, 1, 8, 0)


@pytest.fixture
def ledger(session):
    """Two companies; the first has 23 rows, one every hour, alternating top-ups and charges."""
    first = create_company(session, "Pages GmbH")
    other = create_company(session, "Other GmbH")
    session.flush()
    post_entry(session, other.id, EntryType.TOPUP, eur("1"), created_at=START)
    for hour in range(23):
        entry_type, amount = (EntryType.TOPUP, eur("10")) if hour % 2 == 0 else (EntryType.CHARGE, -eur("0.5"))
        post_entry(session, first.id, entry_type, amount, created_at=START + timedelta(hours=hour))
    session.commit()
    return first.id


def collect_pages(session, company_id, filters, limit):
    pages, cursor = [], None
    while True:
        page = transactions_page(session, company_id, filters, after=cursor, limit=limit)
        pages.append(page)
        if page.older is None:
            return pages
        cursor = page.older


def test_pages_walk_the_whole_ledger_newest_first_without_gaps_or_repeats(session, ledger):
    pages = collect_pages(session, ledger, TransactionFilter(), limit=5)
    stamps = [entry.created_at for page in pages for entry in page.entries]
    assert [len(page.entries) for page in pages] == [5, 5, 5, 5, 3]
    assert stamps == sorted(stamps, reverse=True) and len(set(stamps)) == 23


def test_the_newer_cursor_leads_back_to_the_previous_page(session, ledger):
    first = transactions_page(session, ledger, TransactionFilter(), limit=5)
    second = transactions_page(session, ledger, TransactionFilter(), after=first.older, limit=5)
    back = transactions_page(session, ledger, TransactionFilter(), before=second.newer, limit=5)
    assert first.newer is None and second.newer is not None
    assert [e.id for e in back.entries] == [e.id for e in first.entries]
    assert back.newer is None


def test_filters_by_type_and_date_range(session, ledger):
    charges = TransactionFilter(entry_type=EntryType.CHARGE)
    assert {e.type for e in transactions_page(session, ledger, charges, limit=50).entries} == {"charge"}
    window = TransactionFilter(start=START + timedelta(hours=3), end=START + timedelta(hours=6))
    hours = [e.created_at.hour for e in transactions_page(session, ledger, window, limit=50).entries]
    assert hours == [13, 12, 11]


def test_a_company_sees_only_its_own_rows(session, ledger):
    entries = list(iter_transactions(session, ledger, TransactionFilter(), batch_size=4))
    own = set(session.scalars(select(BalanceTransaction.id).where(BalanceTransaction.company_id == ledger)))
    assert len(entries) == 23 and {e.id for e in entries} == own


def test_cursors_round_trip_and_garbage_is_rejected():
    cursor = Cursor(datetime(2026, 11, 3, 10, 5, 7, 123456), 42)
    assert Cursor.decode(cursor.encode()) == cursor
    for garbage in ["", "zzz", "bm90LWEtY3Vyc29y", Cursor(datetime(2026, 1, 1), 0).encode(), cursor.encode() + "A" * 100]:
        with pytest.raises(InvalidCursor):
            Cursor.decode(garbage)
    assert Cursor.from_query({"after": cursor.encode()}, "after") == cursor
    assert Cursor.from_query({"after": ""}, "after") is None and Cursor.from_query({}, "before") is None
