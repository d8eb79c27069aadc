"""Staff money actions: manual adjustments, call refunds and top-up refunds through Stripe.

Each action takes plain values, checks them, moves money through :mod:`core.ledger.postings` and writes
its audit record (before/after balance, reason) in the same transaction. Each has a preview that
answers the resulting balance for the confirmation page. A submitted form carries a
``request_key``: the unique audit ``request_key`` (and for call refunds ``CallRefund.request_key``)
makes a second submission of the same form change nothing. The confirmation carries the balance
shown in the preview (``expected_balance``); if it changed meanwhile the action raises
:class:`StaleBalance` under the account lock and moves no money.

Services here never commit: each action is one unit of work that the entry point commits, except
those that ask Stripe, which come in two named steps: the top-up refund (see
:func:`check_topup_refund`) and the actions on a top-up under review (see :func:`check_review_action`).
On a domain error the entry point does not commit; the unique keys are guarded by a savepoint taken
after the account lock (on SQLite that lock's UPDATE opens the transaction; a SAVEPOINT opening it
would make its RELEASE a commit).

Errors carry a stable ``code``; views map codes to translated messages.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.accounts.audit import Actor, record_action
from core.ledger.postings import Reference, lock_account, post_entry
from core.schema import AuditRecord, CallCharge, CallRefund, EntryType, PrepaidBalance, Topup, TopupRefund, TopupStatus
from core.money import UNITS_PER_CENT, divide_half_up, eur
from core.payments.bonuses import best_bonus
from core.payments.gateway import PaymentError, PaymentIntent, StripeGateway
from core.payments.refunds import DEBITED_REFUND_STATUSES, apply_refund_report
from core.payments.topups import (
    Paid, close_refunded, credit_topup, evidence_problem, received_share, refund_debit,
    stripe_payment, taken_back,
)

MAX_ADJUSTMENT = eur("10000")  # more than this in one manual adjustment is a typo, not a decision
MAX_REASON_LENGTH = 1000


# -- errors --------------------------------------------------------------------------------------

class StaffActionError(Exception):
    code = "staff_action_error"


class NotFound(StaffActionError):
    code = "not_found"


class ReasonRequired(StaffActionError):
    code = "reason_required"


class InvalidAmount(StaffActionError):
    """Zero, negative where not allowed, absurdly large or finer than the action allows."""

    code = "invalid_amount"


class AboveRefundable(StaffActionError):
    code = "above_refundable"

    def __init__(self, refundable: int):
        super().__init__(f"refundable {refundable}")
        self.refundable = refundable  # units


class NothingRefundable(StaffActionError):
    code = "nothing_refundable"


class NotRefundable(StaffActionError):
    """The top-up was never paid (or has no Stripe payment to refund)."""

    code = "not_refundable"


class AdminOnly(StaffActionError):
    """Above the support limit, or an override only staff admins may give."""

    code = "admin_only"


class ExceedsAvailable(StaffActionError):
    code = "exceeds_available"

    def __init__(self, available: int, debit: int):
        super().__init__(f"available {available}, debit {debit}")
        self.available, self.debit = available, debit


class StaleBalance(StaffActionError):
    code = "stale"

    def __init__(self, current: int):
        super().__init__(f"balance is now {current}")
        self.current = current


class DuplicateSubmission(StaffActionError):
    code = "duplicate"


class RefundFailed(StaffActionError):
    code = "stripe_failed"

    def __init__(self, error: PaymentError):
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class Preview:
    balance: int  # now
    resulting_balance: int
    amount: int  # units moved (signed for adjustments; positive refund otherwise)
    bonus_reversed: int = 0
    refunded_cents: int | None = None  # top-up refunds: money paid back


# -- shared checks -------------------------------------------------------------------------------

def _clean_reason(reason: str | None) -> str:
    text = (reason or "").strip()
    if not text:
        raise ReasonRequired()
    return text[:MAX_REASON_LENGTH]


def _balance(session: Session, company_id: int) -> PrepaidBalance:
    account = session.get(PrepaidBalance, company_id, populate_existing=True)
    if account is None:
        raise NotFound(company_id)
    return account


def _check_fresh(balance: int, expected_balance: int | None) -> None:
    if expected_balance is not None and balance != expected_balance:
        raise StaleBalance(balance)


def _check_new_key(session: Session, request_key: str) -> None:
    if not request_key or len(request_key) > 64:
        raise DuplicateSubmission()  # no usable key: refuse rather than risk a double booking
    if session.scalar(select(AuditRecord.id).where(AuditRecord.request_key == request_key)):
        raise DuplicateSubmission()


def _check_limit(amount: int, actor_is_admin: bool, support_limit: int) -> None:
    if not actor_is_admin and amount > support_limit:
        raise AdminOnly()


# -- manual adjustment ---------------------------------------------------------------------------

def _check_adjustment(amount_units: int) -> None:
    if amount_units == 0 or abs(amount_units) > MAX_ADJUSTMENT or amount_units % UNITS_PER_CENT:
        raise InvalidAmount(amount_units)


def preview_adjustment(session: Session, company_id: int, amount_units: int) -> Preview:
    _check_adjustment(amount_units)
    balance = _balance(session, company_id).balance
    return Preview(balance, balance + amount_units, amount_units)


def adjust_balance(session: Session, actor: Actor, company_id: int, amount_units: int, description: str,
                   reason: str, request_key: str, expected_balance: int | None = None) -> Preview:
    """Credit (+) or debit (−) a company's balance by hand. A debit may take the balance below zero
    (the staff member saw the resulting balance); the caller has checked the staff-admin role.
    One unit of work: the caller commits."""
    reason = _clean_reason(reason)
    _check_adjustment(amount_units)
    before, _reserved = lock_account(session, company_id)
    _check_new_key(session, request_key)
    _check_fresh(before, expected_balance)
    with _once(session):
        entry = post_entry(session, company_id, EntryType.ADJUSTMENT, amount_units,
                           description=(description or "").strip()[:500] or reason,
                           reference=Reference("adjustment", request_key), actor=actor.email[:100],
                           allow_negative=True)
        record_action(session, actor, "balance_adjustment", target_type="company", target_id=company_id,
                      company_id=company_id, before={"balance": before},
                      after={"balance": entry.balance_after, "amount": amount_units, "ledger_entry_id": entry.id,
                             "description": entry.description},
                      reason=reason, request_key=request_key)
    return Preview(before, entry.balance_after, amount_units)


@contextmanager
def _once(session: Session):
    """The writes of one submitted form in a savepoint: a concurrent second submission fails at a
    unique key, which undoes them and raises :class:`DuplicateSubmission`. Call with the account locked."""
    try:
        with session.begin_nested():
            yield
    except IntegrityError:
        raise DuplicateSubmission() from None


# -- call refunds --------------------------------------------------------------------------------

def _call_refund_amount(charge: CallCharge, amount: int | None, seconds: int | None) -> int:
    """The refund in units: given, from seconds at the call's own rate (rounded half-up once), or
    everything still refundable."""
    refundable = charge.amount - charge.refunded_amount
    if refundable <= 0:
        raise NothingRefundable()
    if seconds is not None:
        if seconds <= 0:
            raise InvalidAmount(seconds)
        if seconds > charge.billed_seconds:
            raise AboveRefundable(refundable)
        value = divide_half_up(seconds * charge.rate_per_minute, 60)
    elif amount is not None:
        value = amount
    else:
        value = refundable
    if value <= 0:
        raise InvalidAmount(value)
    if value > refundable:
        raise AboveRefundable(refundable)
    return value


def _call_charge(session: Session, call_charge_id: int, *, lock: bool = False) -> CallCharge:
    query = select(CallCharge).where(CallCharge.id == call_charge_id).execution_options(populate_existing=True)
    if lock:
        query = query.with_for_update()
    charge = session.scalar(query)
    if charge is None:
        raise NotFound(call_charge_id)
    return charge


def preview_call_refund(session: Session, call_charge_id: int, *, amount: int | None = None,
                        seconds: int | None = None) -> Preview:
    charge = _call_charge(session, call_charge_id)
    value = _call_refund_amount(charge, amount, seconds)
    balance = _balance(session, charge.company_id).balance
    return Preview(balance, balance + value, value)


def refund_call(session: Session, actor: Actor, call_charge_id: int, *, amount: int | None = None,
                seconds: int | None = None, reason: str, request_key: str, actor_is_admin: bool,
                support_limit: int, expected_balance: int | None = None) -> CallRefund:
    """Refund (part of) a call's charge: a ledger REFUND entry linked to the call, the call's refund
    status updated, an audit record — one unit of work, the caller commits. ``amount`` and
    ``seconds`` both None means the full refundable rest."""
    reason = _clean_reason(reason)
    company_id = _call_charge(session, call_charge_id).company_id
    before, _reserved = lock_account(session, company_id)
    charge = _call_charge(session, call_charge_id, lock=True)
    _check_new_key(session, request_key)
    value = _call_refund_amount(charge, amount, seconds)
    _check_limit(value, actor_is_admin, support_limit)
    _check_fresh(before, expected_balance)
    with _once(session):
        refund = CallRefund(call_charge_id=charge.id, company_id=company_id, amount=value, seconds=seconds,
                            reason=reason, actor_user_id=actor.user_id, request_key=request_key)
        session.add(refund)
        session.flush()
        entry = post_entry(session, company_id, EntryType.REFUND, value,
                           description=f"Refund of call {charge.call_id}"[:500],
                           reference=Reference("call_refund", str(refund.id)), actor=actor.email[:100])
        refund.ledger_entry_id = entry.id
        previous_status, previous_refunded = charge.refund_status, charge.refunded_amount
        charge.refunded_amount += value
        charge.refund_status = "full" if charge.refunded_amount >= charge.amount else "partial"
        record_action(session, actor, "call_refund", target_type="call_charge", target_id=charge.id,
                      company_id=company_id,
                      before={"balance": before, "refunded_amount": previous_refunded,
                              "refund_status": previous_status},
                      after={"balance": entry.balance_after, "refunded_amount": charge.refunded_amount,
                             "refund_status": charge.refund_status, "amount": value, "seconds": seconds,
                             "call_id": charge.call_id, "ledger_entry_id": entry.id},
                      reason=reason, request_key=request_key)
    return refund


# -- top-up refunds ------------------------------------------------------------------------------

def _refundable_topup(session: Session, topup_id: int) -> tuple[Topup, int]:
    """The top-up and its still refundable money in cents."""
    topup = session.get(Topup, topup_id, populate_existing=True)
    if topup is None:
        raise NotFound(topup_id)
    if topup.status != TopupStatus.CREDITED.value or not topup.stripe_payment_intent_id:
        raise NotRefundable(topup_id)
    charged = topup.charged_cents or topup.amount // UNITS_PER_CENT
    return topup, charged - taken_back(session, topup.id).cents


def _topup_refund_cents(refundable_cents: int, amount_cents: int | None) -> int:
    if refundable_cents <= 0:
        raise NothingRefundable()
    cents = refundable_cents if amount_cents is None else amount_cents
    if cents <= 0:
        raise InvalidAmount(cents)
    if cents > refundable_cents:
        raise AboveRefundable(refundable_cents * UNITS_PER_CENT)
    return cents


def preview_topup_refund(session: Session, topup_id: int, amount_cents: int | None) -> Preview:
    topup, refundable = _refundable_topup(session, topup_id)
    cents = _topup_refund_cents(refundable, amount_cents)
    debit = refund_debit(session, topup, cents)
    amount, bonus_back = debit.amount, debit.bonus_back
    balance = _balance(session, topup.company_id).balance
    return Preview(balance, balance - amount - bonus_back, amount, bonus_back, cents)


@dataclass(frozen=True)
class TopupRefundPlan:
    """A checked top-up refund, ready to be asked of Stripe (step 1's answer, step 2's input)."""

    topup_id: int
    company_id: int
    payment_intent_id: str
    cents: int  # money paid back
    balance: int  # as the staff member saw it
    reason: str
    request_key: str
    override_available: bool


def check_topup_refund(session: Session, topup_id: int, amount_cents: int | None, reason: str, request_key: str,
                       override_available: bool, actor_is_admin: bool, support_limit: int,
                       expected_balance: int | None = None) -> TopupRefundPlan:
    """Step 1 of 2 of a top-up refund: the checks, reading only (reason, amount ≤ refundable, support
    limit, available balance unless a staff admin overrides, stale preview, double submit).

    The entry point then ends this read-only unit of work, so no transaction is open while step 2
    (:func:`refund_topup`) asks Stripe."""
    reason = _clean_reason(reason)
    if override_available and not actor_is_admin:
        raise AdminOnly()
    topup, refundable = _refundable_topup(session, topup_id)
    _check_new_key(session, request_key)
    cents = _topup_refund_cents(refundable, amount_cents)
    debit = refund_debit(session, topup, cents)
    amount, bonus_back = debit.amount, debit.bonus_back
    _check_limit(amount, actor_is_admin, support_limit)
    account = _balance(session, topup.company_id)
    _check_fresh(account.balance, expected_balance)
    if amount + bonus_back > account.available and not override_available:
        raise ExceedsAvailable(account.available, amount + bonus_back)
    return TopupRefundPlan(topup_id, topup.company_id, topup.stripe_payment_intent_id, cents, account.balance,
                           reason, request_key, override_available)


def refund_topup(session: Session, gateway: StripeGateway, actor: Actor, plan: TopupRefundPlan) -> Preview:
    """Step 2 of 2 of a top-up refund: pay it back through Stripe and debit it once — one unit of
    work, the caller commits (nothing is written before Stripe answers).

    Stripe is asked with an idempotency key from the form's ``request_key``; then the refund is booked
    through :func:`core.payments.refunds.apply_refund_report` keyed by the Stripe refund id, and audited. Stripe's
    ``charge.refunded`` webhook may book it meanwhile: whichever comes first debits, the other changes
    nothing. A crash after Stripe refunded leaves the booking to that webhook; submitting the same
    form again gets the same refund from Stripe and adds the audit record.
    """
    try:
        refund = gateway.refund(refund_key=f"staff-refund-{plan.request_key}",
                                payment_intent_id=plan.payment_intent_id, amount_cents=plan.cents,
                                metadata={"topup_id": str(plan.topup_id), "request_key": plan.request_key,
                                          "actor": actor.email[:100]})
    except PaymentError as error:
        raise RefundFailed(error) from None
    return _book_topup_refund(session, actor, plan, refund)


def _book_topup_refund(session: Session, actor: Actor, plan: TopupRefundPlan, refund) -> Preview:
    now, _reserved = lock_account(session, plan.company_id)
    # Under the account lock, which the webhook's booking takes too, "booked yet?" cannot go stale.
    booked = session.scalar(select(TopupRefund).where(TopupRefund.stripe_refund_id == refund.id))
    if booked is not None:  # the webhook was faster
        after, amount, bonus_back = now, booked.amount, booked.bonus_reversed
    elif refund.status not in DEBITED_REFUND_STATUSES:  # Stripe refused it at once: nothing to debit
        after, amount, bonus_back = now, 0, 0
    else:
        topup = session.get(Topup, plan.topup_id, populate_existing=True)
        debit = refund_debit(session, topup, refund.amount)
        amount, bonus_back = debit.amount, debit.bonus_back
        after = now - amount - bonus_back
    with _once(session):
        record_action(session, actor, "topup_refund", target_type="topup", target_id=plan.topup_id,
                      company_id=plan.company_id, before={"balance": plan.balance},
                      after={"balance": after, "refunded_cents": refund.amount, "amount": amount,
                             "bonus_reversed": bonus_back, "stripe_refund_id": refund.id,
                             "override_available": plan.override_available},
                      reason=plan.reason, request_key=plan.request_key)
    if booked is None:  # the same path as the webhook's report of it
        apply_refund_report(session, plan.payment_intent_id, refund.id, refund.amount, refund.status)
    return Preview(plan.balance, after, amount, bonus_back, refund.amount)


# -- top-ups under review: credit what Stripe received, or refund the payment ---------------------------

class NotInReview(StaffActionError):
    """The top-up is not (or no longer) under review: credited, refunded or never paid."""

    code = "not_in_review"


class NotPaidAtStripe(StaffActionError):
    code = "not_paid_at_stripe"


class NotCreditable(StaffActionError):
    """Stripe's own record of the payment cannot be credited to this company: refund it instead."""

    code = "not_creditable"

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem  # currency_mismatch | customer_mismatch | livemode_mismatch | nothing_received


