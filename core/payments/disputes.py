"""Disputes: card chargebacks and SEPA Direct Debit returns, days or weeks after a top-up was credited.

Every dispute event (``charge.dispute.created``, ``.updated``, ``.closed``, ``.funds_withdrawn``,
``.funds_reinstated``) carries the whole dispute as it is now, so all of them go through
:func:`apply_dispute`, and their order and repetition do not matter:

- The first report of a dispute that moves money (any status but an inquiry's ``warning_*``) debits
  once what it takes back, with the arithmetic of a refund (:func:`core.payments.topups.refund_debit`):
  the credit share and the bonus share of the disputed cents, never more than the payment credited
  minus what its refunds and other disputes hold. The entries (``dispute`` and ``bonus_reversal``) are
  referenced by the Stripe dispute id, the record is unique by it. The balance may go negative: the
  bank has the money back already; new calls are then refused as for any negative balance.
- Status ``won`` gives back once what was debited (``dispute_won`` and ``bonus`` entries); ``lost``
  keeps it. A closed dispute is final: a late, older report does not reopen it. ``funds_withdrawn``
  and ``funds_reinstated`` are reports like the others, so they cannot double anything.
- The customer is emailed once per dispute that moved money (follow-up ``NOTIFY_DISPUTE``); the
  company is flagged while it has a dispute that was not won (:func:`company_disputes`), for staff
  and the customer alike.

Nothing here commits; the entry point (the webhook endpoint) does.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.clock import utcnow
from core.followups import Followup, request_followup
from core.ledger.postings import Reference, lock_account, post_entry
from core.payments.gateway import DisputeReport
from core.payments.topups import refund_debit
from core.schema import CLOSED_DISPUTE_STATUSES, Company, Dispute, DisputeStatus, EntryType, Topup

NOT_FLAGGING = (DisputeStatus.WON.value, DisputeStatus.WARNING_CLOSED.value)


def moves_money(status: str) -> bool:
    """An inquiry (``warning_*``) asks questions; every other dispute has taken the money back."""
    return not status.startswith("warning_")


def apply_dispute(session: Session, report: DisputeReport) -> Dispute | None:
    """Bring our record of the dispute in line with Stripe's report (see the module doc); None when
    the disputed payment is not one of our top-ups."""
    topup = session.scalar(select(Topup).where(Topup.stripe_payment_intent_id == report.payment_intent_id))
    if topup is None:
        return None
    lock_account(session, topup.company_id)  # one change at a time: the cap sees every refund and dispute
    dispute = session.scalar(select(Dispute).where(Dispute.stripe_dispute_id == report.id)
                             .execution_options(populate_existing=True))
    if dispute is None:
        dispute = Dispute(stripe_dispute_id=report.id, company_id=topup.company_id, topup_id=topup.id,
                          charge_id=report.charge_id, status=report.status, reason=report.reason[:100],
                          disputed_cents=report.amount, debited_cents=0, amount=0, bonus_reversed=0)
        session.add(dispute)
        session.flush()  # a concurrent first report fails here, on the unique dispute id
        if moves_money(report.status):
            _debit(session, topup, dispute)
    elif dispute.is_open:
        if moves_money(report.status) and not moves_money(dispute.status):  # an inquiry became a chargeback
            _debit(session, topup, dispute)
        dispute.status, dispute.reason = report.status, report.reason[:100]
    else:
        return dispute  # closed: final
    if report.status in CLOSED_DISPUTE_STATUSES:
        dispute.closed_at = dispute.closed_at or utcnow()
    if report.status == DisputeStatus.WON.value and dispute.given_back_at is None:
        _give_back(session, topup, dispute)
    return dispute


def _debit(session: Session, topup: Topup, dispute: Dispute) -> None:
    debit = refund_debit(session, topup, dispute.disputed_cents)
    reference = Reference("stripe_dispute", dispute.stripe_dispute_id)
    if debit.amount > 0:
        post_entry(session, topup.company_id, EntryType.DISPUTE, -debit.amount, reference=reference, actor="stripe",
                   description=f"Payment of top-up #{topup.id} disputed ({dispute.reason})", allow_negative=True)
    if debit.bonus_back > 0:
        post_entry(session, topup.company_id, EntryType.BONUS_REVERSAL, -debit.bonus_back, reference=reference,
                   actor="stripe", description=f"Bonus share of disputed top-up #{topup.id}", allow_negative=True)
    dispute.debited_cents, dispute.amount, dispute.bonus_reversed = debit.cents, debit.amount, debit.bonus_back
    request_followup(session, Followup.NOTIFY_DISPUTE, dispute.id)


def _give_back(session: Session, topup: Topup, dispute: Dispute) -> None:
    reference = Reference("stripe_dispute", dispute.stripe_dispute_id)
    if dispute.amount > 0:
        post_entry(session, topup.company_id, EntryType.DISPUTE_WON, dispute.amount, reference=reference,
                   actor="stripe", description=f"Dispute of top-up #{topup.id} won: credited back")
    if dispute.bonus_reversed > 0:
        post_entry(session, topup.company_id, EntryType.BONUS, dispute.bonus_reversed, reference=reference,
                   actor="stripe", description=f"Bonus share of won dispute, top-up #{topup.id}")
    dispute.given_back_at = utcnow()


# -- reading ----------------------------------------------------------------------------------------

def company_disputes(session: Session, company_id: int) -> list[Dispute]:
    """The company's disputes, newest first."""
    return list(session.scalars(select(Dispute).where(Dispute.company_id == company_id)
                                .order_by(Dispute.created_at.desc(), Dispute.id.desc())))


def flagging(disputes: list[Dispute]) -> list[Dispute]:
    """Those of these disputes that flag their company: open or lost (not won, not a closed inquiry)."""
    return [dispute for dispute in disputes if dispute.status not in NOT_FLAGGING]


@dataclass(frozen=True)
class DisputeRow:
    dispute: Dispute
    company_name: str


def recent_disputes(session: Session, *, open_only: bool = False, limit: int = 200) -> list[DisputeRow]:
    """Disputes of every company for staff, newest first; ``open_only``: those still undecided."""
    query = (select(Dispute, Company.name).join(Company, Company.id == Dispute.company_id)
             .order_by(Dispute.created_at.desc(), Dispute.id.desc()).limit(limit))
    if open_only:
        query = query.where(Dispute.status.not_in(CLOSED_DISPUTE_STATUSES))
    return [DisputeRow(dispute, name) for dispute, name in session.execute(query).all()]
