"""Top-ups: starting a Stripe Checkout, and the one exactly-once path that credits money.

Whatever arrives first (webhook, the success page asking Stripe, a replayed event), and however
often, :func:`credit_topup` moves a top-up to ``credited`` once: its guarded UPDATE claims the row,
and the ledger's unique (type, reference) constraint stands behind it.

Nothing here commits: the entry point does. Where Stripe is asked between two writes, the work comes
in named steps, each its own unit of work that the entry point commits before the next: a Checkout
top-up is :func:`open_checkout_topup`, then :func:`create_checkout`; a cancel is
:func:`cancel_topup`, :func:`close_checkout`; the success page's question is
:func:`claim_confirmation`, :func:`confirm_with_stripe`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select, union_all, update
from sqlalchemy.orm import Session

from core.payments.bonuses import best_bonus
from core.clock import utcnow
from core.followups import Followup, request_followup
from core.ledger.postings import Reference, lock_account, post_entry
from core.schema import (
    Company, Dispute, EntryType, RefundStatus, Topup, TopupRefund, TopupStatus, User,
)
from core.money import CURRENCY, UNITS_PER_CENT, divide_half_up
from core.payments.gateway import CheckoutSession, PaymentError, PaymentIntent, StripeGateway
from core.documents.vat import VatPolicy, split_topup
from core.parsing import id_or_none

CONFIRM_INTERVAL = timedelta(seconds=10)

logger = logging.getLogger(__name__)


class TopupError(Exception):
    code = "topup_error"


class AmountOutOfRange(TopupError):
    code = "amount_out_of_range"


class TopupNotFound(TopupError):
    code = "not_found"


class CompanyBlocked(TopupError):
    code = "company_blocked"


class CheckoutFailed(TopupError):
    code = "checkout_failed"

    def __init__(self, error: PaymentError):
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class TopupLimits:
    minimum: int
    maximum: int

    def check(self, amount: int) -> None:
        if not self.minimum <= amount <= self.maximum or amount % UNITS_PER_CENT:
            raise AmountOutOfRange(amount)


@dataclass(frozen=True)
class ReturnUrls:
    success: str  # must contain {CHECKOUT_SESSION_ID}
    cancel: str


def open_checkout_topup(
    session: Session, *, company_id: int, user_id: int | None, amount: int, save_payment_method: bool,
    limits: TopupLimits, vat: VatPolicy,
) -> Topup:
    """Step 1 of 2 of a Checkout top-up: the pending top-up, recorded before Stripe is asked (so a crash
    leaves a record, and its ``request_key`` is the idempotency key of step 2). The caller commits.

    The customer pays the gross amount: the top-up amount itself, or plus VAT when amounts are net.
    """
    limits.check(amount)
    if session.get(Company, company_id).blocked_at is not None:
        raise CompanyBlocked(company_id)
    topup = Topup(company_id=company_id, amount=amount, kind="checkout", status=TopupStatus.PENDING.value,
                  charged_cents=split_topup(amount, vat).gross_cents, save_payment_method=save_payment_method,
                  created_by_user_id=user_id)
    session.add(topup)
    session.flush()  # its id, for the return URLs and Stripe's metadata
    return topup


def stripe_customer(session: Session, gateway: StripeGateway, company_id: int) -> str:
    """The company's Stripe customer id; on first need Stripe creates it (an idempotency key from the
    company keeps it single, however often this is asked). Writes nothing: the caller stores a new id
    with :func:`remember_customer` once its own Stripe calls are done, in the same unit of work."""
    company = session.get(Company, company_id)
    if company.stripe_customer_id:
        return company.stripe_customer_id
    admin_email = session.scalar(
        select(User.email).where(User.company_id == company_id, User.role == "company_admin").order_by(User.id)
    )
    request_key = f"{company_id}-{company.created_at:%Y%m%d%H%M%S%f}"
    return gateway.create_customer(company_id, request_key, company.name, admin_email)


def remember_customer(session: Session, company_id: int, customer_id: str) -> None:
    """Store the company's Stripe customer id unless it has one (then Stripe returned that one)."""
    session.execute(
        update(Company).where(Company.id == company_id, Company.stripe_customer_id.is_(None))
        .values(stripe_customer_id=customer_id)
    )


