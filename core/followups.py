"""Follow-up work that a service asks for, to be done once its transaction has committed.

A service that wants background work done (an invoice for a credited top-up, an email to send, an
automatic top-up to charge) does not enqueue it: it calls :func:`request_followup` with a kind and
the ids the work needs. The request is a row of the outbox table (``followup_outbox``) written in the
service's own transaction, so it commits or rolls back with the work that asked for it; the session
also notes it (``session.info``) for the dispatch right after the commit:

- when that transaction commits, the request becomes due (:func:`note_commit`, the session's
  ``after_commit`` event);
- when the transaction ends (``after_transaction_end``), :func:`take_due_followups` hands out the due
  requests, once, and drops those of a transaction that rolled back or was closed without a commit.

Whoever dispatches a due request hands it to the job queue and then deletes its row
(:func:`forget_followups`). If the queue is not reachable at that moment (Redis down) or the process
dies first, the row stays: :func:`overdue_followups` finds it after a short grace and the sweep hands
it over again. So no committed request is ever lost, and a request can be handed over twice (a late
dispatch racing the sweep): every job is safe to run twice.

A worker never starts on data that is not committed yet, and a rolled-back operation leaves no job
behind. Who runs the work is the application's business (``app.jobs`` maps each kind to its job,
installs the two events on its sessions and schedules the sweep): core knows nothing of queues,
workers or Flask.

The events of a SAVEPOINT (``begin_nested``) are ignored: only the outermost transaction's commit makes
requests due. A request made inside a savepoint that is rolled back is rolled back with it (its
outbox row is gone).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import delete, inspect, select
from sqlalchemy.orm import Session, SessionTransaction, scoped_session

from core.schema import FollowupOutbox

_REQUESTED = "followups.requested"
_DUE = "followups.due"


class Followup(enum.Enum):
    """The kinds of follow-up work; each names the ids its job takes."""

    ISSUE_TOPUP_INVOICE = "issue_topup_invoice"  # (topup_id): the invoice, then the receipt email
    ISSUE_CREDIT_NOTE = "issue_credit_note"  # (topup_refund_id)
    CANCEL_CREDIT_NOTE = "cancel_credit_note"  # (topup_refund_id): its refund failed after its credit note
    NOTIFY_DISPUTE = "notify_dispute"  # (dispute_id): tell the customer a payment was disputed
    NOTIFY_TOPUP_FAILED = "notify_topup_failed"  # (topup_id): a top-up failed after checkout (SEPA)
    SEND_EMAIL = "send_email"  # (sent_email_id)
    RUN_AUTO_TOPUP = "run_auto_topup"  # (auto_topup_attempt_id): charge the saved payment method
    AUTO_TOPUP_SETTLED = "auto_topup_settled"  # (topup_id): an automatic top-up credited or failed


class Due(NamedTuple):
    """A committed request: its outbox row, its kind and the ids its job takes."""

    outbox_id: int
    kind: Followup
    ids: tuple[int, ...]


def request_followup(session: Session, kind: Followup, *ids: int) -> None:
    """Have ``kind`` done with ``ids`` once the session's current transaction commits (see module doc).
    The same request twice in one transaction is done once."""
    session = session() if isinstance(session, scoped_session) else session  # Flask-SQLAlchemy's is scoped
    if not session.in_transaction():
        session.begin()  # the request belongs to a transaction, so closing the session drops it
    requested = session.info.setdefault(_REQUESTED, {})
    key = (Followup(kind), tuple(ids))
    if key not in requested:
        requested[key] = row = FollowupOutbox(kind=key[0].value, ids=list(ids))
        session.add(row)


def note_commit(session: Session) -> None:
    """For the ``after_commit`` event: the requests of a committed outermost transaction are due."""
    if session.in_nested_transaction():  # a savepoint was released, the transaction goes on
        return
    for (kind, ids), row in session.info.pop(_REQUESTED, {}).items():
        identity = inspect(row).identity  # read without SQL, which after_commit does not allow
        if identity is not None:  # None: its savepoint was rolled back, and the row with it
            session.info.setdefault(_DUE, []).append(Due(identity[0], kind, ids))


def take_due_followups(session: Session, transaction: SessionTransaction) -> list[Due]:
    """For the ``after_transaction_end`` event: the due requests, each once and in order; the requests
    of a transaction that ended without a commit are dropped."""
    if transaction.parent is not None:  # a savepoint ended, the transaction goes on
        return []
    session.info.pop(_REQUESTED, None)
    return session.info.pop(_DUE, [])


def forget_followups(session: Session, outbox_ids: Iterable[int]) -> None:
    """The requests were handed to the job queue: their outbox rows go (the caller commits)."""
    session.execute(delete(FollowupOutbox).where(FollowupOutbox.id.in_(list(outbox_ids))))


def overdue_followups(session: Session, requested_before: datetime, limit: int = 1000) -> list[Due]:
    """Committed requests still in the outbox that were requested before ``requested_before``: their
    dispatch failed or never happened. Oldest first."""
    rows = session.execute(select(FollowupOutbox.id, FollowupOutbox.kind, FollowupOutbox.ids)
                           .where(FollowupOutbox.created_at < requested_before)
                           .order_by(FollowupOutbox.id).limit(limit))
    return [Due(row_id, Followup(kind), tuple(ids)) for row_id, kind, ids in rows]
