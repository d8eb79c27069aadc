"""Reading a company's ledger: filters and keyset pagination (never OFFSET), newest first."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Row, Select, select, tuple_
from sqlalchemy.orm import Session

from core.models import BalanceTransaction, EntryType


class InvalidCursor(ValueError):
    pass


@dataclass(frozen=True)
class TransactionFilter:
    entry_type: EntryType | None = None
    start: datetime | None = None  # inclusive, UTC
    end: datetime | None = None  # exclusive, UTC


@dataclass(frozen=True)
class Cursor:
    """A position in the newest-first order: (created_at, id) of a row."""

    created_at: datetime
    id: int

    @classmethod
    def of(cls, entry: Row) -> Cursor:
        return cls(entry.created_at, entry.id)

    def encode(self) -> str:
        raw = f"{self.created_at.isoformat()}|{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            stamp, _, row_id = raw.partition("|")
            cursor = cls(datetime.fromisoformat(stamp), int(row_id))
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise InvalidCursor(token) from None
        if cursor.created_at.tzinfo is not None or cursor.id < 1:
            raise InvalidCursor(token)
        return cursor


@dataclass(frozen=True)
class TransactionPage:
    entries: list[Row]  # the columns of BalanceTransaction
    older: Cursor | None  # pass as ``after`` to get the next (older) page
    newer: Cursor | None  # pass as ``before`` to get the previous (newer) page


def _filtered(company_id: int, filters: TransactionFilter) -> Select:
    query = select(*BalanceTransaction.__table__.columns).where(BalanceTransaction.company_id == company_id)
    if filters.entry_type is not None:
        query = query.where(BalanceTransaction.type == filters.entry_type.value)
    if filters.start is not None:
        query = query.where(BalanceTransaction.created_at >= filters.start)
    if filters.end is not None:
        query = query.where(BalanceTransaction.created_at < filters.end)
    return query


def keyset_rows(session: Session, query: Select, position: tuple, *, after: Cursor | None,
                before: Cursor | None, limit: int) -> tuple[list, bool, bool]:
    """Rows of ``query`` newest first by the (time, id) columns ``position``: the first ``limit``,
    those older than ``after`` or newer than ``before``. Returns (rows, has_older, has_newer).

    ``query`` selects columns, not an entity: the pages only read, and plain rows come several
    times cheaper than ORM objects."""
    moment, row_id = position
    key = tuple_(moment, row_id)
    if before is not None:
        rows = session.execute(query.where(key > (before.created_at, before.id))
                               .order_by(moment.asc(), row_id.asc()).limit(limit + 1)).all()
        has_newer, rows = len(rows) > limit, rows[:limit]
        rows.reverse()
        return rows, bool(rows), has_newer
    if after is not None:
        query = query.where(key < (after.created_at, after.id))
    rows = session.execute(query.order_by(moment.desc(), row_id.desc()).limit(limit + 1)).all()
    return rows[:limit], len(rows) > limit, after is not None and bool(rows)


def transactions_page(
    session: Session,
    company_id: int,
    filters: TransactionFilter,
    *,
    after: Cursor | None = None,
    before: Cursor | None = None,
    limit: int = 50,
) -> TransactionPage:
    """One page: the newest rows, or those older than ``after``, or newer than ``before``."""
    rows, has_older, has_newer = keyset_rows(session, _filtered(company_id, filters),
                                             (BalanceTransaction.created_at, BalanceTransaction.id),
                                             after=after, before=before, limit=limit)
    return TransactionPage(
        entries=rows,
        older=Cursor.of(rows[-1]) if has_older else None,
        newer=Cursor.of(rows[0]) if has_newer else None,
    )


def iter_transactions(
    session: Session, company_id: int, filters: TransactionFilter, batch_size: int = 1000
) -> Iterator[Row]:
    """Every matching row, newest first, fetched batch by batch."""
    cursor = None
    while True:
        page = transactions_page(session, company_id, filters, after=cursor, limit=batch_size)
        yield from page.entries
        if page.older is None:
            return
        cursor = page.older
