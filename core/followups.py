"""Follow-up work that a service asks for, to be done once its transaction has committed.

A service that wants background work done (an invoice for a credited top-up, an email to send, an
automatic top-up to charge) does not enqueue it: it calls :func:`request_followup` with a kind and
the ids the work needs. The request is kept on the session (``session.info``) and belongs to the
transaction it was made in:

- when that transaction commits, the request becomes due (:func:`note_commit`, the session's
  ``after_commit`` event);
- when the transaction ends (``after_transaction_end``), :func:`take_due_followups` hands out the due
  requests, once, and drops those of a transaction that rolled back or was closed without a commit.

So a worker never starts on data that is not committed yet, and a rolled-back operation leaves no job
behind. Who runs the work is the application's business (``app.jobs`` maps each kind to its job and
installs the two events on its sessions): core knows nothing of queues, workers or Flask.

The events of a SAVEPOINT (``begin_nested``) are ignored: only the outermost transaction's commit makes
requests due, and a request made inside a savepoint that is rolled back is still done if the outer
transaction commits. No code uses savepoints today; one that does must request its follow-ups after
the savepoint.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

from sqlalchemy.orm import Session, SessionTransaction, scoped_session

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


class Requested(NamedTuple):
    kind: Followup
    ids: tuple[int, ...]


def request_followup(session: Session, kind: Followup, *ids: int) -> None:
    """Have ``kind`` done with ``ids`` once the session's current transaction commits (see module doc)."""
    session = session() if isinstance(session, scoped_session) else session  # Flask-SQLAlchemy's is scoped
    if not session.in_transaction():
        session.begin()  # the request belongs to a transaction, so closing the session drops it
    session.info.setdefault(_REQUESTED, []).append(Requested(Followup(kind), ids))


def note_commit(session: Session) -> None:
    """For the ``after_commit`` event: the requests of a committed outermost transaction are due."""
    if session.in_nested_transaction():  # a savepoint was released, the transaction goes on
        return
    session.info.setdefault(_DUE, []).extend(session.info.pop(_REQUESTED, []))


def take_due_followups(session: Session, transaction: SessionTransaction) -> list[Requested]:
    """For the ``after_transaction_end`` event: the due requests, each once and in order; the requests
    of a transaction that ended without a commit are dropped."""
    if transaction.parent is not None:  # a savepoint ended, the transaction goes on
        return []
    session.info.pop(_REQUESTED, None)
    return list(dict.fromkeys(session.info.pop(_DUE, [])))
