"""Staff reports: each report against seeded ledger rows, top-ups and attempts, the CSV, and who may read."""

from __future__ import annotations

import csv
from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import count

import pytest

from core.backoffice import reports
from core.clock import utcnow
from core.ledger.postings import Reference, post_entry
from app.extensions import db
from core.schema import (
    AutoTopupAttempt, EntryType, Invoice, PrepaidBalance, Role, Topup,
)
from core.money import eur
from core.calls.usage import Period, resolve_range
from tests.conftest import STAFF_PASSWORD
from tests.helpers import log_in

ZONE = "Europe/Berlin"
NOVEMBER_WEEK = resolve_range(Period.CUSTOM, today=date(2026, 11, 30), zone=ZONE,
                              start=date(2026, 11, 2), end=date(2026, 11, 8))
RANGE_QUERY = "?start=2026-11-02&end=2026-11-08"
_refs = count(1)


def _post(company_id: int, entry_type: EntryType, amount: int, at: datetime):
    post_entry(db.session, company_id, entry_type, amount, reference=Reference("seed", str(next(_refs))),
               created_at=at, allow_negative=True)


def _topup_record(company_id: int, amount: int, at: datetime, *, status="failed", kind="checkout",
                  failure_code=None, decline_code=None) -> Topup:
    topup = Topup(company_id=company_id, amount=amount, status=status, kind=kind, failure_code=failure_code,
                  decline_code=decline_code, created_at=at, updated_at=at)
    db.session.add(topup)
    db.session.flush()
    return topup


def _invoice(company_id: int, gross_cents: int, at: datetime):
    sequence = next(_refs)
    db.session.add(Invoice(kind="invoice", number=f"R-2026-{sequence:05d}", year=2026, sequence=sequence,
                           company_id=company_id, language="de", net_cents=gross_cents, vat_cents=0,
                           gross_cents=gross_cents, vat_rate_basis_points=0, pdf=b"%PDF", issued_at=at))


def _attempt(company_id: int, status: str, at: datetime):
    db.session.add(AutoTopupAttempt(company_id=company_id, amount=eur(50), status=status, created_at=at))


@pytest.fixture
def seeded(app, make_company):
    """Two companies with November 2026 activity (UTC times; Berlin is UTC+1 then)."""
    alpha, _ = make_company("Alpha GmbH")
    beta, _ = make_company("Beta AG")
    quiet, _ = make_company("Quiet KG")
    with app.app_context():
        # 3 Nov (local): two top-ups for Alpha, one of them refunded in part; an invoice.
        _post(alpha, EntryType.TOPUP, eur(100), datetime(2026, 11, 3, 9, 0))
        _post(alpha, EntryType.TOPUP, eur(50), datetime(2026, 11, 3, 22, 30))  # 23:30 local: still 3 Nov
        _post(alpha, EntryType.TOPUP_REFUND, -eur(20), datetime(2026, 11, 3, 22, 45))
        _post(alpha, EntryType.CHARGE, -eur("12.5"), datetime(2026, 11, 4, 10, 0))
        _post(alpha, EntryType.REFUND, eur("2.5"), datetime(2026, 11, 4, 11, 0))
        _invoice(alpha, 17_850, datetime(2026, 11, 3, 9, 1))
        # 2 Nov 23:30 UTC is 3 Nov 00:30 local.
        _post(beta, EntryType.TOPUP, eur(1500), datetime(2026, 11, 2, 23, 30))
        # Beta: six top-ups within 24 h on 5/6 Nov → a burst.
        for hour in range(6):
            _post(beta, EntryType.TOPUP, eur(10), datetime(2026, 11, 5, 12, 0) + timedelta(hours=hour * 4))
        # Outside the range: not counted.
        _post(alpha, EntryType.TOPUP, eur(999), datetime(2026, 10, 20, 12, 0))
        # Failed payments.
        _topup_record(alpha, eur(100), datetime(2026, 11, 3, 8, 0), failure_code="card_declined",
                      decline_code="insufficient_funds")
        _topup_record(beta, eur(200), datetime(2026, 11, 4, 8, 0), failure_code="card_declined",
                      decline_code="insufficient_funds")
        _topup_record(beta, eur(50), datetime(2026, 11, 4, 9, 0), kind="auto", failure_code="expired_card")
        _topup_record(beta, eur(50), datetime(2026, 11, 4, 10, 0), status="credited")  # no failure
        # Auto top-up attempts: week of 2 Nov: 3 succeeded, 1 failed, 1 skipped → 75 %.
        for status in ("succeeded", "succeeded", "succeeded", "failed", "skipped"):
            _attempt(alpha, status, datetime(2026, 11, 4, 12, 0))
        db.session.commit()
    return {"alpha": alpha, "beta": beta, "quiet": quiet}


def _login_staff(client, make_staff, role=Role.STAFF_SUPPORT, email="support@example.com"):
    make_staff(role, email)
    response = log_in(client, email, STAFF_PASSWORD)
    assert response.status_code in (302, 303)
    return client


# ---- the core reports ----