@dataclass(frozen=True)
class CheckoutPage:
    """What the Checkout Session shows: the line's description, the methods offered, its language."""

    description: str
    payment_method_types: list[str]
    locale: str


def create_checkout(session: Session, gateway: StripeGateway, topup_id: int, page: CheckoutPage,
                    return_urls: Callable[[int], ReturnUrls]) -> str:
    """Step 2 of 2 of a Checkout top-up: ask Stripe for the customer (on first need) and the Checkout
    Session, then store both ids; returns the URL to pay at. The caller commits. When Stripe refuses or
    cannot be reached, the top-up is marked failed with Stripe's answer and :class:`CheckoutFailed`
    raised: the caller commits that record too. A crash before this step leaves a pending top-up
    without a session, which nobody can pay; a crash during it, nothing stored of Stripe's answers
    (asked again, Stripe answers the same: the idempotency keys come from our records)."""
    topup = session.get(Topup, topup_id)
    urls = return_urls(topup.id)
    try:
        customer_id = stripe_customer(session, gateway, topup.company_id)
        checkout = gateway.create_payment_checkout(
            topup_id=topup.id, request_key=topup.request_key, customer_id=customer_id,
            amount_cents=topup.charged_cents, description=page.description,
            payment_method_types=page.payment_method_types, save_payment_method=topup.save_payment_method,
            success_url=urls.success, cancel_url=urls.cancel, locale=page.locale,
        )
    except PaymentError as error:
        _set_failure(topup, error.code or error.kind, error.decline_code, error.message)
        raise CheckoutFailed(error) from None
    remember_customer(session, topup.company_id, customer_id)
    topup.stripe_checkout_session_id = checkout.id
    return checkout.url or ""


# Never credited again: credited once, or its payment was paid back instead (a later report of that
# payment, such as a replayed event, must not credit it).
_NOT_CREDITABLE = (TopupStatus.CREDITED.value, TopupStatus.REFUNDED.value)


def received_share(topup: Topup, received_cents: int) -> int:
    """The units a payment of ``received_cents`` credits for this top-up: that share of its amount
    (the money itself when amounts include VAT), rounded half-up once, never more than the amount."""
    charged_cents = topup.charged_cents or topup.amount // UNITS_PER_CENT
    return min(topup.amount, divide_half_up(topup.amount * max(received_cents, 0), charged_cents))


def credit_topup(session: Session, topup_id: int, *, payment_intent_id: str | None = None,
                 payment_method_type: str | None = None, received_cents: int | None = None) -> bool:
    """Credit the top-up and its bonus exactly once. Returns whether this call credited it.

    With ``received_cents`` (staff crediting what Stripe received for a top-up under review) the
    top-up becomes what was paid: its amount :func:`received_share`, its charge those cents, and the
    bonus is decided on that amount as for any top-up of it — so the invoice, later refunds and
    reconciliation all see the money that came in."""
    now = utcnow()
    values = {"status": TopupStatus.CREDITED.value, "credited_at": now, "updated_at": now,
              "failure_code": None, "decline_code": None, "failure_message": None}
    if payment_intent_id:
        values["stripe_payment_intent_id"] = func.coalesce(Topup.stripe_payment_intent_id, payment_intent_id)
    if payment_method_type:
        values["payment_method_type"] = payment_method_type
    if received_cents is not None:
        asked = session.get(Topup, topup_id)
        values["amount"] = received_share(asked, received_cents)
        values["charged_cents"] = min(received_cents, asked.charged_cents or received_cents)
    claimed = session.execute(
        update(Topup).where(Topup.id == topup_id, Topup.status.not_in(_NOT_CREDITABLE))
        .values(**values).returning(Topup.id)
    ).scalar_one_or_none()
    if claimed is None:
        return False
    topup = session.get(Topup, topup_id, populate_existing=True)
    reference = Reference("topup", str(topup.id))
    post_entry(session, topup.company_id, EntryType.TOPUP, topup.amount, reference=reference, actor="stripe",
               description=f"Stripe {topup.kind} #{topup.id}")
    # The balance row is locked now, so "first top-up" cannot be claimed twice concurrently.
    bonus = best_bonus(session, topup.company_id, topup.amount, topup.created_at, exclude_topup_id=topup.id)
    topup.bonus_amount, topup.bonus_rule_id = bonus.amount, bonus.rule_id
    if bonus.amount:
        post_entry(session, topup.company_id, EntryType.BONUS, bonus.amount, reference=reference,
                   actor="stripe", description=bonus.rule_name)
    request_followup(session, Followup.ISSUE_TOPUP_INVOICE, topup.id)  # then the receipt email
    if topup.kind == "auto":
        request_followup(session, Followup.AUTO_TOPUP_SETTLED, topup.id)  # its attempt succeeded
    return True


