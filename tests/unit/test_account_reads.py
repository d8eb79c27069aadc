"""The reads every page makes: the signed-in user and the dashboard's account summary."""

from datetime import datetime

from core.accounts.users import find_user_by_email, signed_in_user
from core.calls.live import CallPolicy, start_call
from core.ledger.balances import account_summary
from core.money import eur
from tests.round_trips import statements_sent
from core.schema import Role



def test_the_account_summary_comes_from_one_statement_with_balance_rate_and_live_calls(session, make_company):
    company_id, _ = make_company(name="Summe GmbH", balance=eur("12.34"), created_at=datetime(2026, 1, 1))
    start_call(session, company_id, "live-1", started_at=datetime(2026, 11, 21, 10, 0), policy=CallPolicy())
    session.commit()
    with statements_sent(session.get_bind()) as statements:
        summary = account_summary(session, company_id)
    session.rollback()
    assert len(statements) == 1
    assert (summary.company_name, summary.balance, summary.live_calls) == ("Summe GmbH", eur("12.34"), 1)
    assert summary.reserved > 0 and summary.available == summary.balance - summary.reserved
    assert summary.rate_per_minute == eur("0.42")
    assert summary.minutes_left == summary.available // eur("0.42")


def test_the_signed_in_user_comes_from_one_statement_with_the_companys_standing(session, make_company):
    company_id, email = make_company(member=True)
    user_id = find_user_by_email(session, email).id
    session.rollback()
    with statements_sent(session.get_bind()) as statements:
        user = signed_in_user(session, user_id)
    assert signed_in_user(session, user_id + 10_000) is None
    session.rollback()
    assert len(statements) == 1
    assert (user.id, user.email, user.role, user.company_id) == (user_id, email, Role.COMPANY_MEMBER.value, company_id)
    assert user.is_active and user.company.blocked_at is None