class StripeUnavailable(StaffActionError):
    code = "stripe_unavailable"

    def __init__(self, error: PaymentError):
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class ReviewPreview:
    """Stripe's payment for a top-up under review and what the action does with it."""

    balance: int
    resulting_balance: int
    received_cents: int  # what Stripe reports as received
    currency: str
    amount: int = 0  # units credited (none for a refund)
    bonus: int = 0
    bonus_reversed: int = 0  # nothing is taken back: for the shared confirmation


@dataclass(frozen=True)
class ReviewPlan:
    """A checked action on a top-up under review (step 1's answer, step 2's input)."""

    topup_id: int
    company_id: int
    reason: str
    request_key: str


def _topup_in_review(session: Session, topup_id: int) -> Topup:
    topup = session.get(Topup, topup_id, populate_existing=True)
    if topup is None:
        raise NotFound(topup_id)
    if topup.status != TopupStatus.REVIEW.value:
        raise NotInReview(topup_id)
    return topup


def _paid_at_stripe(gateway: StripeGateway, topup: Topup) -> PaymentIntent:
    """Stripe's own record of the payment (not the event that put the top-up under review)."""
    try:
        intent = stripe_payment(gateway, topup)
    except PaymentError as error:
        raise StripeUnavailable(error) from None
    if intent is None or intent.status != "succeeded" or not intent.amount_received:
        raise NotPaidAtStripe(topup.id)
    return intent


