"""Refunds whose outcome Stripe reports later: the rule, and the one place that applies it.

The rule: a refund is debited as soon as Stripe first reports it, pending or succeeded
(:func:`core.payments.topups.record_stripe_refund`): the money is on its way back to the customer
and must not be spent meanwhile. When Stripe reports it failed or canceled (``charge.refund.updated``,
``refund.updated``, ``refund.failed``, or a ``charge.refunded`` whose list says so) — also after it had
succeeded, which Stripe allows — what was debited for it, the credit share and the bonus share, is
given back exactly once, as ledger entries of its own (``refund_failed`` and ``bonus``, both referenced
by the Stripe refund id). Failed and canceled are final: a late report of the same refund as pending
or succeeded changes nothing, and a refund first reported failed is recorded with nothing debited,
so that such a late report debits nothing either. So the final balance counts only the refunds that
succeeded (or are still on their way), and the refund row records Stripe's status.

Documents follow the ledger: the credit note is issued with the debit, and a refund that fails after
it gets a cancellation of that credit note (its own number, referring to it). That is what a German
accountant expects: an issued document is never changed or deleted (GoBD), a correction is a new
numbered document that names the one it corrects, and the VAT correction of the credit note (§ 17
UStG) is undone in the period the cancellation is issued, when the money turned out not to flow.

Nothing here commits; the entry point (the webhook endpoint, a staff refund) does.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.clock import utcnow
from core.followups import Followup, request_followup
from core.ledger.postings import Reference, lock_account, post_entry
from core.payments.topups import record_stripe_refund
from core.schema import GIVEN_BACK_REFUND_STATUSES, EntryType, RefundStatus, Topup, TopupRefund

DEBITED_REFUND_STATUSES = {RefundStatus.PENDING.value, RefundStatus.REQUIRES_ACTION.value,
                           RefundStatus.SUCCEEDED.value}


def apply_refund_report(session: Session, payment_intent_id: str, refund_id: str, amount_cents: int,
                        status: str) -> bool:
    """What Stripe reports about one refund of a top-up's payment, in whatever order and however often:
    debit it once (pending, succeeded), give its debit back once (failed, canceled), or note that a
    pending one succeeded. Returns whether money moved."""
    if status in GIVEN_BACK_REFUND_STATUSES:
        return give_back_refund(session, payment_intent_id, refund_id, status)
    if status not in DEBITED_REFUND_STATUSES:
        return False
    if record_stripe_refund(session, payment_intent_id, refund_id, amount_cents, status):
        return True
    if status == RefundStatus.SUCCEEDED.value:  # a pending refund went through; a final status stays
        session.execute(update(TopupRefund).where(TopupRefund.stripe_refund_id == refund_id,
                                                  TopupRefund.given_back_at.is_(None))
                        .values(status=status))
    return False


def give_back_refund(session: Session, payment_intent_id: str, refund_id: str, status: str) -> bool:
    """Give back once what a failed or canceled refund debited (credit and bonus share); a refund not
    recorded yet is recorded as failed with nothing debited. Returns whether money moved."""
    topup = session.scalar(select(Topup).where(Topup.stripe_payment_intent_id == payment_intent_id))
    if topup is None:
        return False
    lock_account(session, topup.company_id)  # one refund change at a time: "given back yet?" cannot go stale
    refund = session.scalar(select(TopupRefund).where(TopupRefund.stripe_refund_id == refund_id)
                            .execution_options(populate_existing=True))
    now = utcnow()
    if refund is None:
        session.add(TopupRefund(topup_id=topup.id, stripe_refund_id=refund_id, refunded_cents=0, amount=0,
                                bonus_reversed=0, status=status, given_back_at=now))
        session.flush()  # a concurrent first report fails here, on the unique refund id
        return False
    if refund.given_back_at is not None:
        return False
    reference = Reference("stripe_refund", refund_id)
    if refund.amount > 0:
        post_entry(session, topup.company_id, EntryType.REFUND_FAILED, refund.amount, reference=reference,
                   actor="stripe", description=f"Refund {refund_id} of top-up #{topup.id} {status}: credited back")
    if refund.bonus_reversed > 0:
        post_entry(session, topup.company_id, EntryType.BONUS, refund.bonus_reversed, reference=reference,
                   actor="stripe", description=f"Bonus share of failed refund, top-up #{topup.id}")
    refund.status, refund.given_back_at = status, now
    topup = session.get(Topup, topup.id, populate_existing=True)
    topup.refunded_amount -= refund.amount
    request_followup(session, Followup.CANCEL_CREDIT_NOTE, refund.id)
    return refund.amount > 0 or refund.bonus_reversed > 0
