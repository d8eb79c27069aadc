"""Shared helpers for the Stripe sandbox's tests (imported by conftest.py and the tests)."""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import threading
from urllib.parse import urlencode, urlsplit

from werkzeug.serving import make_server

WEBHOOK_SECRET = "whsec_test_sandbox_secret"
BASE_URL = "http://portal.test"
START = 1_750_000_000


class FakeClock:
    def __init__(self, now: float = START):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Deliveries:
    """Collects webhook deliveries: (payload, Stripe-Signature header)."""

    def __init__(self):
        self.received: list[tuple[str, str]] = []

    def __call__(self, payload: str, signature: str) -> None:
        self.received.append((payload, signature))

    def events(self) -> list[dict]:
        return [json.loads(payload) for payload, _ in self.received]

    def types(self) -> list[str]:
        return [event["type"] for event in self.events()]

    def of_type(self, event_type: str) -> list[dict]:
        return [event for event in self.events() if event["type"] == event_type]


def payment_session_params(customer_id: str | None, amount: int = 2500, **extra) -> dict:
    params = {
        "mode": "payment",
        "payment_method_types": ["card", "sepa_debit"],
        "line_items": [{
            "price_data": {"currency": "eur", "unit_amount": amount,
                           "product_data": {"name": "Prepaid top-up"}},
            "quantity": 1,
        }],
        "payment_intent_data": {"metadata": {"topup_id": "5"}, "description": "Prepaid top-up"},
        "metadata": {"topup_id": "5"},
        "client_reference_id": "account-42",
        "locale": "de",
        "success_url": f"{BASE_URL}/topups/done?session_id={{CHECKOUT_SESSION_ID}}",
        "cancel_url": f"{BASE_URL}/topups/cancelled",
    }
    if customer_id:
        params["customer"] = customer_id
    params.update(extra)
    return params


def checkout_page(sandbox):
    """A Flask test client for an app that mounts only the sandbox's hosted checkout page."""
    from flask import Flask
    from stripe_sandbox import create_checkout_blueprint

    app = Flask(__name__)
    app.register_blueprint(create_checkout_blueprint(sandbox))
    return app.test_client()


def page_path(session) -> str:
    return session.url.removeprefix(BASE_URL)


def form_token(html: str) -> str:
    return re.search(r'name="sandbox_token" value="([^"]+)"', html).group(1)


def submit(page, session, option: str, **fields):
    """Open the hosted page and press Pay with `option` (e.g. "card:4242424242424242")."""
    html = page.get(page_path(session)).get_data(as_text=True)
    return page.post(f"{page_path(session)}/pay",
                     data={"sandbox_token": form_token(html), "option": option, **fields})


def authenticate(page, session, action: str):
    html = page.get(page_path(session)).get_data(as_text=True)
    return page.post(f"{page_path(session)}/authenticate",
                     data={"sandbox_token": form_token(html), "action": action})


CARD_OK = "card:4242424242424242"
CARD_INSUFFICIENT_FUNDS = "card:4000000000009995"
CARD_AUTHENTICATION = "card:4000002500003155"
IBAN_OK = "sepa:DE89370400440532013000"
IBAN_FAILS = "sepa:DE62370400440532013001"


def save_payment_method(client, page, customer_id: str, option: str) -> str:
    """Run a setup-mode Checkout Session on the hosted page; returns the saved PaymentMethod id."""
    session = client.v1.checkout.sessions.create(params={
        "mode": "setup",
        "customer": customer_id,
        "currency": "eur",
        "locale": "de",
        "payment_method_types": ["card", "sepa_debit"],
        "setup_intent_data": {"metadata": {"purpose": "auto-top-up"}},
        "success_url": f"{BASE_URL}/methods/saved?session_id={{CHECKOUT_SESSION_ID}}",
        "cancel_url": f"{BASE_URL}/methods",
    })
    response = submit(page, session, option)
    if option == CARD_AUTHENTICATION:
        response = authenticate(page, session, "complete")
    assert response.status_code == 303, response.get_data(as_text=True)
    done = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["setup_intent"]})
    return done.setup_intent.payment_method


@contextlib.contextmanager
def serve(app):
    """Serve a WSGI app on 127.0.0.1 (a free port) in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


def http_post_form(url: str, fields: dict) -> tuple[int, dict]:
    """POST a form without following redirects; returns (status, headers)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request("POST", parts.path, body=urlencode(fields),
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
        response = connection.getresponse()
        response.read()
        return response.status, dict(response.getheaders())
    finally:
        connection.close()


def http_get(url: str) -> tuple[int, str]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request("GET", parts.path)
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8")
    finally:
        connection.close()
