"""The one module of job entry points. Each job takes ids, runs in a fresh app context with its own
session, commits its own unit of work (the services never commit), and is safe to run twice: the
invoice, statement and email records each exist once.

Core services never enqueue: they request follow-up work on their session
(:func:`core.followups.request_followup`), which writes it to the outbox table in their transaction.
:data:`FOLLOWUP_JOBS` maps each kind to its job function, by reference, and to its queue;
:func:`install_followup_dispatch` (called once by the app factory) hands the requests of a transaction
to the queue once it has committed and ended, then deletes their outbox rows, so a worker never reads
data that is not committed yet and a rolled-back operation leaves no job behind. When Redis cannot
take them, the rows stay and :func:`dispatch_overdue_followups` (scheduled every minute) hands them
over later: the caller's committed work stands and answers normally. Inline (``JOBS_INLINE``) the job
then runs in the committing process, in its own app context and session, after the committing session
has given back its connection; see :mod:`app.queue` for which errors it raises.
The periodic jobs are scheduled in :mod:`app.cron`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import NamedTuple, TypeVar

from flask import current_app
from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, SessionTransaction, aliased, scoped_session

from core.payments.auto_topup import (
    AutoTopupPolicy, charge_attempt, claim_attempt, companies_out_of_line, reconcile, topup_settled,
)
from core.payments.gateway import PaymentError
from core.payments.webhooks import replayable_event_ids
from core.calls.live import expire_reservation, stale_reservations
from core.clock import utcnow
from core.followups import (
    Due, Followup, forget_followups, note_commit, overdue_followups, take_due_followups,
)
from core.documents.invoices import Seller, prepare_pdf_rendering
from core.documents.invoices import issue_credit_note as issue_credit_note_for
from core.documents.invoices import issue_credit_note_cancellation
from core.documents.invoices import issue_topup_invoice as issue_invoice_for
from core.notifications.low_balance import claim_low_balance_warnings
from core.notifications.mail import EmailKind, MailSettings, deliver, queue_email, transport_from_config
from core.rendering import Renderer
from app.events import process_stored_event
from app.extensions import db
from core.money import UNITS_PER_CENT
from core.schema import Dispute, EmailStatus, Invoice, PrepaidBalance, SentEmail, Topup, TopupRefund
from core.notifications.mail import logger as mail_logger
from app.queue import BILLING, EMAILS, INVOICES, QueueUnavailable, enqueue
from core.documents.statements import companies_with_history, create_statement, previous_month
from core.documents.vat import VatPolicy

log = logging.getLogger(__name__)
UNSENT_EMAIL_GRACE = timedelta(minutes=5)
# Longer than a commit's own dispatch takes, so the sweep does not hand over what is being handed over.
FOLLOWUP_DISPATCH_GRACE = timedelta(minutes=1)
T = TypeVar("T")


@contextmanager
def job_session() -> Iterator[Session]:
    """A new app context, hence a new session: a job never shares its enqueuer's transaction."""
    with current_app.app_context():
        try:
            yield db.session
        finally:
            db.session.rollback()


def prepare_for_jobs(app) -> None:
    """What a process running jobs needs for any of them, done at once (see worker.AppWorker.bootstrap)."""
    app.extensions["renderer"].prepare()
    prepare_pdf_rendering()


def renderer() -> Renderer:
    """The app's renderer of documents and emails (made by the app factory)."""
    return current_app.extensions["renderer"]


def mail_settings() -> MailSettings:
    config = current_app.config
    return MailSettings(renderer(), config["PORTAL_BASE_URL"], config["MAIL_FROM"])


def _balance(session: Session, company_id: int) -> int:
    return session.get(PrepaidBalance, company_id, populate_existing=True).balance


def _issued_once(session: Session, issue: Callable[[], T]) -> T:
    """A document issued concurrently by a second run fails on its unique key: roll back (which gives
    its number back) and ask again, which returns the other run's document."""
    try:
        return issue()
    except IntegrityError:
        session.rollback()
        return issue()


