"""Reconciliation: the ledger against itself, top-ups and refunds against the ledger, and Stripe
against the portal for a date range. Findings are plain values; nothing here changes data.

Checks:
- ledger integrity per company (the three invariants of :func:`core.ledger.postings.verify_ledger`);
- every credited top-up has exactly one ``topup`` credit, every Stripe refund exactly one
  ``topup_refund`` debit (and no credit or debit points at a top-up or refund that is not so);
- every top-up under review (Stripe's report did not match it) until staff credit what was received
  or refund the payment;
- Stripe's side, through the gateway, for ``since``..``until``: payment intents and refunds matched
  one-to-one to local top-ups and refunds; each top-up credited in the range checked against its
  payment intent as Stripe records it (mode, currency, amount received, customer: the evidence a
  credit needs, :func:`core.payments.topups.evidence_problem`), its intents listed in one paged
  listing, not asked one by one; and events Stripe did not deliver or the portal never stored.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import String, cast, func, select
from sqlalchemy.orm import Session

from core.i18n import N_
from core.ledger.postings import verify_ledger
from core.schema import BalanceTransaction, Company, EntryType, Topup, TopupRefund, TopupStatus, WebhookEvent
from core.payments.gateway import PaymentIntent, StripeGateway
from core.payments.topups import Paid, evidence_problem
from core.payments.webhooks import HANDLERS
from core.parsing import id_or_none

# What staff read for each kind of finding (translated where it is shown).
FINDING_LABELS = {
    "ledger_integrity": N_("Ledger out of balance"),
    "topup_credit_count": N_("Top-up credited not exactly once"),
    "refund_debit_count": N_("Refund debited not exactly once"),
    "topup_in_review": N_("Top-up under review"),
    "stripe_payment_not_credited": N_("Stripe payment not credited"),
    "topup_not_paid_in_stripe": N_("Credited top-up not paid in Stripe"),
    "topup_evidence_mismatch": N_("Credited top-up does not match Stripe's payment"),
    "stripe_refund_not_recorded": N_("Stripe refund not booked"),
    "refund_not_in_stripe": N_("Refund not in Stripe"),
    "event_not_delivered": N_("Stripe event not delivered yet"),
    "event_not_received": N_("Stripe event never stored"),
}


@dataclass(frozen=True)
class Finding:
    kind: str  # ledger_integrity | topup_credit_count | refund_debit_count | stripe_payment_not_credited | ...
    company_id: int | None
    company_name: str
    detail: str
    suggested_fix: str
    reference: str = ""  # the object concerned: a top-up id, a Stripe id
    problem: str = ""  # a top-up under review: why (the code evidence_problem gave)


def reconcile(session: Session, gateway: StripeGateway | None = None, *, since: datetime | None = None,
              until: datetime | None = None) -> list[Finding]:
    """All findings; an empty list means the books agree. Stripe is only asked when a gateway is given
    and ``since`` is set (its side is checked for a date range)."""
    findings = (ledger_findings(session) + topup_credit_findings(session) + refund_debit_findings(session)
                + review_findings(session))
    if gateway is not None and since is not None:
        findings += stripe_findings(session, gateway, since, until)
    return findings


def _names(session: Session) -> dict[int, str]:
    return dict(session.execute(select(Company.id, Company.name)).all())


def ledger_findings(session: Session) -> list[Finding]:
    return [
        Finding("ledger_integrity", m.company_id, m.company_name, m.problem,
                "Find the change that bypassed the ledger (audit trail); book the difference as an adjustment "
                "entry with a reason (staff admin), never overwrite the balance or a ledger row.")
        for m in verify_ledger(session)
    ]


def topup_credit_findings(session: Session) -> list[Finding]:
    names = _names(session)
    credits = (
        select(BalanceTransaction.reference_id, func.count().label("n"))
        .where(BalanceTransaction.type == EntryType.TOPUP.value, BalanceTransaction.reference_type == "topup")
        .group_by(BalanceTransaction.reference_id).subquery()
    )
    rows = session.execute(
        select(Topup.id, Topup.company_id, Topup.status, Topup.stripe_payment_intent_id, func.coalesce(credits.c.n, 0))
        .outerjoin(credits, credits.c.reference_id == cast(Topup.id, String))
    ).all()
    findings = []
    for topup_id, company_id, status, intent_id, count in rows:
        credited = status == TopupStatus.CREDITED.value
        if credited and count != 1:
            findings.append(Finding(
                "topup_credit_count", company_id, names.get(company_id, ""),
                f"credited top-up #{topup_id} has {count} credit entries (expected 1)",
                "Reverse the extra credit with an adjustment entry (staff admin)." if count > 1 else
                "Credit the top-up (replay its payment_intent.succeeded event, or book an adjustment with reason).",
                reference=str(topup_id)))
        elif not credited and count:
            findings.append(Finding(
                "topup_credit_count", company_id, names.get(company_id, ""),
                f"top-up #{topup_id} is {status} but has {count} credit entries",
                f"Check payment {intent_id or '-'} in Stripe; if unpaid, reverse the credit with an adjustment entry.",
                reference=str(topup_id)))
    return findings


def refund_debit_findings(session: Session) -> list[Finding]:
    names = _names(session)
    debits = dict(session.execute(
        select(BalanceTransaction.reference_id, func.count())
        .where(BalanceTransaction.type == EntryType.TOPUP_REFUND.value,
               BalanceTransaction.reference_type == "stripe_refund")
        .group_by(BalanceTransaction.reference_id)
    ).all())
    refunds = session.execute(
        select(TopupRefund.stripe_refund_id, Topup.company_id, Topup.id, TopupRefund.amount)
        .join(Topup, Topup.id == TopupRefund.topup_id)
    ).all()
    findings = []
    known = set()
    for refund_id, company_id, topup_id, debited in refunds:
        known.add(refund_id)
        count, expected = debits.get(refund_id, 0), 1 if debited > 0 else 0  # 0: first reported failed
        if count != expected:
            findings.append(Finding(
                "refund_debit_count", company_id, names.get(company_id, ""),
                f"refund {refund_id} of top-up #{topup_id} has {count} debit entries (expected {expected})",
                "Book the missing debit (or reverse the extra one) as an adjustment entry with reason.",
                reference=refund_id))
    orphan_rows = session.execute(
        select(BalanceTransaction.reference_id, BalanceTransaction.company_id)
        .where(BalanceTransaction.type == EntryType.TOPUP_REFUND.value,
               BalanceTransaction.reference_type == "stripe_refund")
    ).all()
    for refund_id, company_id in orphan_rows:
        if refund_id not in known:
            findings.append(Finding(
                "refund_debit_count", company_id, names.get(company_id, ""),
                f"debit for refund {refund_id} has no refund record", "Check the refund in Stripe.",
                reference=refund_id))
    return findings


def review_findings(session: Session) -> list[Finding]:
    names = _names(session)
    return [
        Finding("topup_in_review", topup.company_id, names.get(topup.company_id, ""),
                f"top-up #{topup.id} is under review: {topup.failure_code} ({topup.failure_message or ''})",
                "Check the payment in Stripe; credit what Stripe received, or refund the payment "
                "(a payment of another customer, currency or mode: refund it).",
                reference=str(topup.id), problem=topup.failure_code or "")
        for topup in session.scalars(select(Topup).where(Topup.status == TopupStatus.REVIEW.value).order_by(Topup.id))
    ]


def _unix(value: datetime) -> int:
    return calendar.timegm(value.timetuple())


def stripe_findings(session: Session, gateway: StripeGateway, since: datetime,
                    until: datetime | None = None) -> list[Finding]:
    names = _names(session)
    start, end = _unix(since), (_unix(until) if until else None)
    findings: list[Finding] = []

    # payment intents <-> top-ups: one listing from the creation of the oldest top-up credited in the range
    local = session.scalars(select(Topup).where(Topup.status == TopupStatus.CREDITED.value,
                                                Topup.stripe_payment_intent_id.is_not(None),
                                                Topup.credited_at >= since,
                                                *([Topup.credited_at <= until] if until else []))).all()
    listed_from = min([start] + [_unix(topup.created_at) for topup in local])
    intents = {pi.id: pi for pi in gateway.list_payment_intents_created(listed_from, end)}
    topups = {t.stripe_payment_intent_id: t for t in session.scalars(
        select(Topup).where(Topup.stripe_payment_intent_id.in_(list(intents)))) } if intents else {}
    for intent in intents.values():
        if intent.created is not None and intent.created < start:
            continue  # listed only for a top-up credited in the range
        topup = topups.get(intent.id) or _topup_by_metadata(session, intent)
        company_id = topup.company_id if topup else id_or_none(intent.metadata.get("company_id"))
        name = names.get(company_id, "") if company_id else ""
        if intent.status == "succeeded" and (topup is None or topup.status not in _SETTLED):
            what = "no local top-up" if topup is None else f"top-up #{topup.id} is {topup.status}"
            findings.append(Finding(
                "stripe_payment_not_credited", company_id, name,
                f"Stripe payment {intent.id} succeeded ({intent.amount / 100:.2f} EUR) but {what}",
                "Replay the payment's webhook events (Stripe events page), or open the top-up to confirm with Stripe.",
                reference=intent.id))
    live = not gateway.is_test_mode
    for topup in local:
        intent = intents.get(topup.stripe_payment_intent_id)
        if intent is None or intent.status != "succeeded":
            findings.append(Finding(
                "topup_not_paid_in_stripe", topup.company_id, names.get(topup.company_id, ""),
                f"top-up #{topup.id} is credited but Stripe "
                + (f"does not list {topup.stripe_payment_intent_id}" if intent is None else f"says {intent.status}"),
                "Verify the payment in the Stripe dashboard; if unpaid, reverse the credit with an adjustment entry.",
                reference=str(topup.id)))
        elif problem := evidence_problem(session, topup, Paid.by_intent(intent), live=live):
            findings.append(Finding(
                "topup_evidence_mismatch", topup.company_id, names.get(topup.company_id, ""),
                f"credited top-up #{topup.id} does not match Stripe's payment {intent.id}: {problem[1]}",
                "Check the payment in the Stripe dashboard; book the difference as an adjustment entry with a "
                "reason, or refund what was not the company's.", reference=str(topup.id), problem=problem[0]))

    # refunds <-> topup_refunds
    refunds = [r for r in gateway.list_refunds_created(start, end) if r.status in ("succeeded", "pending")]
    local_refunds = set(session.scalars(select(TopupRefund.stripe_refund_id).where(
        TopupRefund.stripe_refund_id.in_([r.id for r in refunds])))) if refunds else set()
    for refund in refunds:
        if refund.id not in local_refunds:
            topup = topups.get(refund.payment_intent_id) or session.scalar(
                select(Topup).where(Topup.stripe_payment_intent_id == refund.payment_intent_id))
            company_id = topup.company_id if topup else None
            findings.append(Finding(
                "stripe_refund_not_recorded", company_id, names.get(company_id, "") if company_id else "",
                f"Stripe refund {refund.id} ({refund.amount / 100:.2f} EUR) of {refund.payment_intent_id} has no local debit",
                "Replay the charge.refunded event for this payment.", reference=refund.id))
    stripe_refund_ids = {r.id for r in refunds}
    for refund_id, company_id in session.execute(
        select(TopupRefund.stripe_refund_id, Topup.company_id).join(Topup, Topup.id == TopupRefund.topup_id)
        .where(TopupRefund.given_back_at.is_(None), TopupRefund.created_at >= since, *([TopupRefund.created_at <= until] if until else []))
    ).all():
        if refund_id not in stripe_refund_ids:
            findings.append(Finding(
                "refund_not_in_stripe", company_id, names.get(company_id, ""),
                f"local refund {refund_id} is not listed by Stripe", "Verify the refund in the Stripe dashboard.",
                reference=refund_id))

    # events: not delivered by Stripe, or never stored here
    events = [e for e in gateway.list_events_created(start, end) if e.get("type") in HANDLERS]
    stored = set(session.scalars(select(WebhookEvent.stripe_event_id).where(
        WebhookEvent.stripe_event_id.in_([e["id"] for e in events])))) if events else set()
    for event in events:
        if event["id"] in stored:
            continue
        pending = int(event.get("pending_webhooks") or 0)
        findings.append(Finding(
            "event_not_delivered" if pending else "event_not_received", None, "",
            f"Stripe event {event['id']} ({event.get('type')}) "
            + ("is still pending delivery" if pending else "was never stored by the portal"),
            "Check the webhook endpoint; resend the event from the Stripe dashboard (its handlers are idempotent).",
            reference=event["id"]))
    return findings


# A top-up in these statuses accounts for its succeeded payment: credited, paid back instead, or
# under review (a finding of its own).
_SETTLED = (TopupStatus.CREDITED.value, TopupStatus.REFUNDED.value, TopupStatus.REVIEW.value)


def _topup_by_metadata(session: Session, intent: PaymentIntent) -> Topup | None:
    """The top-up a payment intent's own metadata names, while that top-up holds no intent yet (one
    under review: the report that put it there is not trusted with the intent's id)."""
    topup_id = id_or_none(intent.metadata.get("topup_id"))
    topup = session.get(Topup, topup_id) if topup_id else None
    return topup if topup is not None and topup.stripe_payment_intent_id is None else None