def _move(session: Session, topup_id: int, to: TopupStatus, allowed_from: set[str],
          followup: Followup | None = None, **values) -> bool:
    """Move the top-up if its status allows; ``followup`` is requested only when it moved."""
    moved = session.execute(
        update(Topup).where(Topup.id == topup_id, Topup.status.in_(allowed_from))
        .values(status=to.value, updated_at=utcnow(), **values).returning(Topup.id)
    ).scalar_one_or_none()
    if moved is not None and followup is not None:
        request_followup(session, followup, topup_id)
    return moved is not None


_OPEN = {TopupStatus.PENDING.value, TopupStatus.FAILED.value}


def mark_processing(session: Session, topup_id: int, payment_method_type: str | None = None) -> bool:
    extra = {"payment_method_type": payment_method_type} if payment_method_type else {}
    return _move(session, topup_id, TopupStatus.PROCESSING, _OPEN, **extra)


def mark_expired(session: Session, topup_id: int) -> bool:
    return _move(session, topup_id, TopupStatus.EXPIRED, _OPEN)


def mark_failed(session: Session, topup_id: int, code: str | None, decline_code: str | None,
                message: str | None) -> bool:
    previous, kind = session.execute(select(Topup.status, Topup.kind).where(Topup.id == topup_id)).one()
    if kind == "auto":
        followup = Followup.AUTO_TOPUP_SETTLED  # its attempt failed (it emails)
    elif previous == TopupStatus.PROCESSING.value:
        followup = Followup.NOTIFY_TOPUP_FAILED  # SEPA failed days after checkout
    else:
        followup = None
    return _move(session, topup_id, TopupStatus.FAILED, _OPEN | {TopupStatus.PROCESSING.value}, followup=followup,
                 failure_code=code or "payment_failed", decline_code=decline_code, failure_message=message)


def cancel_topup(session: Session, company_id: int, topup_id: int) -> bool:
    """Step 1 of 2 when the customer left checkout: mark the top-up canceled; returns whether it moved.
    The caller commits before step 2, :func:`close_checkout`, asks Stripe."""
    topup = company_topup(session, company_id, topup_id)
    return _move(session, topup.id, TopupStatus.CANCELED, _OPEN)


def close_checkout(session: Session, gateway: StripeGateway, company_id: int, topup_id: int) -> Topup:
    """Step 2 of 2: close the canceled top-up's Checkout Session at Stripe. If it was paid or expired
    meanwhile, what Stripe says decides (a payment still credits): the caller commits that."""
    topup = company_topup(session, company_id, topup_id)
    if topup.status == TopupStatus.CANCELED.value and topup.stripe_checkout_session_id:
        try:
            gateway.expire_checkout_session(topup.stripe_checkout_session_id)
        except PaymentError:
            with suppress(PaymentError):
                apply_checkout_session(session, gateway.retrieve_checkout_session(topup.stripe_checkout_session_id),
                                       live=not gateway.is_test_mode)
    return session.get(Topup, topup.id, populate_existing=True)


def _set_failure(topup: Topup, code: str | None, decline_code: str | None, message: str | None) -> None:
    topup.status = TopupStatus.FAILED.value
    topup.failure_code, topup.decline_code, topup.failure_message = code, decline_code, message
    topup.updated_at = utcnow()