def issue_topup_invoice(topup_id: int, send_receipt: bool = True) -> None:
    """The invoice of a credited top-up, and the receipt email with the PDF: one unit of work."""
    with job_session() as session:
        invoice = _issued_once(session, lambda: issue_invoice_for(
            session, topup_id, Seller.from_config(current_app.config), VatPolicy.from_config(current_app.config),
            renderer()))
        topup = session.get(Topup, topup_id)
        if send_receipt:
            queue_email(
                session, company_id=topup.company_id, kind=EmailKind.TOPUP_RECEIPT,
                dedupe_key=f"topup-receipt:{topup_id}", invoice_id=invoice.id,
                context={"amount": topup.amount, "bonus": topup.bonus_amount,
                         "balance": _balance(session, topup.company_id), "topup_id": topup.id,
                         "invoice_number": invoice.number},
            )
        session.commit()


def issue_credit_note(topup_refund_id: int) -> None:
    with job_session() as session:
        _issued_once(session, lambda: issue_credit_note_for(
            session, topup_refund_id, Seller.from_config(current_app.config),
            VatPolicy.from_config(current_app.config), renderer()))
        session.commit()


def cancel_credit_note(topup_refund_id: int) -> None:
    """The cancellation of the credit note of a refund that failed after it (core.payments.refunds)."""
    with job_session() as session:
        _issued_once(session, lambda: issue_credit_note_cancellation(
            session, topup_refund_id, Seller.from_config(current_app.config),
            VatPolicy.from_config(current_app.config), renderer()))
        session.commit()


def notify_dispute(dispute_id: int) -> None:
    """'A payment was disputed' to the company, once per dispute."""
    with job_session() as session:
        dispute = session.get(Dispute, dispute_id)
        queue_email(
            session, company_id=dispute.company_id, kind=EmailKind.PAYMENT_DISPUTED, dedupe_key=f"dispute:{dispute_id}",
            context={"amount": dispute.disputed_cents * UNITS_PER_CENT, "debited": dispute.amount + dispute.bonus_reversed,
                     "balance": _balance(session, dispute.company_id), "topup_id": dispute.topup_id},
        )
        session.commit()


def notify_topup_failed(topup_id: int) -> None:
    """'Payment failed – action required' for a top-up that failed after the customer left checkout."""
    with job_session() as session:
        topup = session.get(Topup, topup_id)
        queue_email(
            session, company_id=topup.company_id, kind=EmailKind.PAYMENT_FAILED, dedupe_key=f"topup-failed:{topup_id}",
            context={"amount": topup.amount, "failure_code": topup.failure_code, "decline_code": topup.decline_code,
                     "balance": _balance(session, topup.company_id)},
        )
        session.commit()


def send_email(email_id: int) -> None:
    """Deliver one recorded message: the claim, the send and the outcome are one unit of work. On a
    failure the ``failed`` record (the counted attempt and the reason) is committed, then the error
    re-raised so the queue retries."""
    with job_session() as session:
        try:
            deliver(session, email_id, transport_from_config(current_app.config), mail_settings())
            session.commit()
        except Exception:
            _commit_failure_record(session, email_id)
            raise


def _commit_failure_record(session: Session, email_id: int) -> None:
    """If even the failure cannot be written (the database itself failed), the row stays as it was
    and the caller re-raises the original error."""
    try:
        session.commit()
    except Exception:
        session.rollback()
        mail_logger.exception("Could not record the failure of email %s", email_id)


def check_low_balances(company_id: int | None = None) -> int:
    """Warn every company below its threshold, once per interval. Returns how many were warned."""
    now = utcnow()
    interval = timedelta(hours=current_app.config["LOW_BALANCE_WARNING_INTERVAL_HOURS"])
    with job_session() as session:
        claimed = claim_low_balance_warnings(session, now, interval, company_id)
        for low in claimed:
            queue_email(session, company_id=low.company_id, kind=EmailKind.LOW_BALANCE,
                         dedupe_key=f"low-balance:{low.company_id}:{now.isoformat()}",
                         context={"balance": low.balance, "threshold": low.threshold})
        session.commit()  # the claims with their warnings
    return len(claimed)


