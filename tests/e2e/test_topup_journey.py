"""A customer tops up 100 € through the sandbox's hosted checkout page and sees money and bonus."""

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import log_in_as

from core.payments.bonuses import create_rule
from app.extensions import db
from core.money import eur

pytestmark = pytest.mark.e2e


@pytest.fixture
def customer(app, make_company):
    _, email = make_company(name="Browser Aufladung GmbH", balance=eur("5"))
    with app.app_context():
        create_rule(db.session, "Willkommensbonus", eur("100"), fixed_amount=eur("10"))
        db.session.commit()
    return email


def test_customer_tops_up_through_the_hosted_checkout_and_sees_balance_and_bonus(page, live_url, customer):
    log_in_as(page, live_url, customer)
    expect(page.get_by_test_id("test-mode")).to_be_visible()

    page.get_by_test_id("topup-link").click()
    page.get_by_label("100,00\xa0€").check()
    expect(page.get_by_test_id("bonus-preview")).to_contain_text("davon 10,00\xa0€ Bonus")
    page.get_by_test_id("pay").click()

    expect(page).to_have_url(f"{live_url}/sandbox/stripe/checkout/cs_test_" + page.url.rsplit("cs_test_", 1)[-1])
    page.locator("input[name=option][value='card:4242424242424242']").check()
    page.get_by_role("button", name="Pay").click()

    expect(page.get_by_test_id("topup-status")).to_have_attribute("data-status", "credited")
    expect(page.get_by_test_id("topup-bonus")).to_contain_text("10,00\xa0€")
    page.get_by_role("link", name="Zurück zur Übersicht").click()
    expect(page.get_by_test_id("balance")).to_have_text("115,00\xa0€")  # 5 + 100 + 10 bonus
    page.get_by_role("link", name="Buchungen").first.click()
    expect(page.locator("#transactions tbody tr").first).to_contain_text("Willkommensbonus")