def company_topup(session: Session, company_id: int, topup_id: int) -> Topup:
    """A top-up of this company; any other company's id is simply not found."""
    topup = session.get(Topup, topup_id)
    if topup is None or topup.company_id != company_id:
        raise TopupNotFound(topup_id)
    return topup


def topup_for_checkout(session: Session, company_id: int, checkout_session_id: str) -> Topup:
    topup = session.scalar(select(Topup).where(Topup.stripe_checkout_session_id == checkout_session_id))
    if topup is None or topup.company_id != company_id:
        raise TopupNotFound(checkout_session_id)
    return topup


def recent_topups(session: Session, company_id: int, limit: int = 10) -> list[Topup]:
    return list(session.scalars(
        select(Topup).where(Topup.company_id == company_id).order_by(Topup.created_at.desc(), Topup.id.desc()).limit(limit)
    ))


# -- what Stripe tells us (webhooks and the success page share these) ------------------------------

@dataclass(frozen=True)
class Paid:
    """What Stripe reports as paid for a top-up: the evidence a credit is checked against."""

    amount_cents: int | None
    currency: str | None
    customer_id: str | None
    livemode: bool | None

    @classmethod
    def by_checkout(cls, checkout: CheckoutSession) -> Paid:
        return cls(checkout.amount_total, checkout.currency, checkout.customer_id, checkout.livemode)

    @classmethod
    def by_intent(cls, intent: PaymentIntent) -> Paid:
        received = intent.amount_received if intent.amount_received is not None else intent.amount
        return cls(received, intent.currency, intent.customer_id, intent.livemode)


def evidence_problem(session: Session, topup: Topup, paid: Paid, *, live: bool) -> tuple[str, str] | None:
    """Why Stripe's report does not prove this top-up was paid as asked: (code, detail), or None."""
    if paid.livemode is not None and paid.livemode != live:
        return "livemode_mismatch", f"a {'live' if paid.livemode else 'test'} payment for a {'live' if live else 'test'} key"
    if (paid.currency or "").upper() != CURRENCY:
        return "currency_mismatch", f"paid in {paid.currency!r}, expected {CURRENCY}"
    if paid.amount_cents != topup.charged_cents:
        return "amount_mismatch", f"{paid.amount_cents} cents received, {topup.charged_cents} cents expected"
    ours = session.scalar(select(Company.stripe_customer_id).where(Company.id == topup.company_id))
    if paid.customer_id != ours:
        return "customer_mismatch", f"paid by customer {paid.customer_id!r}, the company's is {ours!r}"
    return None


def credit_on_evidence(session: Session, topup: Topup, paid: Paid, *, live: bool, **credit) -> bool:
    """Credit the top-up (:func:`credit_topup`) if Stripe's report matches it; otherwise nothing is
    credited and the top-up waits for staff in the status ``review``, with the reason. Returns
    whether this call credited it."""
    problem = evidence_problem(session, topup, paid, live=live)
    if problem is None:
        return credit_topup(session, topup.id, **credit)
    code, detail = problem
    _move(session, topup.id, TopupStatus.REVIEW, _OPEN | {TopupStatus.PROCESSING.value},
          failure_code=code, failure_message=detail[:1000])
    return False


def stripe_payment(gateway: StripeGateway, topup: Topup) -> PaymentIntent | None:
    """Stripe's own record of the payment for the top-up, found from what we stored (never from an
    event): its payment intent, or its Checkout Session's. None while Stripe has none. Raises
    PaymentError when Stripe cannot be asked."""
    intent_id = topup.stripe_payment_intent_id
    if intent_id is None and topup.stripe_checkout_session_id:
        intent_id = gateway.retrieve_checkout_session(topup.stripe_checkout_session_id).payment_intent_id
    return gateway.retrieve_payment_intent(intent_id) if intent_id else None


def close_refunded(session: Session, topup_id: int, payment_intent_id: str) -> bool:
    """A top-up under review whose payment staff paid back in full: closed as refunded, with the
    payment it was. Nothing was credited, so nothing is debited. Returns whether it moved."""
    return _move(session, topup_id, TopupStatus.REFUNDED, {TopupStatus.REVIEW.value},
                 stripe_payment_intent_id=func.coalesce(Topup.stripe_payment_intent_id, payment_intent_id))