def generate_monthly_statements(month_iso: str | None = None) -> int:
    """Statements for every company with history, for the given month (default: the last one): one job
    per company, so workers share a month-end's rendering and one failure keeps the others' statements."""
    month = date.fromisoformat(month_iso) if month_iso else previous_month(utcnow().date())
    with job_session() as session:
        companies = companies_with_history(session, month)
    for company_id in companies:
        enqueue(INVOICES, issue_statement, company_id, month.isoformat())
    return len(companies)


def issue_statement(company_id: int, month_iso: str) -> None:
    """One company's statement for one month, made once however often this runs."""
    month, seller = date.fromisoformat(month_iso), Seller.from_config(current_app.config)
    with job_session() as session:
        _issued_once(session, lambda: create_statement(session, company_id, month, seller, renderer()))
        session.commit()


def retry_unsent_emails() -> int:
    """Queue again every message not sent a while after it was recorded (e.g. SMTP was down)."""
    cutoff = utcnow() - UNSENT_EMAIL_GRACE
    with job_session() as session:
        ids = session.scalars(select(SentEmail.id).where(
            SentEmail.status != EmailStatus.SENT.value, SentEmail.created_at <= cutoff)).all()
    for email_id in ids:
        enqueue(EMAILS, send_email, email_id)
    return len(ids)


def issue_missing_documents(send_receipts: bool = True) -> int:
    """Invoices, credit notes and their cancellations whose job was lost (e.g. Redis flushed): issue
    them now. A refund first reported failed debited nothing and has no documents."""
    with job_session() as session:
        invoiced = select(Invoice.topup_id).where(Invoice.topup_id.is_not(None))
        credited = select(Invoice.topup_refund_id).where(Invoice.topup_refund_id.is_not(None))
        cancellation = aliased(Invoice)
        cancelled = select(Invoice.topup_refund_id).join(cancellation, cancellation.cancels_invoice_id == Invoice.id)
        topups = session.scalars(select(Topup.id).where(Topup.status == "credited", Topup.id.not_in(invoiced))).all()
        debited = select(TopupRefund.id).where(TopupRefund.refunded_cents > 0)
        refunds = session.scalars(debited.where(TopupRefund.id.not_in(credited))).all()
        failed = session.scalars(debited.where(TopupRefund.given_back_at.is_not(None),
                                               TopupRefund.id.not_in(cancelled))).all()
    for topup_id in topups:
        issue_topup_invoice(topup_id, send_receipts)
    for refund_id in refunds:
        issue_credit_note(refund_id)
    for refund_id in failed:
        cancel_credit_note(refund_id)
    return len(topups) + len(refunds) + len(failed)


def expire_stale_reservations() -> int:
    """Let go of funds held for calls that never ended (after RESERVATION_EXPIRY_HOURS)."""
    older_than = timedelta(hours=current_app.config["RESERVATION_EXPIRY_HOURS"])
    expired = 0
    with job_session() as session:
        for reservation_id in stale_reservations(session, utcnow(), older_than):
            expired += expire_reservation(session, reservation_id)
            session.commit()  # one hold at a time: no company's balance row stays locked for the whole run
    return expired


def process_stuck_events() -> int:
    """Process the Stripe events left "received" when their process died between the steps (after
    core.payments.webhooks.STUCK_AFTER); each commits its own steps. Failed ones are left to staff."""
    gateway = current_app.extensions.get("stripe_gateway")
    with job_session() as session:
        if gateway is None:
            return 0
        return len([process_stored_event(session, gateway, row_id)
                    for row_id in replayable_event_ids(session, failed=False)])


def run_auto_topup(attempt_id: int) -> None:
    """Charge the saved payment method for one automatic top-up attempt, in the two named steps of
    core.payments.auto_topup, each committed: the claim (the top-up on record before Stripe is asked),
    then the charge and its outcome. An unknown outcome is committed as a note on the attempt, then
    re-raised so the queue retries with the same idempotency key."""
    policy = AutoTopupPolicy.from_config(current_app.config)
    with job_session() as session:
        charge = claim_attempt(session, attempt_id, vat=VatPolicy.from_config(current_app.config), policy=policy)
        session.commit()  # step 1
        if charge is None:
            return
        try:
            charge_attempt(session, current_app.extensions["stripe_gateway"], charge, policy=policy)
        except PaymentError:
            session.commit()  # the note of the unknown outcome
            raise
        session.commit()  # step 2