def test_daily_revenue_counts_topups_per_local_day_with_refunds_invoices_and_average(app, seeded):
    with app.app_context():
        rows = {row.day: row for row in reports.daily_revenue(db.session, NOVEMBER_WEEK)}
    assert len(rows) == 7
    third = rows[date(2026, 11, 3)]
    # Alpha's 100 + 50 and Beta's 1,500 (2 Nov 23:30 UTC is 3 Nov local).
    assert (third.topups, third.gross, third.refunded) == (3, eur(1650), -eur(20))
    assert third.invoiced_cents == 17_850
    assert third.average == eur(550)
    assert rows[date(2026, 11, 2)].topups == 0 and rows[date(2026, 11, 2)].average is None
    assert rows[date(2026, 11, 5)].topups == 3 and rows[date(2026, 11, 6)].topups == 3


def test_billing_summary_shows_topups_usage_balance_and_auto_topups_per_company(app, seeded):
    with app.app_context():
        rows = {row.company_name: row for row in reports.billing_summary(db.session, NOVEMBER_WEEK)}
    alpha = rows["Alpha GmbH"]
    assert (alpha.topups, alpha.topup_amount, alpha.usage) == (2, eur(150), eur(10))
    assert alpha.balance == eur(999) + eur(150) - eur(20) - eur(10)  # the balance now, from every entry
    assert (alpha.auto_topups_succeeded, alpha.auto_topups_failed) == (3, 1)
    assert rows["Beta AG"].topups == 7 and rows["Beta AG"].topup_amount == eur(1560)
    assert "Quiet KG" not in rows  # no activity and no balance


def test_failed_payment_reasons_group_by_error_and_decline_code(app, seeded):
    with app.app_context():
        rows = reports.failed_payment_reasons(db.session, NOVEMBER_WEEK)
    assert [(r.failure_code, r.decline_code, r.kind, r.count, r.amount) for r in rows] == [
        ("card_declined", "insufficient_funds", "checkout", 2, eur(300)),
        ("expired_card", "", "auto", 1, eur(50)),
    ]


def test_weekly_auto_topup_success_rate_leaves_skipped_attempts_out_of_the_rate(app, seeded):
    with app.app_context():
        weeks = reports.auto_topup_weekly(db.session, NOVEMBER_WEEK)
    assert [week.week_start for week in weeks] == [date(2026, 11, 2)]
    week = weeks[0]
    assert (week.attempts, week.succeeded, week.failed, week.skipped) == (5, 3, 1, 1)
    assert week.success_rate == Decimal("0.75")


def test_suspicious_activity_flags_large_topups_and_more_than_five_in_a_day(app, seeded):
    with app.app_context():
        rows = reports.suspicious_activity(db.session, NOVEMBER_WEEK)
    found = {(row.company_name, row.reason, row.count, row.amount) for row in rows}
    assert found == {("Beta AG", "large_topup", 1, eur(1500)), ("Beta AG", "many_topups", 6, eur(60))}


def test_five_topups_in_a_day_are_not_suspicious(app, make_company):
    company, _ = make_company("Calm GmbH")
    with app.app_context():
        for hour in range(5):
            _post(company, EntryType.TOPUP, eur(10), datetime(2026, 11, 5, 8 + hour))
        _post(company, EntryType.TOPUP, eur(10), datetime(2026, 11, 6, 9))  # a sixth, but 25 h after the first
        db.session.commit()
        assert reports.suspicious_activity(db.session, NOVEMBER_WEEK) == []


def test_never_topped_up_churn_risk_and_low_balance_lists(app, make_company):
    fresh, _ = make_company("Fresh GmbH")
    lapsed, _ = make_company("Lapsed GmbH")
    active, _ = make_company("Active GmbH")
    rich, _ = make_company("Rich but lapsed GmbH")
    now = utcnow()
    with app.app_context():
        _post(lapsed, EntryType.TOPUP, eur(40), now - timedelta(days=61))
        _post(rich, EntryType.TOPUP, eur(500), now - timedelta(days=90))
        _post(active, EntryType.TOPUP, eur(10), now - timedelta(days=59))
        db.session.commit()
        assert [row.company_name for row in reports.never_topped_up(db.session)] == ["Fresh GmbH"]
        churn = reports.churn_risk(db.session, now)
        assert [row.company_name for row in churn] == ["Lapsed GmbH"]
        assert churn[0].balance == eur(40)
        # Default threshold 20 €: Fresh (0) and Active (10) are low; Lapsed (40) and Rich are not.
        assert {row.company_name for row in reports.low_balance(db.session)} == {"Fresh GmbH", "Active GmbH"}
        db.session.get(PrepaidBalance, lapsed).low_balance_threshold = eur(50)
        db.session.commit()
        assert "Lapsed GmbH" in {row.company_name for row in reports.low_balance(db.session)}


# ---- pages and CSV ----

