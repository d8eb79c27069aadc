"""Staff company list and company page; the role matrix over every staff route."""

import re

import pytest
from sqlalchemy import select

from app.extensions import db

from core.schema import AuditRecord, BillingRate, Company, PrepaidBalance, Role
from core.money import eur
from tests.helpers import csrf_token_from, log_in

STAFF_PASSWORD = "staff-password-1"


@pytest.fixture
def admin(client, make_staff):
    log_in(client, make_staff(Role.STAFF_ADMIN, "admin@example.com"), STAFF_PASSWORD)
    return client


def names(html: str) -> list[str]:
    return re.findall(r'data-testid="company-row">\s*<td>\d+</td>\s*<td><a href="[^"]+">([^<]+)</a>', html)


def test_companies_are_searched_filtered_sorted_and_paged(app, admin, make_company):
    ids = {name: make_company(name=name, balance=balance)[0] for name, balance in
           [("Alpha GmbH", eur("5")), ("Beta AG", eur("500")), ("Gamma KG", eur("50"))]}
    assert names(admin.get("/admin/companies").text) == ["Alpha GmbH", "Beta AG", "Gamma KG"]
    assert "Alpha GmbH" in admin.get("/admin/companies?flag=low").text
    assert "Beta AG" not in admin.get("/admin/companies?flag=low").text
    by_balance = names(admin.get("/admin/companies?sort=balance").text)
    assert by_balance == ["Alpha GmbH", "Gamma KG", "Beta AG"]
    assert "Gamma KG" in admin.get(f"/admin/companies?q={ids['Gamma KG']}").text
    partial = admin.get("/admin/companies?q=beta", headers={"HX-Request": "true"})
    assert partial.text.strip().startswith('<div id="company-rows"') and "Beta AG" in partial.text
    assert admin.get("/admin/companies?after=garbage").status_code == 400


def test_the_list_pages_with_a_cursor(app, admin, make_company):
    for number in range(55):
        make_company(name=f"Firma {number:03d} GmbH")
    first = admin.get("/admin/companies").text
    next_link = re.search(r'href="(/admin/companies\?after=[^"]+)"', first).group(1).replace("&amp;", "&")
    second = admin.get(next_link).text
    assert "Firma 049 GmbH" in first and "Firma 050 GmbH" not in first
    assert "Firma 050 GmbH" in second and "Firma 054 GmbH" in second


def test_the_company_page_shows_balances_and_every_tab(app, admin, make_company):
    company_id, _ = make_company(name="Tabs GmbH", balance=eur("12.34"))
    page = admin.get(f"/admin/companies/{company_id}").text
    assert "Tabs GmbH" in page and 'data-testid="staff-balance">12,34\xa0€<' in page
    for tab in ("ledger", "topups", "calls", "invoices", "auto_topup", "events", "emails", "audit"):
        partial = admin.get(f"/admin/companies/{company_id}?tab={tab}", headers={"HX-Request": "true", "HX-Target": "tab-content"})
        assert partial.status_code == 200 and "<html" not in partial.text
    assert admin.get(f"/admin/companies/{company_id}?tab=secrets").status_code == 404
    assert admin.get("/admin/companies/999999").status_code == 404


def test_blocking_changes_rate_and_threshold_are_audited(app, admin, make_company):
    company_id, _ = make_company()
    token = csrf_token_from(admin.get(f"/admin/companies/{company_id}").text)
    admin.post(f"/admin/companies/{company_id}/block", data={"block": "1", "reason": "Zahlungsausfall", "csrf_token": token})
    admin.post(f"/admin/companies/{company_id}/rate", data={"rate_per_minute": "0,35", "increment": "60",
                                                           "reason": "Neuer Vertrag", "csrf_token": token})
    admin.post(f"/admin/companies/{company_id}/threshold", data={"threshold": "50", "reason": "Wunsch", "csrf_token": token})
    with app.app_context():
        assert db.session.get(Company, company_id).blocked_reason == "Zahlungsausfall"
        rates = db.session.scalars(select(BillingRate).where(BillingRate.company_id == company_id)).all()
        assert sorted(r.rate_per_minute for r in rates) == [eur("0.35"), eur("0.42")]  # history kept
        assert db.session.get(PrepaidBalance, company_id).low_balance_threshold == eur("50")
        actions = db.session.scalars(select(AuditRecord.action).order_by(AuditRecord.id)).all()
        assert actions == ["company.block", "company.rate", "company.threshold"]
    assert "Zahlungsausfall" in admin.get(f"/admin/companies/{company_id}?tab=audit").text


def test_a_change_without_a_reason_changes_nothing(app, admin, make_company):
    company_id, _ = make_company()
    token = csrf_token_from(admin.get(f"/admin/companies/{company_id}").text)
    answer = admin.post(f"/admin/companies/{company_id}/block", data={"block": "1", "reason": " ", "csrf_token": token})
    assert answer.status_code == 303
    assert "Bitte geben Sie einen Grund an." in admin.get(answer.headers["Location"]).text
    with app.app_context():
        assert db.session.get(Company, company_id).blocked_at is None
        assert db.session.scalar(select(AuditRecord.id)) is None


def staff_routes(app):
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if getattr(view, "allowed_roles", None) is not None:
            yield rule, view


def fill(rule, company_id):
    return re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(company_id), rule.rule)