def _creditable_cents(session: Session, gateway: StripeGateway, topup: Topup, intent: PaymentIntent) -> int:
    """The cents received, if the payment is this company's, in our currency and mode: everything
    Stripe's report is checked for except the amount, which is what staff decide to credit."""
    paid = Paid.by_intent(intent)
    problem = evidence_problem(session, topup, replace(paid, amount_cents=topup.charged_cents),
                               live=not gateway.is_test_mode)
    if problem is not None:
        raise NotCreditable(problem[0])
    return paid.amount_cents


def _credit_preview(session: Session, topup: Topup, received_cents: int, currency: str) -> ReviewPreview:
    amount = received_share(topup, received_cents)
    bonus = best_bonus(session, topup.company_id, amount, topup.created_at, exclude_topup_id=topup.id).amount
    balance = _balance(session, topup.company_id).balance
    return ReviewPreview(balance, balance + amount + bonus, received_cents, currency, amount, bonus)


def preview_review_credit(session: Session, gateway: StripeGateway, topup_id: int) -> ReviewPreview:
    """What crediting what Stripe received would credit: the share of the top-up those cents pay for
    (:func:`core.payments.topups.received_share`, never more than the top-up) and the bonus the rules
    give for that amount. Asks Stripe; writes nothing."""
    topup = _topup_in_review(session, topup_id)
    intent = _paid_at_stripe(gateway, topup)
    return _credit_preview(session, topup, _creditable_cents(session, gateway, topup, intent), intent.currency or "")


