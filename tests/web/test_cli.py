import json

from sqlalchemy import update

from app.extensions import db

from core.schema import PrepaidBalance
from core.money import eur


def test_verify_ledger_exits_0_when_every_invariant_holds(app, make_company):
    make_company(balance=eur("10"))
    result = app.test_cli_runner().invoke(args=["billing", "verify-ledger"])
    assert result.exit_code == 0 and "ledger OK" in result.output


def test_verify_ledger_names_the_offending_company_and_exits_1(app, make_company):
    company_id, _ = make_company(name="Drift GmbH", balance=eur("10"))
    make_company(name="Fine GmbH", balance=eur("5"))
    with app.app_context():
        db.session.execute(update(PrepaidBalance).where(PrepaidBalance.company_id == company_id).values(balance=eur("11")))
        db.session.commit()
    result = app.test_cli_runner().invoke(args=["billing", "verify-ledger"])
    assert result.exit_code == 1
    assert f"company {company_id} (Drift GmbH)" in result.output and "Fine GmbH" not in result.output
    with app.app_context():  # undo the planted drift for the after-test invariant check
        db.session.execute(update(PrepaidBalance).where(PrepaidBalance.company_id == company_id).values(balance=eur("10")))
        db.session.commit()


def test_show_prints_a_company_by_id_name_or_user_email_as_json(app, make_company):
    company_id, email = make_company(name="Show GmbH", balance=eur("123.45"))
    runner = app.test_cli_runner()
    for key in (str(company_id), "Show GmbH", email.upper()):
        result = runner.invoke(args=["billing", "show", key, "--json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        assert report["company_id"] == company_id
        assert (report["balance"], report["reserved"], report["available"]) == ("123.4500", "0.0000", "123.4500")
        assert report["low_balance_threshold"] == "20.0000" and report["auto_topup_daily_limit"] == 2


def test_show_prints_a_readable_table_and_rejects_unknown_companies(app, make_company):
    make_company(name="Table GmbH", balance=eur("1"))
    runner = app.test_cli_runner()
    assert "balance: 1.0000" in runner.invoke(args=["billing", "show", "Table GmbH"]).output
    missing = runner.invoke(args=["billing", "show", "Nobody Ltd"])
    assert missing.exit_code == 2 and "No company matches" in missing.output


def test_seed_demo_loads_consistent_history_once(app):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["seed-demo"])
    second = runner.invoke(args=["seed-demo"])
    assert "Demo data loaded." in first.output and "nothing changed" in second.output
    assert runner.invoke(args=["billing", "verify-ledger"]).exit_code == 0
    report = json.loads(runner.invoke(args=["billing", "show", "demo@example.com", "--json"]).output)
    assert report["company_name"] == "Muster Telefonie GmbH"
    assert report["rate_per_minute"] == "0.4200" and report["billing_increment_seconds"] == 1
    from core.schema import BalanceTransaction

    with app.app_context():
        months = {row.created_at.strftime("%Y-%m") for row in db.session.query(BalanceTransaction)}
        assert len(months) >= 3