def test_the_role_matrix_over_every_staff_route(app, client, make_company, make_staff):
    """Anonymous → login; customer → 404; support → 403 (audited) exactly where only admins may act."""
    company_id, customer_email = make_company()
    routes = list(staff_routes(app))
    assert len(routes) >= 5
    for rule, view in routes:
        method = "GET" if "GET" in rule.methods else "POST"
        anonymous = app.test_client().open(fill(rule, company_id), method=method)
        assert anonymous.status_code in (303, 400), rule  # POST without CSRF may be refused first
    customer = app.test_client()
    log_in(customer, customer_email)
    support = app.test_client()
    log_in(support, make_staff(Role.STAFF_SUPPORT, "support-matrix@example.com"), STAFF_PASSWORD)
    token = csrf_token_from(support.get("/admin/companies").text)
    for rule, view in routes:
        method = "GET" if "GET" in rule.methods else "POST"
        data = {"csrf_token": token} if method == "POST" else None
        assert customer.open(fill(rule, company_id), method=method, data=data).status_code in (404, 400), rule
        answer = support.open(fill(rule, company_id), method=method, data=data)
        if "staff_support" in view.allowed_roles:
            assert answer.status_code != 403, rule
        else:
            assert answer.status_code == 403, rule
    with app.app_context():
        denied = db.session.scalars(select(AuditRecord).where(AuditRecord.outcome == "denied")).all()
    admin_only = [rule for rule, view in routes if "staff_support" not in view.allowed_roles]
    assert len(denied) == len(admin_only) > 0


def test_staff_switch_automatic_top_up_off_and_on_only_when_it_is_set_up(app, admin, make_company):
    company_id, _ = make_company()
    token = csrf_token_from(admin.get(f"/admin/companies/{company_id}").text)
    refused = admin.post(f"/admin/companies/{company_id}/auto-topup", data={"block": "1", "reason": "Kunde bat darum",
                                                                            "csrf_token": token})
    assert "noch keine Zahlungsmethode" in admin.get(refused.headers["Location"]).text
    with app.app_context():
        account = db.session.get(PrepaidBalance, company_id)
        account.auto_topup_payment_method_id, account.auto_topup_amount = "pm_x", eur("50")
        account.auto_topup_threshold, account.auto_topup_consecutive_failures = eur("10"), 3
        db.session.commit()
    admin.post(f"/admin/companies/{company_id}/auto-topup", data={"block": "1", "reason": "Kunde bat darum", "csrf_token": token})
    with app.app_context():
        account = db.session.get(PrepaidBalance, company_id)
        assert account.auto_topup_enabled and account.auto_topup_consecutive_failures == 0
    admin.post(f"/admin/companies/{company_id}/auto-topup", data={"block": "0", "reason": "Karte gesperrt", "csrf_token": token})
    with app.app_context():
        assert not db.session.get(PrepaidBalance, company_id).auto_topup_enabled
        assert db.session.scalars(select(AuditRecord.action)).all() == ["company.auto_topup", "company.auto_topup"]


def test_a_blocked_company_sees_why_and_cannot_top_up(app, admin, make_company):
    from tests.stripe_helpers import start_topup

    company_id, email = make_company()
    token = csrf_token_from(admin.get(f"/admin/companies/{company_id}").text)
    admin.post(f"/admin/companies/{company_id}/block", data={"block": "1", "reason": "Rücklastschrift", "csrf_token": token})
    customer = app.test_client()
    log_in(customer, email)
    assert "Ihr Konto ist gesperrt: Rücklastschrift." in customer.get("/business/billing").text
    refused = start_topup(customer, "100")
    assert refused.status_code == 422 and "keine Aufladungen möglich" in refused.text


def test_the_audit_page_lists_every_staff_action_and_filters_by_company(app, admin, make_company):
    first, _ = make_company()
    second, _ = make_company()
    token = csrf_token_from(admin.get(f"/admin/companies/{first}").text)
    for company_id in (first, second):
        admin.post(f"/admin/companies/{company_id}/threshold", data={"threshold": "30", "reason": f"r{company_id}",
                                                                    "csrf_token": token})
    page = admin.get("/admin/audit").text
    assert page.count('data-testid="audit-record"') == 2 and "127.0.0.1" in page
    only_first = admin.get(f"/admin/audit?company={first}").text
    assert only_first.count('data-testid="audit-record"') == 1 and f"r{first}" in only_first


def test_double_submitted_manage_forms_change_nothing_the_second_time(app, admin, make_company):
    company_id, _ = make_company()
    token = csrf_token_from(admin.get(f"/admin/companies/{company_id}").text)
    for _ in range(2):
        admin.post(f"/admin/companies/{company_id}/block", data={"block": "1", "reason": "Sperre", "csrf_token": token})
        admin.post(f"/admin/companies/{company_id}/rate", data={"rate_per_minute": "0,35", "increment": "1",
                                                               "reason": "Vertrag", "csrf_token": token})
        admin.post(f"/admin/companies/{company_id}/threshold", data={"threshold": "40", "reason": "x", "csrf_token": token})
    with app.app_context():
        assert len(db.session.scalars(select(BillingRate).where(BillingRate.company_id == company_id)).all()) == 2
        assert db.session.scalars(select(AuditRecord.action).order_by(AuditRecord.id)).all() == [
            "company.block", "company.rate", "company.threshold"]


@pytest.mark.parametrize("increment", ["١٢", "²", "9" * 400, "60\x00"])
def test_a_rate_whose_increment_is_not_ascii_digits_changes_nothing(app, admin, make_company, increment):
    company_id, _ = make_company()
    token = csrf_token_from(admin.get(f"/admin/companies/{company_id}").text)
    answer = admin.post(f"/admin/companies/{company_id}/rate", data={"rate_per_minute": "0,35", "increment": increment,
                                                                    "reason": "Neuer Vertrag", "csrf_token": token})
    assert answer.status_code in (303, 400)
    with app.app_context():
        rates = db.session.scalars(select(BillingRate).where(BillingRate.company_id == company_id)).all()
        assert [rate.rate_per_minute for rate in rates] == [eur("0.42")]