def preview_review_refund(session: Session, gateway: StripeGateway, topup_id: int) -> ReviewPreview:
    """What refunding the payment of a top-up under review pays back: all Stripe received; the balance
    does not change (nothing was credited). Asks Stripe; writes nothing."""
    topup = _topup_in_review(session, topup_id)
    intent = _paid_at_stripe(gateway, topup)
    balance = _balance(session, topup.company_id).balance
    return ReviewPreview(balance, balance, intent.amount_received, intent.currency or "")


def check_review_action(session: Session, topup_id: int, reason: str, request_key: str) -> ReviewPlan:
    """Step 1 of 2 of crediting what was received or refunding a top-up under review: the checks,
    reading only (reason, still under review, double submit). The entry point then ends this
    read-only unit of work, so no transaction is open while step 2 (:func:`credit_received` or
    :func:`refund_in_review`) asks Stripe."""
    reason = _clean_reason(reason)
    topup = _topup_in_review(session, topup_id)
    _check_new_key(session, request_key)
    return ReviewPlan(topup.id, topup.company_id, reason, request_key)


def credit_received(session: Session, gateway: StripeGateway, actor: Actor, plan: ReviewPlan,
                    expected_balance: int | None = None) -> ReviewPreview:
    """Step 2 of 2: credit exactly what Stripe reports as received for a top-up under review, once,
    through the one crediting path (:func:`core.payments.topups.credit_topup`), and audit it — one
    unit of work, the caller commits; only staff admins may (the caller checks the role).

    Stripe is asked first, before anything is written. A second submission of the form stops at its
    audit key; a concurrent one (or a matching Stripe event meanwhile) finds the top-up credited
    and raises :class:`NotInReview`."""
    topup = _topup_in_review(session, plan.topup_id)
    intent = _paid_at_stripe(gateway, topup)
    received = _creditable_cents(session, gateway, topup, intent)
    before, _reserved = lock_account(session, plan.company_id)
    _check_new_key(session, plan.request_key)
    _check_fresh(before, expected_balance)
    asked = {"status": topup.status, "failure_code": topup.failure_code, "amount": topup.amount,
             "charged_cents": topup.charged_cents, "balance": before}
    with _once(session):
        if not credit_topup(session, plan.topup_id, payment_intent_id=intent.id, received_cents=received):
            raise NotInReview(plan.topup_id)
        topup = session.get(Topup, plan.topup_id, populate_existing=True)
        after = _balance(session, plan.company_id).balance
        record_action(session, actor, "topup.credit_received", target_type="topup", target_id=plan.topup_id,
                      company_id=plan.company_id, before=asked,
                      after={"status": topup.status, "amount": topup.amount, "bonus": topup.bonus_amount,
                             "received_cents": received, "payment_intent_id": intent.id, "balance": after},
                      reason=plan.reason, request_key=plan.request_key)
    return ReviewPreview(before, after, received, intent.currency or "", topup.amount, topup.bonus_amount)


