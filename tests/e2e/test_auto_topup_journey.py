"""A customer saves a card, turns on automatic top-up, and calls reported through the API trigger it."""

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from core.calls.api_keys import create_api_key
from app.extensions import db
from core.schema import AutoTopupAttempt
from core.money import eur
from tests.e2e.browser import log_in_as

pytestmark = pytest.mark.e2e


@pytest.fixture
def customer(app, make_company):
    company_id, email = make_company(name="Browser Automatik GmbH", balance=eur("25"))
    with app.app_context():
        key = create_api_key(db.session, company_id, "Telefonanlage")[1]
        db.session.commit()
    return company_id, email, key


def attempt_count(app, company_id) -> int:
    with app.app_context():
        return len(db.session.scalars(select(AutoTopupAttempt.id).where(AutoTopupAttempt.company_id == company_id)).all())


def test_customer_sets_up_automatic_top_up_and_a_low_balance_tops_itself_up(app, page, live_url, customer):
    company_id, email, key = customer
    log_in_as(page, live_url, email)

    # Save a card on the sandbox's hosted page (Checkout in setup mode).
    page.get_by_role("link", name="Zahlungsmethoden").click()
    page.get_by_role("button", name="Karte oder SEPA-Konto hinzufügen").click()
    page.locator("input[name=option][value='card:4242424242424242']").check()
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_test_id("payment-method")).to_have_count(1)

    # Turn on automatic top-up: 100 € when the available balance falls below 20 €.
    page.get_by_role("link", name="Automatische Aufladung").click()
    expect(page.locator("#auto-topup-history")).to_be_visible()
    page.locator("#enabled").check()
    page.locator("#threshold").fill("20")
    page.locator("#amount").fill("100")
    page.locator("#payment_method").select_option(index=1)
    page.get_by_test_id("save-auto-topup").click()
    expect(page.locator(".notice-success")).to_be_visible()
    expect(page.locator("#enabled")).to_be_checked()
    expect(page.locator("#amount")).to_have_value("100")

    # The telephony platform reports 5-minute calls (2,10 € each) until the balance is below 20 €.
    fired_at = None
    for number in range(1, 6):
        answer = page.request.post(f"{live_url}/api/v1/calls/browser-{number}/end", data={"duration_seconds": 300},
                                   headers={"Authorization": f"Bearer {key}"})
        assert answer.ok, answer.text()
        if attempt_count(app, company_id):
            fired_at = number
            break
    assert fired_at == 3  # 25 → 22,90 → 20,80 → 18,70 €

    page.reload()
    row = page.get_by_test_id("auto-topup-attempt")
    expect(row).to_have_count(1)
    expect(row).to_have_attribute("data-status", "succeeded")
    expect(row).to_contain_text("100,00\xa0€")

    page.get_by_role("link", name="Übersicht").first.click()
    expect(page.get_by_test_id("balance")).to_have_text("118,70\xa0€")  # 25 − 3 × 2,10 + 100
    expect(page.get_by_test_id("auto-topup")).to_have_text("Automatische Aufladung: an")