def test_reports_index_lists_every_report_for_support_staff(client, make_staff):
    _login_staff(client, make_staff)
    page = client.get("/admin/reports/")
    assert page.status_code == 200
    for name in ("daily-revenue", "billing-summary", "failed-payments", "auto-topup-success", "suspicious",
                 "never-topped-up", "churn-risk", "low-balance"):
        assert f"/admin/reports/{name}" in page.text
        assert client.get(f"/admin/reports/{name}").status_code == 200
        assert client.get(f"/admin/reports/{name}.csv").status_code == 200
    assert 'href="/admin/reports/"' in client.get("/admin/companies").text  # the nav link


def test_admin_staff_may_read_reports(client, make_staff):
    _login_staff(client, make_staff, Role.STAFF_ADMIN, "admin@example.com")
    assert client.get("/admin/reports/daily-revenue").status_code == 200


def test_anonymous_visitors_are_sent_to_login(client, app):
    response = client.get("/admin/reports/daily-revenue")
    assert response.status_code in (302, 303) and "/login" in response.headers["Location"]
    assert "/login" in client.get("/admin/reports/daily-revenue.csv").headers["Location"]


def test_customers_get_not_found(client, make_company):
    _company, email = make_company()
    log_in(client, email)
    assert client.get("/admin/reports/").status_code == 404
    assert client.get("/admin/reports/low-balance.csv").status_code == 404


def test_unknown_report_is_not_found(client, make_staff):
    _login_staff(client, make_staff)
    assert client.get("/admin/reports/nothing-here").status_code == 404


def test_daily_revenue_page_shows_figures_and_a_trend_chart(client, make_staff, seeded):
    _login_staff(client, make_staff)
    page = client.get(f"/admin/reports/daily-revenue{RANGE_QUERY}", headers={"Accept-Language": "de"})
    assert page.status_code == 200
    assert 'data-testid="report-chart"' in page.text and "<svg" in page.text
    assert "1.650,00\u00a0€" in page.text and "178,50\u00a0€" in page.text and "550,00\u00a0€" in page.text
    assert page.text.count('data-testid="report-row"') == 7


def test_auto_topup_page_has_a_trend_chart_and_the_rate(client, make_staff, seeded):
    _login_staff(client, make_staff)
    page = client.get(f"/admin/reports/auto-topup-success{RANGE_QUERY}")
    assert "<svg" in page.text and "75,0\u00a0%" in page.text


def test_daily_revenue_csv_in_german_uses_semicolons_and_decimal_commas(client, make_staff, seeded):
    _login_staff(client, make_staff)
    response = client.get(f"/admin/reports/daily-revenue.csv{RANGE_QUERY}", headers={"Accept-Language": "de"})
    assert response.mimetype == "text/csv"
    assert 'filename="daily-revenue-2026-11-02-2026-11-08.csv"' in response.headers["Content-Disposition"]
    lines = response.text.lstrip("\ufeff").splitlines()
    assert len(lines) == 8
    assert lines[2] == "2026-11-03;3;1650,0000;-20,0000;178,5000;550,0000"
    assert lines[1] == "2026-11-02;0;0,0000;0,0000;0,0000;"


def test_csv_in_english_uses_commas_and_points(client, make_staff, seeded):
    _login_staff(client, make_staff)
    response = client.get(f"/admin/reports/failed-payments.csv{RANGE_QUERY}", headers={"Accept-Language": "en"})
    lines = response.text.lstrip("\ufeff").splitlines()
    assert lines[0] == "Error code,Decline code,Kind,Count,Amount (EUR)"
    assert lines[1:] == ["card_declined,insufficient_funds,Checkout,2,300.0000", "expired_card,,Automatic,1,50.0000"]
    weekly = client.get(f"/admin/reports/auto-topup-success.csv{RANGE_QUERY}", headers={"Accept-Language": "en"})
    assert weekly.text.lstrip("\ufeff").splitlines()[1] == "2026-11-02,5,3,1,0,1,75.00"


def test_suspicious_csv_lists_local_times(client, make_staff, seeded):
    _login_staff(client, make_staff)
    response = client.get(f"/admin/reports/suspicious.csv{RANGE_QUERY}", headers={"Accept-Language": "en"})
    lines = response.text.lstrip("\ufeff").splitlines()
    assert lines[0] == "Id,Company,Reason,First top-up,Last top-up,Top-ups,Amount (EUR)"
    rows = list(csv.reader(lines[1:]))
    assert [row[2:] for row in rows] == [  # newest first; local times (2 Nov 23:30 UTC is 3 Nov 00:30 in Berlin)
        ["More than 5 top-ups in 24 hours", "2026-11-05 13:00:00", "2026-11-06 09:00:00", "6", "60.0000"],
        ["Top-up over 1,000 €", "2026-11-03 00:30:00", "2026-11-03 00:30:00", "1", "1500.0000"],
    ]


def test_a_bad_range_is_a_400_with_the_reason(client, make_staff):
    _login_staff(client, make_staff)
    response = client.get("/admin/reports/daily-revenue?start=2026-11-08&end=2026-11-02")
    assert response.status_code == 400 and 'role="alert"' in response.text
    assert client.get("/admin/reports/daily-revenue.csv?start=2026-11-08&end=2026-11-02").status_code == 400