def _topup_from_metadata(session: Session, metadata: dict[str, str]) -> Topup | None:
    topup_id = id_or_none(metadata.get("topup_id"))
    return session.get(Topup, topup_id) if topup_id else None


def apply_checkout_session(session: Session, checkout: CheckoutSession, *, live: bool) -> Topup | None:
    topup = _topup_from_metadata(session, checkout.metadata)
    if topup is None or topup.stripe_checkout_session_id not in (None, checkout.id):
        return None
    if checkout.payment_status in ("paid", "no_payment_required"):
        credit_on_evidence(session, topup, Paid.by_checkout(checkout), live=live,
                           payment_intent_id=checkout.payment_intent_id)
    elif checkout.status == "complete":
        mark_processing(session, topup.id, payment_method_type="sepa_debit")
    elif checkout.status == "expired":
        mark_expired(session, topup.id)
    return session.get(Topup, topup.id, populate_existing=True)


def apply_async_payment_failed(session: Session, checkout: CheckoutSession, intent: PaymentIntent | None) -> Topup | None:
    topup = _topup_from_metadata(session, checkout.metadata)
    if topup is None:
        return None
    mark_failed(session, topup.id, (intent and intent.error_code) or "sepa_failed",
                intent and intent.decline_code, intent and intent.error_message)
    return topup


def apply_payment_intent(session: Session, intent: PaymentIntent, *, live: bool) -> Topup | None:
    topup = _topup_from_metadata(session, intent.metadata)
    if topup is None:
        topup = session.scalar(select(Topup).where(Topup.stripe_payment_intent_id == intent.id))
    if topup is None:
        return None
    method_type = intent.payment_method_types[0] if len(intent.payment_method_types) == 1 else None
    if intent.status == "succeeded":
        credit_on_evidence(session, topup, Paid.by_intent(intent), live=live, payment_intent_id=intent.id,
                           payment_method_type=method_type)
    elif intent.status == "processing":
        mark_processing(session, topup.id, payment_method_type=method_type)
    elif intent.error_code or intent.status in ("requires_payment_method", "canceled"):
        mark_failed(session, topup.id, intent.error_code, intent.decline_code, intent.error_message)
    return topup


def claim_confirmation(session: Session, topup: Topup) -> bool:
    """Step 1 of 2 of the success page's question to Stripe when the webhook is late: whether to ask
    now (at most every CONFIRM_INTERVAL); if so, the time of asking is written — the caller commits it
    before step 2, :func:`confirm_with_stripe`, so concurrent pollers do not all ask."""
    if topup.is_final or not topup.stripe_checkout_session_id:
        return False
    if topup.status != TopupStatus.PENDING.value and utcnow() - topup.updated_at < CONFIRM_INTERVAL:
        return False
    session.execute(update(Topup).where(Topup.id == topup.id).values(updated_at=utcnow()))
    return True


def confirm_with_stripe(session: Session, gateway: StripeGateway, topup_id: int) -> Topup:
    """Step 2 of 2: ask Stripe about the Checkout Session and apply its answer (crediting exactly
    once, like the webhook would); the caller commits."""
    topup = session.get(Topup, topup_id)
    try:
        checkout = gateway.retrieve_checkout_session(topup.stripe_checkout_session_id)
    except PaymentError:
        return topup  # Stripe unreachable: the page keeps polling, the webhook will come
    live = not gateway.is_test_mode
    apply_checkout_session(session, checkout, live=live)
    if checkout.payment_intent_id and checkout.payment_status != "paid":
        try:
            apply_payment_intent(session, gateway.retrieve_payment_intent(checkout.payment_intent_id), live=live)
        except PaymentError:
            pass
    return session.get(Topup, topup.id, populate_existing=True)


# -- refunds ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RefundDebit:
    """What refunding some cents of a top-up takes back: the cents themselves (never more than are left
    to refund), the share of the credit, and the share of the bonus."""

    cents: int
    amount: int
    bonus_back: int


