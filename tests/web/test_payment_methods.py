"""Saved payment methods: added through Checkout in setup mode, listed, chosen for auto top-up, removed."""

import re

from app.extensions import db

from core.schema import PrepaidBalance
from tests.helpers import csrf_token_from, log_in
from tests.stripe_helpers import CARD_OK, IBAN_OK, path_of, pay, top_up


def add_method(client, option):
    page = client.get("/business/billing/payment-methods").text
    started = client.post("/business/billing/payment-methods", data={"csrf_token": csrf_token_from(page)})
    assert started.status_code == 303 and "/sandbox/stripe/checkout/cs_" in started.headers["Location"]
    done = pay(client, started.headers["Location"], option)
    assert done.status_code == 303 and "/business/billing/payment-methods?added=1" in done.headers["Location"]
    return client.get(path_of(done.headers["Location"])).text


def method_ids(page):
    return re.findall(r"/business/billing/payment-methods/(pm_[A-Za-z0-9]+)/remove", page)


def test_a_card_and_a_sepa_account_are_added_and_listed(client, make_company):
    _, email = make_company()
    log_in(client, email)
    assert "Noch keine gespeicherten Zahlungsmethoden." in client.get("/business/billing/payment-methods").text
    add_method(client, CARD_OK)
    page = add_method(client, IBAN_OK)
    assert "Visa •••• 4242" in page and "SEPA-Lastschrift •••• 3000" in page
    assert len(method_ids(page)) == 2


def test_saving_the_method_during_a_top_up_lists_it(client, make_company):
    _, email = make_company()
    log_in(client, email)
    top_up(client, "20", save=True)
    assert "Visa •••• 4242" in client.get("/business/billing/payment-methods").text


def test_choosing_and_removing_the_auto_top_up_method(app, client, make_company):
    company_id, email = make_company()
    log_in(client, email)
    page = add_method(client, CARD_OK)
    method_id = method_ids(page)[0]
    chosen = client.post(f"/business/billing/payment-methods/{method_id}/auto-topup",
                         data={"csrf_token": csrf_token_from(page)})
    assert chosen.status_code == 303
    page = client.get("/business/billing/payment-methods").text
    assert "für automatische Aufladungen" in page
    with app.app_context():
        assert db.session.get(PrepaidBalance, company_id).auto_topup_payment_method_id == method_id
    removed = client.post(f"/business/billing/payment-methods/{method_id}/remove", data={"csrf_token": csrf_token_from(page)})
    assert removed.status_code == 303
    assert method_id not in client.get("/business/billing/payment-methods").text
    with app.app_context():
        account = db.session.get(PrepaidBalance, company_id)
        assert account.auto_topup_payment_method_id is None and not account.auto_topup_enabled


def test_another_companys_payment_method_is_not_found(app, client, make_company):
    _, email = make_company(name="Eins GmbH")
    _, other_email = make_company(name="Zwei GmbH")
    other = app.test_client()
    log_in(other, other_email)
    foreign_id = method_ids(add_method(other, CARD_OK))[0]
    log_in(client, email)
    token = csrf_token_from(client.get("/business/billing/payment-methods").text)
    assert client.post(f"/business/billing/payment-methods/{foreign_id}/remove", data={"csrf_token": token}).status_code == 404
    assert client.post(f"/business/billing/payment-methods/{foreign_id}/auto-topup", data={"csrf_token": token}).status_code == 404
    assert client.post("/business/billing/payment-methods/not-a-method/remove", data={"csrf_token": token}).status_code == 404
    assert foreign_id in other.get("/business/billing/payment-methods").text


def test_members_see_methods_but_cannot_change_them(client, make_company):
    _, email = make_company(member=True)
    log_in(client, email)
    page = client.get("/business/billing/payment-methods").text
    assert "Karte oder SEPA-Konto hinzufügen" not in page
    assert client.post("/business/billing/payment-methods", data={"csrf_token": csrf_token_from(page)}).status_code == 403


def test_payment_method_actions_need_csrf(client, make_company):
    _, email = make_company()
    log_in(client, email)
    assert client.post("/business/billing/payment-methods").status_code == 400
