"""Reading a company's ledger: filters and keyset pagination (never OFFSET), newest first."""

from __future__ import annotations

import base64
import binascii
import enum
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache, partial

from sqlalchemy import Row, Select, bindparam, select, tuple_
from sqlalchemy.orm import Session

from core.parsing import MAX_BIG_ID, parse_id
from core.schema import BalanceTransaction, EntryType


class InvalidCursor(ValueError):
    pass


@dataclass(frozen=True)
class TransactionFilter:
    entry_type: EntryType | None = None
    start: datetime | None = None  # inclusive, UTC
    end: datetime | None = None  # exclusive, UTC


MAX_TOKEN_LENGTH = 100  # an encoded cursor has about 40 characters


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
    def from_query(cls, arguments: Mapping[str, str], name: str) -> Cursor | None:
        """The cursor a page link carries as ``name`` (``after`` or ``before``), if it carries one."""
        token = arguments.get(name)
        return cls.decode(token) if token else None

    @classmethod
    def decode(cls, token: str) -> Cursor:
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidCursor(token[:MAX_TOKEN_LENGTH])
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            stamp, _, row_id = raw.partition("|")
            cursor = cls(datetime.fromisoformat(stamp), parse_id(row_id, MAX_BIG_ID))
        except (binascii.Error, UnicodeDecodeError, ValueError):  # InvalidInput is a ValueError
            raise InvalidCursor(token) from None
        if cursor.created_at.tzinfo is not None:
            raise InvalidCursor(token)
        return cursor


@dataclass(frozen=True)
class TransactionPage:
    entries: list[Row]  # the shown columns of BalanceTransaction (the export's: with the reference)
    older: Cursor | None  # pass as ``after`` to get the next (older) page
    newer: Cursor | None  # pass as ``before`` to get the previous (newer) page


class Direction(enum.Enum):
    NEWEST = "newest"  # the first page
    OLDER = "older"  # the rows after a cursor
    NEWER = "newer"  # the rows before a cursor


def keyset_statement(query: Select, position: tuple, direction: Direction) -> Select:
    """``query`` ordered and limited to one page in ``direction``, newest first by the (time, id)
    columns ``position``, except NEWER, which runs oldest first from the cursor. Parameters:
    :limit, and for OLDER and NEWER the cursor's :cursor_time and :cursor_id."""
    moment, row_id = position
    key = tuple_(moment, row_id)
    cursor = tuple_(bindparam("cursor_time", type_=moment.type), bindparam("cursor_id", type_=row_id.type))
    if direction is Direction.NEWER:
        return query.where(key > cursor).order_by(moment.asc(), row_id.asc()).limit(bindparam("limit"))
    if direction is Direction.OLDER:
        query = query.where(key < cursor)
    return query.order_by(moment.desc(), row_id.desc()).limit(bindparam("limit"))


def keyset_rows(session: Session, statement: Callable[[Direction], Select], parameters: dict, *,
                after: Cursor | None, before: Cursor | None, limit: int) -> tuple[list[Row], bool, bool]:
    """The first ``limit`` rows, those older than ``after`` or newer than ``before``, newest first,
    of ``statement(direction)`` (built by :func:`keyset_statement`, once per shape: a statement
    built for every request costs several times its execution). Returns (rows, has_older, has_newer).

    Plain rows (the selected columns), not ORM objects: the pages only read."""
    direction = Direction.NEWER if before is not None else Direction.OLDER if after is not None else Direction.NEWEST
    cursor = before or after
    if cursor is not None:
        parameters = {**parameters, "cursor_time": cursor.created_at, "cursor_id": cursor.id}
    rows = session.execute(statement(direction), {**parameters, "limit": limit + 1}).all()
    if direction is Direction.NEWER:
        has_newer, rows = len(rows) > limit, rows[:limit]
        rows.reverse()
        return rows, bool(rows), has_newer
    return rows[:limit], len(rows) > limit, direction is Direction.OLDER and bool(rows)


_LEDGER = BalanceTransaction.__table__.c
# What the ledger pages show (every column read costs, on each of a page's rows), and what the export adds.
_SHOWN = (_LEDGER.id, _LEDGER.created_at, _LEDGER.type, _LEDGER.description, _LEDGER.amount, _LEDGER.balance_after)
_EXPORTED = (*_SHOWN, _LEDGER.reference_type, _LEDGER.reference_id)


@cache
def _ledger_statement(direction: Direction, columns: tuple, by_type: bool, from_start: bool, to_end: bool) -> Select:
    query = select(*columns).where(_LEDGER.company_id == bindparam("company_id"))
    if by_type:
        query = query.where(_LEDGER.type == bindparam("entry_type"))
    if from_start:
        query = query.where(_LEDGER.created_at >= bindparam("start"))
    if to_end:
        query = query.where(_LEDGER.created_at < bindparam("end"))
    return keyset_statement(query, (_LEDGER.created_at, _LEDGER.id), direction)


def transactions_page(
    session: Session,
    company_id: int,
    filters: TransactionFilter,
    *,
    after: Cursor | None = None,
    before: Cursor | None = None,
    limit: int = 50,
    columns: tuple = _SHOWN,
) -> TransactionPage:
    """One page: the newest rows, or those older than ``after``, or newer than ``before``."""
    statement = partial(_ledger_statement, columns=columns, by_type=filters.entry_type is not None,
                        from_start=filters.start is not None, to_end=filters.end is not None)
    parameters = {"company_id": company_id, "start": filters.start, "end": filters.end,
                  "entry_type": filters.entry_type.value if filters.entry_type else None}
    rows, has_older, has_newer = keyset_rows(session, statement, parameters, after=after, before=before, limit=limit)
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
        page = transactions_page(session, company_id, filters, after=cursor, limit=batch_size, columns=_EXPORTED)
        yield from page.entries
        if page.older is None:
            return
        cursor = page.older