def taken_back(session: Session, topup_id: int) -> RefundDebit:
    """What refunds and disputes of this top-up have taken back and still hold (those failed, canceled
    or won were given back and no longer count): the cap every further refund or dispute must respect."""
    refunds = (select(TopupRefund.refunded_cents.label("cents"), TopupRefund.amount, TopupRefund.bonus_reversed)
               .where(TopupRefund.topup_id == topup_id, TopupRefund.given_back_at.is_(None)))
    disputes = (select(Dispute.debited_cents.label("cents"), Dispute.amount, Dispute.bonus_reversed)
                .where(Dispute.topup_id == topup_id, Dispute.given_back_at.is_(None)))
    both = union_all(refunds, disputes).subquery()
    cents, amount, bonus = session.execute(select(func.coalesce(func.sum(both.c.cents), 0),
                                                  func.coalesce(func.sum(both.c.amount), 0),
                                                  func.coalesce(func.sum(both.c.bonus_reversed), 0))).one()
    return RefundDebit(int(cents), int(amount), int(bonus))  # SUM is a Decimal on PostgreSQL


def refund_debit(session: Session, topup: Topup, amount_cents: int) -> RefundDebit:
    """The one arithmetic of taking back (part of) a top-up's payment — a refund or a dispute — for the
    staff preview and the booking alike: the share of the credit (equal to the money when amounts
    include VAT) and of the bonus, each rounded half-up once, capped by what earlier refunds and
    disputes left (:func:`taken_back`)."""
    charged_cents = topup.charged_cents or topup.amount // UNITS_PER_CENT
    earlier = taken_back(session, topup.id)
    cents = max(0, min(amount_cents, charged_cents - earlier.cents))
    amount = min(divide_half_up(topup.amount * cents, charged_cents), topup.amount - earlier.amount)
    bonus_back = max(0, min(divide_half_up(topup.bonus_amount * amount, topup.amount), topup.bonus_amount - earlier.bonus_back))
    return RefundDebit(cents, amount, bonus_back)


def record_stripe_refund(session: Session, payment_intent_id: str, refund_id: str, amount_cents: int,
                         status: str = RefundStatus.SUCCEEDED.value) -> bool:
    """Debit a refund made in Stripe once (keyed by the refund id) and take back its share of the bonus
    (:func:`refund_debit`): never more than the payment credited, whatever Stripe reports. ``status`` is
    Stripe's (pending or succeeded: both are debited at once; see core.payments.refunds for the rest)."""
    topup = session.scalar(select(Topup).where(Topup.stripe_payment_intent_id == payment_intent_id))
    if topup is None or topup.status != TopupStatus.CREDITED.value:
        return False  # never credited (under review, or paid back instead): there is nothing to take back
    lock_account(session, topup.company_id)  # one refund at a time: the cap sees every earlier one
    if session.scalar(select(TopupRefund.id).where(TopupRefund.stripe_refund_id == refund_id)):
        return False
    topup = session.get(Topup, topup.id, populate_existing=True)
    debit = refund_debit(session, topup, amount_cents)
    if debit.cents < amount_cents:
        logger.warning("Refund %s of top-up %s reports %s cents; only %s were left to refund", refund_id, topup.id,
                       amount_cents, debit.cents)
    if debit.amount <= 0:
        return False
    reference = Reference("stripe_refund", refund_id)
    post_entry(session, topup.company_id, EntryType.TOPUP_REFUND, -debit.amount, reference=reference,
               actor="stripe", description=f"Refund of top-up #{topup.id}", allow_negative=True)
    if debit.bonus_back > 0:
        post_entry(session, topup.company_id, EntryType.BONUS_REVERSAL, -debit.bonus_back, reference=reference,
                   actor="stripe", description=f"Bonus share of refund, top-up #{topup.id}", allow_negative=True)
    refund = TopupRefund(topup_id=topup.id, stripe_refund_id=refund_id, refunded_cents=debit.cents,
                         amount=debit.amount, bonus_reversed=debit.bonus_back, status=status)
    session.add(refund)
    topup = session.get(Topup, topup.id, populate_existing=True)
    topup.refunded_amount += debit.amount
    session.flush()  # the refund's id, for its credit note
    request_followup(session, Followup.ISSUE_CREDIT_NOTE, refund.id)
    return True
