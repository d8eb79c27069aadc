"""Fixtures for the Stripe sandbox's tests: a sandbox, a real StripeClient on it, a checkout app."""

from __future__ import annotations

import pytest
import stripe

from stripe_sandbox import SandboxHTTPClient, StripeSandbox
from tests.sandbox.sandbox_helpers import (
    BASE_URL,
    WEBHOOK_SECRET,
    Deliveries,
    FakeClock,
    checkout_page,
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def deliveries() -> Deliveries:
    return Deliveries()


@pytest.fixture
def sandbox(clock, deliveries) -> StripeSandbox:
    return StripeSandbox(webhook_secret=WEBHOOK_SECRET, checkout_base_url=BASE_URL,
                         deliver=deliveries, settle_delay_seconds=None, clock=clock)


@pytest.fixture
def client(sandbox) -> stripe.StripeClient:
    return stripe.StripeClient("sk_test_sandbox", http_client=SandboxHTTPClient(sandbox))


@pytest.fixture
def page(sandbox):
    return checkout_page(sandbox)


@pytest.fixture
def customer(client):
    return client.v1.customers.create(params={"email": "ada@example.com", "name": "Ada Lovelace"})
