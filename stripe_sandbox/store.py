"""The sandbox's state in one SQLite database: Stripe's objects, what Stripe keeps to itself,
idempotency keys, webhook deliveries, SEPA settlements. Every process opening the same file sees
the same Stripe; the sandbox runs each operation as one `BEGIN IMMEDIATE` transaction.

Within a transaction, objects read are kept in an identity map, so the sandbox's handlers change
them in place as before; `commit()` writes back each one whose JSON changed.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import string
from pathlib import Path
from typing import Any

_ALPHABET = string.ascii_letters + string.digits
BUSY_TIMEOUT_SECONDS = 30.0
IN_MEMORY = ":memory:"

SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- creation order: lists are newest first
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    open_until REAL,                        -- an open Checkout Session's expires_at, else NULL
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS objects_by_type ON objects (type, seq);
CREATE INDEX IF NOT EXISTS objects_open_until ON objects (open_until) WHERE open_until IS NOT NULL;
CREATE TABLE IF NOT EXISTS private (id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, status INTEGER NOT NULL, body TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,                   -- pending | delivered | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    claimed_by TEXT,                        -- the sandbox instance that is delivering it
    claimed_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries (status, claimed_at);
CREATE TABLE IF NOT EXISTS settlements (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    payment_intent TEXT NOT NULL UNIQUE, checkout_session TEXT, due REAL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def random_token(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_id(prefix: str, length: int = 24) -> str:
    """An id like Stripe's: `pi_3PgafyB7WZ01zgkW...` — random, so unique across processes."""
    return f"{prefix}_{random_token(length)}"


def new_checkout_session_id() -> str:
    return "cs_test_a1" + random_token(56)


def _open_until(obj: dict[str, Any]) -> float | None:
    if obj.get("object") == "checkout.session" and obj.get("status") == "open":
        return obj.get("expires_at")
    return None


