from datetime import datetime, timedelta

from core.accounts.users import create_company
from core.payments.bonuses import best_bonus, create_rule
from core.schema import Topup, TopupStatus
from core.money import eur

NOW = datetime(2026, 11, 1, 12, 0)


def company(session, name="Bonus GmbH"):
    created = create_company(session, name)
    session.commit()
    return created.id


def test_no_rule_means_no_bonus(session):
    assert best_bonus(session, company(session), eur("500"), NOW).amount == 0


def test_the_single_best_applicable_rule_wins(session):
    company_id = company(session)
    create_rule(session, "5 % from 250", eur("250"), percent_basis_points=500)
    create_rule(session, "10 % from 500", eur("500"), percent_basis_points=1000)
    create_rule(session, "20 € from 300", eur("300"), fixed_amount=eur("20"))
    session.commit()
    assert best_bonus(session, company_id, eur("249.99"), NOW).amount == 0
    assert best_bonus(session, company_id, eur("250"), NOW).amount == eur("12.50")
    assert best_bonus(session, company_id, eur("350"), NOW).rule_name == "20 € from 300"  # 20 > 17.50
    assert best_bonus(session, company_id, eur("500"), NOW).amount == eur("50")


def test_a_percentage_bonus_rounds_half_up_once(session):
    company_id = company(session)
    create_rule(session, "7.5 %", eur("10"), percent_basis_points=750)
    session.commit()
    # 7.5 % of 10.01 EUR = 0.750750 EUR -> 7507.5 units -> 7508 units
    assert best_bonus(session, company_id, eur("10.01"), NOW).amount == 7508


def test_rules_apply_only_inside_their_validity_window(session):
    company_id = company(session)
    create_rule(session, "November", eur("50"), fixed_amount=eur("5"),
                valid_from=NOW - timedelta(days=1), valid_until=NOW + timedelta(days=1))
    session.commit()
    assert best_bonus(session, company_id, eur("50"), NOW).amount == eur("5")
    assert best_bonus(session, company_id, eur("50"), NOW + timedelta(days=2)).amount == 0
    assert best_bonus(session, company_id, eur("50"), NOW - timedelta(days=2)).amount == 0


def test_a_first_top_up_rule_applies_only_until_a_top_up_was_credited(session):
    company_id = company(session)
    create_rule(session, "Welcome", eur("10"), fixed_amount=eur("15"), first_topup_only=True)
    create_rule(session, "Always", eur("10"), fixed_amount=eur("1"))
    session.commit()
    assert best_bonus(session, company_id, eur("20"), NOW).rule_name == "Welcome"
    session.add(Topup(company_id=company_id, amount=eur("20"), status=TopupStatus.CREDITED.value))
    session.commit()
    assert best_bonus(session, company_id, eur("20"), NOW).rule_name == "Always"
