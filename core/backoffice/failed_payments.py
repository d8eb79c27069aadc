"""Failed top-ups (checkout and automatic) for staff, and the manual retry: a new Checkout link for
the same amount, emailed to the company, recorded against the failed top-up and audited.

A retry asks Stripe between two writes, so it comes in three named steps, each one unit of work that
the caller commits: :func:`open_retry_topup` (the new pending top-up), :func:`create_retry_checkout`
(its Checkout Session) and :func:`record_retry` (the audit record and the email). Nothing here commits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.accounts.audit import Actor, record_action
from core.notifications.mail import EmailKind, queue_email
from core.schema import AuditRecord, Company, PrepaidBalance, Topup, TopupStatus
from core.payments.gateway import StripeGateway
from core.payments.topups import (
    CheckoutPage, ReturnUrls, TopupLimits, TopupNotFound, create_checkout, open_checkout_topup,
)
from core.documents.vat import VatPolicy

RETRY_ACTION = "topup.retry_link"


class NotFailed(Exception):
    """Only a failed top-up can be retried."""


@dataclass(frozen=True)
class FailedPayment:
    topup: Topup
    company_name: str
    retries: list[AuditRecord]  # earlier retry links for this top-up, newest first


PAYMENT_KINDS = ("checkout", "auto")  # Topup.kind


def failed_payments(session: Session, kind: str = "", limit: int = 200) -> list[FailedPayment]:
    query = (select(Topup, Company.name).join(Company, Company.id == Topup.company_id)
             .where(Topup.status.in_((TopupStatus.FAILED.value, TopupStatus.REVIEW.value)))
             .order_by(Topup.updated_at.desc(), Topup.id.desc()).limit(limit))
    if kind in PAYMENT_KINDS:
        query = query.where(Topup.kind == kind)
    rows = session.execute(query).all()
    ids = [str(topup.id) for topup, _ in rows]
    retries: dict[str, list[AuditRecord]] = {}
    if ids:
        for record in session.scalars(select(AuditRecord).where(
                AuditRecord.action == RETRY_ACTION, AuditRecord.target_type == "topup",
                AuditRecord.target_id.in_(ids)).order_by(AuditRecord.id.desc())):
            retries.setdefault(record.target_id, []).append(record)
    return [FailedPayment(topup, name, retries.get(str(topup.id), [])) for topup, name in rows]


def open_retry_topup(session: Session, actor: Actor, topup_id: int, *, limits: TopupLimits,
                     vat: VatPolicy) -> Topup:
    """Step 1 of 3 of a retry: a new pending Checkout top-up for the failed one's amount, recorded
    before Stripe is asked (:func:`open_checkout_topup`); the caller commits. Raises TopupNotFound or
    NotFailed."""
    failed = session.get(Topup, topup_id)
    if failed is None:
        raise TopupNotFound(topup_id)
    if failed.status != TopupStatus.FAILED.value:
        raise NotFailed(topup_id)
    return open_checkout_topup(session, company_id=failed.company_id, user_id=actor.user_id, amount=failed.amount,
                               save_payment_method=False, limits=limits, vat=vat)


def create_retry_checkout(session: Session, gateway: StripeGateway, new_topup_id: int, *,
                          payment_method_types: list[str], description: str,
                          return_urls: Callable[[int], ReturnUrls]) -> str:
    """Step 2 of 3 of a retry: the new top-up's Checkout Session, in the company's language
    (:func:`create_checkout`); returns its URL, the caller commits. Raises CheckoutFailed (Stripe
    unreachable: the new top-up is marked failed — commit that — and no retry is recorded). A crash
    before step 3 leaves a pending top-up nobody was told about: its Checkout Session expires unpaid,
    and staff may retry again (the failed top-up stays failed)."""
    company = session.get(Company, session.get(Topup, new_topup_id).company_id)
    page = CheckoutPage(description, payment_method_types, company.language)
    return create_checkout(session, gateway, new_topup_id, page, return_urls)


def record_retry(session: Session, actor: Actor, failed_topup_id: int, new_topup: Topup, url: str) -> None:
    """Step 3 of 3 of a retry: audit the new link against the failed top-up and email it to the
    company — one unit of work, the caller commits."""
    failed = session.get(Topup, failed_topup_id)
    record_action(session, actor, RETRY_ACTION, target_type="topup", target_id=failed.id, company_id=failed.company_id,
                  before={"status": failed.status, "failure_code": failed.failure_code,
                          "decline_code": failed.decline_code},
                  after={"retry_topup_id": new_topup.id, "checkout_url": url})
    queue_email(session, company_id=failed.company_id, kind=EmailKind.PAYMENT_FAILED,
                dedupe_key=f"topup-retry:{new_topup.id}",
                context={"amount": failed.amount, "failure_code": failed.failure_code,
                         "decline_code": failed.decline_code, "retry_url": url,
                         "balance": session.get(PrepaidBalance, failed.company_id).balance, "retry_of_topup_id": failed.id})