class Store:
    """One SQLite database (`path`, or a private in-memory one when None), used by one sandbox.

    The sandbox holds its thread lock around every use; SQLite's own locking orders processes.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = str(path) if path else IN_MEMORY
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._conn: sqlite3.Connection | None = None
        self._inherited: list[sqlite3.Connection] = []
        self._pid: int | None = None
        self._forget()
        self._connection()

    # ---- connection and transactions --------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        """The connection, opened again in a forked child (a connection must not cross a fork)."""
        if self._conn is None or (self.path != IN_MEMORY and self._pid != os.getpid()):
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None,
                                   check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
            if self.path != IN_MEMORY:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")  # WAL: durable enough for a sandbox
            conn.executescript(f"BEGIN IMMEDIATE;\n{SCHEMA}COMMIT;")
            conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('page_secret', ?)",
                         (json.dumps(random_token(32)),))
            if self._conn is not None:  # the parent's, inherited: closing it here could disturb its locks
                self._inherited.append(self._conn)
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def begin(self) -> None:
        """Take SQLite's write lock at once, so two processes' operations never interleave."""
        self._forget()
        self._connection().execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        try:
            self._flush()
            self._connection().execute("COMMIT")
        finally:
            self._forget()

    def rollback(self) -> None:
        self._forget()
        conn = self._connection()
        if conn.in_transaction:
            conn.execute("ROLLBACK")

    def _forget(self) -> None:
        self._objects: dict[str, dict[str, Any]] = {}
        self._objects_written: dict[str, str] = {}
        self._private: dict[str, dict[str, Any]] = {}
        self._private_written: dict[str, str | None] = {}
        self._meta: dict[str, Any] | None = None
        self._meta_written: dict[str, str] = {}

    def _flush(self) -> None:
        for object_id, obj in self._objects.items():
            text = json.dumps(obj)
            if text != self._objects_written[object_id]:
                self._write_object(obj, text)
        for object_id, data in self._private.items():
            text = json.dumps(data)
            if text != self._private_written[object_id]:
                self._sql("INSERT INTO private (id, data) VALUES (?, ?) "
                          "ON CONFLICT (id) DO UPDATE SET data = excluded.data", (object_id, text))
        for key, value in (self._meta or {}).items():
            text = json.dumps(value)
            if text != self._meta_written.get(key):
                self._sql("INSERT INTO meta (key, value) VALUES (?, ?) "
                          "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, text))

    def _sql(self, statement: str, parameters: tuple = ()) -> sqlite3.Cursor:
        return self._connection().execute(statement, parameters)

    # ---- objects ------------------------------------------------------------------------------

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        text = json.dumps(obj)
        self._write_object(obj, text)
        self._objects[obj["id"]] = obj
        self._objects_written[obj["id"]] = text
        return obj

    def _write_object(self, obj: dict[str, Any], text: str) -> None:
        self._sql("INSERT INTO objects (id, type, open_until, data) VALUES (?, ?, ?, ?) "
                  "ON CONFLICT (id) DO UPDATE SET open_until = excluded.open_until, data = excluded.data",
                  (obj["id"], obj["object"], _open_until(obj), text))

    def _remember(self, object_id: str, text: str) -> dict[str, Any]:
        if object_id not in self._objects:
            self._objects[object_id] = json.loads(text)
            self._objects_written[object_id] = text
        return self._objects[object_id]

    def get(self, object_id: str, object_type: str | None = None) -> dict[str, Any] | None:
        obj = self._objects.get(object_id)
        if obj is None:
            row = self._sql("SELECT data FROM objects WHERE id = ?", (object_id,)).fetchone()
            obj = self._remember(object_id, row[0]) if row else None
        if obj is None or (object_type and obj.get("object") != object_type):
            return None
        return obj

    def of_type(self, object_type: str) -> list[dict[str, Any]]:
        """Objects of one type, newest first (as Stripe lists them)."""
        rows = self._sql("SELECT id, data FROM objects WHERE type = ? ORDER BY seq DESC", (object_type,))
        return [self._remember(object_id, text) for object_id, text in rows.fetchall()]

    def all_objects(self) -> list[dict[str, Any]]:
        """Every object, oldest first."""
        rows = self._sql("SELECT id, data FROM objects ORDER BY seq").fetchall()
        return [self._remember(object_id, text) for object_id, text in rows]

    def sessions_expired_by(self, now: float) -> list[dict[str, Any]]:
        rows = self._sql("SELECT id, data FROM objects WHERE open_until <= ? ORDER BY seq", (now,))
        return [self._remember(object_id, text) for object_id, text in rows.fetchall()]

    def next_due(self) -> float | None:
        """When the next SEPA settlement or Checkout Session expiry is due, if any is."""
        row = self._sql("SELECT MIN(due) FROM (SELECT MIN(due) AS due FROM settlements "
                        "UNION ALL SELECT MIN(open_until) FROM objects)").fetchone()
        return row[0]

    def private_of(self, object_id: str) -> dict[str, Any]:
        if object_id not in self._private:
            row = self._sql("SELECT data FROM private WHERE id = ?", (object_id,)).fetchone()
            self._private[object_id] = json.loads(row[0]) if row else {}
            self._private_written[object_id] = row[0] if row else None
        return self._private[object_id]

    @property
    def meta(self) -> dict[str, Any]:
        """Small settings kept by key (the page secret, card fingerprints)."""
        if self._meta is None:
            rows = self._sql("SELECT key, value FROM meta").fetchall()
            self._meta = {key: json.loads(value) for key, value in rows}
            self._meta_written = dict(rows)
        return self._meta

    # ---- idempotency keys ------------------------------------------------------------------------

    def saved_response(self, key: str, oldest: int) -> dict[str, Any] | None:
        """The response saved under `key`, forgetting those created before `oldest`."""
        self._sql("DELETE FROM idempotency WHERE created < ?", (oldest,))
        row = self._sql("SELECT fingerprint, status, body FROM idempotency WHERE key = ?", (key,)).fetchone()
        return {"fingerprint": row[0], "status": row[1], "body": row[2]} if row else None

    def save_response(self, key: str, fingerprint: str, status: int, body: str, created: int) -> None:
        self._sql("INSERT INTO idempotency (key, fingerprint, status, body, created) VALUES (?, ?, ?, ?, ?)",
                  (key, fingerprint, status, body, created))

    # ---- webhook deliveries ------------------------------------------------------------------------

    def add_delivery(self, event_id: str, claimed_by: str | None, claimed_at: float) -> None:
        self._sql("INSERT INTO deliveries (event_id, status, claimed_by, claimed_at) VALUES (?, 'pending', ?, ?)",
                  (event_id, claimed_by, claimed_at))

    def record_attempt(self, event_id: str, delivered: bool, error: str | None) -> None:
        self._sql("UPDATE deliveries SET status = ?, last_error = ?, attempts = attempts + 1 WHERE event_id = ?",
                  ("delivered" if delivered else "failed", error, event_id))

    def delivered_ids(self) -> set[str]:
        rows = self._sql("SELECT event_id FROM deliveries WHERE status = 'delivered'").fetchall()
        return {event_id for (event_id,) in rows}

    def claim_stale_deliveries(self, claimant: str, claimed_before: float, now: float) -> list[str]:
        """Pending deliveries another instance claimed before `claimed_before` (it went away before
        delivering them): claimed for `claimant` now, oldest first."""
        rows = self._sql("SELECT event_id FROM deliveries WHERE status = 'pending' AND claimed_at < ? "
                         "AND (claimed_by IS NULL OR claimed_by != ?) ORDER BY seq",
                         (claimed_before, claimant)).fetchall()
        event_ids = [event_id for (event_id,) in rows]
        for event_id in event_ids:
            self._sql("UPDATE deliveries SET claimed_by = ?, claimed_at = ? WHERE event_id = ?",
                      (claimant, now, event_id))
        return event_ids

    # ---- SEPA settlements --------------------------------------------------------------------------

    def add_settlement(self, payment_intent: str, checkout_session: str | None, due: float | None) -> None:
        self._sql("INSERT INTO settlements (payment_intent, checkout_session, due) VALUES (?, ?, ?)",
                  (payment_intent, checkout_session, due))

    def settlements(self, due_by: float | None = None) -> list[dict[str, Any]]:
        """Waiting settlements, oldest first; with `due_by`, only those due by then."""
        query = "SELECT payment_intent, checkout_session, due FROM settlements"
        rows = (self._sql(query + " WHERE due <= ? ORDER BY seq", (due_by,)) if due_by is not None
                else self._sql(query + " ORDER BY seq")).fetchall()
        return [{"payment_intent": pi, "checkout_session": cs, "due": due} for pi, cs, due in rows]

    def remove_settlement(self, payment_intent: str) -> None:
        self._sql("DELETE FROM settlements WHERE payment_intent = ?", (payment_intent,))
