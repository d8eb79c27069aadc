"""Disputes in core: an inquiry moves no money until it becomes a chargeback; refunds and disputes of one
payment together never take back more than it credited."""

from sqlalchemy import select

from core.ledger.postings import verify_ledger
from core.money import eur
from core.payments.disputes import apply_dispute, flagging
from core.payments.gateway import DisputeReport
from core.payments.refunds import apply_refund_report
from core.payments.topups import credit_topup
from core.schema import BalanceTransaction, Dispute, PrepaidBalance, Topup, TopupStatus


def paid_topup(session, company_id, amount=eur("100"), intent="pi_paid"):
    topup = Topup(company_id=company_id, amount=amount, charged_cents=amount // 100, status=TopupStatus.PENDING.value)
    session.add(topup)
    session.flush()
    credit_topup(session, topup.id, payment_intent_id=intent)
    session.commit()
    return topup.id


def report(status, amount=10000, dispute_id="dp_1", intent="pi_paid"):
    return DisputeReport(dispute_id, amount, "eur", status, "general", "ch_1", intent)


def balance(session, company_id):
    return session.get(PrepaidBalance, company_id, populate_existing=True).balance


def test_an_inquiry_moves_no_money_until_it_becomes_a_chargeback_and_then_debits_once(session, make_company):
    company_id, _ = make_company(balance=eur("10"))
    paid_topup(session, company_id)
    apply_dispute(session, report("warning_needs_response"))
    session.commit()
    assert balance(session, company_id) == eur("110") and flagging([session.scalar(select(Dispute))])
    for _ in range(2):
        apply_dispute(session, report("needs_response"))
        session.commit()
    assert balance(session, company_id) == eur("10")
    apply_dispute(session, report("won"))
    apply_dispute(session, report("won"))
    session.commit()
    assert balance(session, company_id) == eur("110")
    assert not flagging([session.scalar(select(Dispute).execution_options(populate_existing=True))])
    assert verify_ledger(session) == []


def test_refunds_and_disputes_of_one_payment_never_take_back_more_than_it_credited(session, make_company):
    company_id, _ = make_company()
    paid_topup(session, company_id)
    apply_refund_report(session, "pi_paid", "re_1", 6000, "succeeded")  # 60 € refunded
    apply_dispute(session, report("needs_response", amount=10000))  # then all 100 € disputed
    session.commit()
    assert balance(session, company_id) == 0  # 60 € and the 40 € left, not 160 €
    assert session.scalar(select(Dispute.debited_cents)) == 4000
    apply_refund_report(session, "pi_paid", "re_1", 6000, "failed")  # the refund fails: 60 € come back
    apply_dispute(session, report("lost"))
    session.commit()
    assert balance(session, company_id) == eur("60")
    types = session.scalars(select(BalanceTransaction.type).order_by(BalanceTransaction.id)).all()
    assert types == ["topup", "topup_refund", "dispute", "refund_failed"]


def test_a_dispute_of_a_payment_that_is_not_ours_is_ignored(session, make_company):
    make_company()
    assert apply_dispute(session, report("needs_response", intent="pi_elsewhere")) is None
    session.commit()
    assert session.scalar(select(Dispute)) is None