def refund_in_review(session: Session, gateway: StripeGateway, actor: Actor, plan: ReviewPlan, *,
                     actor_is_admin: bool, support_limit: int) -> ReviewPreview:
    """Step 2 of 2: pay back in full, through Stripe, the payment of a top-up under review and close
    the top-up as refunded, audited — one unit of work, the caller commits. Nothing was credited, so
    nothing is debited (and Stripe's ``charge.refunded`` for it debits nothing either). Support staff
    may refund up to ``support_limit``.

    The refund's idempotency key comes from the top-up, not the form: however many staff members
    submit however often, Stripe refunds once; the first booking closes the top-up, any other finds
    it closed (:class:`NotInReview`) or stops at its form's audit key."""
    topup = _topup_in_review(session, plan.topup_id)
    intent = _paid_at_stripe(gateway, topup)
    _check_limit(intent.amount_received * UNITS_PER_CENT, actor_is_admin, support_limit)
    try:
        refund = gateway.refund(refund_key=f"review-refund-{topup.request_key}", payment_intent_id=intent.id,
                                amount_cents=None, metadata={"topup_id": str(topup.id), "request_key": plan.request_key,
                                                             "actor": actor.email[:100]})
    except PaymentError as error:
        raise RefundFailed(error) from None
    balance, _reserved = lock_account(session, plan.company_id)
    _check_new_key(session, plan.request_key)
    with _once(session):
        if not close_refunded(session, plan.topup_id, intent.id):
            raise NotInReview(plan.topup_id)
        record_action(session, actor, "topup.refund_in_review", target_type="topup", target_id=plan.topup_id,
                      company_id=plan.company_id, before={"status": topup.status, "failure_code": topup.failure_code},
                      after={"status": TopupStatus.REFUNDED.value, "refunded_cents": refund.amount,
                             "stripe_refund_id": refund.id, "payment_intent_id": intent.id, "balance": balance},
                      reason=plan.reason, request_key=plan.request_key)
    return ReviewPreview(balance, balance, refund.amount, intent.currency or "")
