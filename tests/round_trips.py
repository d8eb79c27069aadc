"""Count what a piece of work sends to the database, as the driver sends it.

SQLAlchemy's cursor events see the statements; the transaction control around them is counted
where the driver sends it: psycopg opens a transaction with BEGIN before the first statement,
Python's sqlite3 with BEGIN IMMEDIATE before the first write only, and COMMIT or ROLLBACK (also
the pool's rollback when a connection is returned) only go out while a transaction is open. The
pool's pre-ping (``;`` in autocommit on psycopg, ``SELECT 1`` on sqlite3) bypasses the cursor
events: it is counted at every checkout.
"""

from __future__ import annotations

from collections import Counter
from contextlib import contextmanager

from sqlalchemy import event

WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


def _in_transaction(dbapi_connection) -> bool:
    if hasattr(dbapi_connection, "info") and hasattr(dbapi_connection.info, "transaction_status"):
        return dbapi_connection.info.transaction_status.name != "IDLE"  # psycopg
    return dbapi_connection.in_transaction  # sqlite3


def _opens_transaction(dbapi_connection, verb: str) -> bool:
    """Whether the driver sends BEGIN before a statement starting with ``verb``."""
    if hasattr(dbapi_connection, "info") and hasattr(dbapi_connection.info, "transaction_status"):
        return not dbapi_connection.autocommit and not _in_transaction(dbapi_connection)
    return verb in WRITES and not dbapi_connection.in_transaction


@contextmanager
def counting_round_trips(engine, *, pre_ping: bool):
    """Yields a Counter of what goes to the database meanwhile, by first word: SELECT, UPDATE,
    BEGIN, COMMIT, ..., and with ``pre_ping`` PING (the pool's ping at every checkout of a
    connection that has served before)."""
    sent: Counter[str] = Counter()

    def statement(connection, _cursor, sql, *_args) -> None:
        verb = sql.lstrip().split(None, 1)[0].upper()
        if _opens_transaction(connection.connection.dbapi_connection, verb):
            sent["BEGIN"] += 1
        sent[verb] += 1

    def ending(word):
        def end(connection) -> None:
            if _in_transaction(connection.connection.dbapi_connection):
                sent[word] += 1
        return end

    def checkout(_dbapi_connection, _record, _proxy) -> None:
        if pre_ping:
            sent["PING"] += 1

    def reset(dbapi_connection, _record, _reset_state) -> None:
        if _in_transaction(dbapi_connection):
            sent["ROLLBACK"] += 1

    listeners = [(engine, "before_cursor_execute", statement), (engine, "commit", ending("COMMIT")),
                 (engine, "rollback", ending("ROLLBACK")), (engine.pool, "checkout", checkout),
                 (engine.pool, "reset", reset)]
    for target, name, function in listeners:
        event.listen(target, name, function)
    try:
        yield sent
    finally:
        for target, name, function in listeners:
            event.remove(target, name, function)


@contextmanager
def statements_sent(engine):
    """Every statement the engine sends through SQLAlchemy while the block runs (not the pool's ping)."""
    statements: list[str] = []

    def recorded(_connection, _cursor, statement, *_args):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", recorded)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", recorded)