def auto_topup_settled(topup_id: int) -> None:
    """An automatic top-up was credited or failed (e.g. SEPA settled): its attempt follows."""
    with job_session() as session:
        topup_settled(session, topup_id, policy=AutoTopupPolicy.from_config(current_app.config))
        session.commit()


def settle_auto_topups() -> int:
    """The periodic catch-up: attempts whose top-up moved on while their follow-up job was lost
    follow it now (one unit of work per company). Returns how many companies had some."""
    policy = AutoTopupPolicy.from_config(current_app.config)
    with job_session() as session:
        companies = companies_out_of_line(session)
        for company_id in companies:
            reconcile(session, company_id, policy=policy)
            session.commit()
    return len(companies)


# -- follow-ups: enqueued after the commit ---------------------------------------------------------------


class Job(NamedTuple):
    function: Callable[..., object]
    queue: str


FOLLOWUP_JOBS: dict[Followup, Job] = {
    Followup.ISSUE_TOPUP_INVOICE: Job(issue_topup_invoice, INVOICES),
    Followup.ISSUE_CREDIT_NOTE: Job(issue_credit_note, INVOICES),
    Followup.NOTIFY_TOPUP_FAILED: Job(notify_topup_failed, EMAILS),
    Followup.CANCEL_CREDIT_NOTE: Job(cancel_credit_note, INVOICES),
    Followup.NOTIFY_DISPUTE: Job(notify_dispute, EMAILS),
    Followup.SEND_EMAIL: Job(send_email, EMAILS),
    Followup.RUN_AUTO_TOPUP: Job(run_auto_topup, BILLING),
    Followup.AUTO_TOPUP_SETTLED: Job(auto_topup_settled, BILLING),
}


def install_followup_dispatch(sessions: scoped_session) -> None:
    """Enqueue the follow-ups of every committed transaction of ``sessions`` (idempotent: SQLAlchemy
    attaches the listeners to the session class, shared by every app built in this process)."""
    if not event.contains(sessions, "after_transaction_end", _enqueue_due_followups):
        event.listen(sessions, "after_commit", note_commit)
        event.listen(sessions, "after_transaction_end", _enqueue_due_followups)


def _enqueue_due_followups(session: Session, transaction: SessionTransaction) -> None:
    due = take_due_followups(session, transaction)
    if due:
        dispatch_followups(due)


def dispatch_followups(due: list[Due]) -> None:
    """Hand each request to its queue, then delete its outbox row. The caller's transaction has
    committed, so no error of the queue reaches it: when Redis refuses, the rest stay in the outbox for
    the sweep. Inline, a job's programming error is still raised (see app.queue)."""
    handed: list[int] = []
    try:
        for request in due:
            job = FOLLOWUP_JOBS[request.kind]
            enqueue(job.queue, job.function, *request.ids)
            handed.append(request.outbox_id)
    except QueueUnavailable as error:
        log.warning("Redis is not reachable (%s): %d follow-up(s) stay in the outbox, the sweep enqueues "
                    "them later", error, len(due) - len(handed))
    finally:
        if handed:
            _forget_handed(handed)


def _forget_handed(outbox_ids: list[int]) -> None:
    """If the database refuses now, the rows stay and the sweep hands them over a second time, which the
    jobs allow (each is safe to run twice)."""
    try:
        with job_session() as session:
            forget_followups(session, outbox_ids)
            session.commit()
    except SQLAlchemyError:
        log.warning("Could not delete %d dispatched follow-up(s) from the outbox", len(outbox_ids),
                    exc_info=True)


def dispatch_overdue_followups() -> int:
    """The outbox's sweep: follow-ups committed more than a grace ago and still not handed to the queue
    (Redis was down, the process died before it dispatched them) are handed over now. Returns how many."""
    with job_session() as session:
        overdue = overdue_followups(session, utcnow() - FOLLOWUP_DISPATCH_GRACE)
    if overdue:
        dispatch_followups(overdue)
    return len(overdue)
