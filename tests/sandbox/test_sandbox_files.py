"""The sandbox's files: the SQLite database that outlives a restart (and that processes share), and the fixtures."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import stripe

from stripe_sandbox import SandboxHTTPClient, StripeSandbox
from stripe_sandbox.objects import resolve_fixtures_path
from tests.sandbox.sandbox_helpers import (
    BASE_URL,
    CARD_OK,
    IBAN_OK,
    checkout_page,
    payment_session_params,
    submit,
)


def start(path, clock, deliveries=None):
    sandbox = StripeSandbox(checkout_base_url=BASE_URL, path=path, deliver=deliveries,
                            settle_delay_seconds=None, clock=clock)
    return sandbox, stripe.StripeClient("sk_test_sandbox", http_client=SandboxHTTPClient(sandbox))


def test_objects_events_and_idempotency_keys_survive_a_restart(tmp_path, clock):
    state = tmp_path / "stripe-sandbox.db"
    sandbox, client = start(state, clock)
    customer = client.v1.customers.create(params={"email": "keep@example.com"})
    session = client.v1.checkout.sessions.create(params=payment_session_params(customer.id),
                                                 options={"idempotency_key": "topup-1"})
    submit(checkout_page(sandbox), session, CARD_OK)

    restarted, client = start(state, clock)

    assert client.v1.customers.retrieve(customer.id).email == "keep@example.com"
    assert client.v1.checkout.sessions.retrieve(session.id).payment_status == "paid"
    assert [e["type"] for e in restarted.events] == [e["type"] for e in sandbox.events]
    replay = client.v1.checkout.sessions.create(params=payment_session_params(customer.id),
                                                options={"idempotency_key": "topup-1"})
    assert replay.id == session.id


def test_a_debit_still_processing_at_shutdown_settles_after_the_restart(tmp_path, clock, deliveries):
    state = tmp_path / "stripe-sandbox.db"
    sandbox, client = start(state, clock)
    session = client.v1.checkout.sessions.create(params=payment_session_params(None))
    submit(checkout_page(sandbox), session, IBAN_OK)

    restarted, client = start(state, clock, deliveries)
    restarted.settle_pending()

    assert client.v1.checkout.sessions.retrieve(session.id).payment_status == "paid"
    assert deliveries.types()[-1] == "checkout.session.async_payment_succeeded"


def test_the_state_is_an_sqlite_database_in_wal_mode_committed_by_each_request(tmp_path, clock):
    state = tmp_path / "stripe-sandbox.db"
    _, client = start(state, clock)

    customer = client.v1.customers.create(params={"email": "a@example.com"})

    with sqlite3.connect(state) as reader:
        [mode] = reader.execute("PRAGMA journal_mode").fetchone()
        [data] = reader.execute("SELECT data FROM objects WHERE id = ?", (customer.id,)).fetchone()
    assert mode == "wal"
    assert json.loads(data)["email"] == "a@example.com"


def test_the_fixtures_file_can_be_given_by_the_environment(tmp_path, monkeypatch):
    examples = json.loads(Path(resolve_fixtures_path()).read_text())
    examples["resources"]["customer"]["invoice_prefix"] = "FROMENV"
    moved = tmp_path / "fixtures.json"
    moved.write_text(json.dumps(examples))
    monkeypatch.setenv("STRIPE_FIXTURES_PATH", str(moved))

    sandbox = StripeSandbox()

    assert sandbox.fixtures.path == moved
    assert sandbox.fixtures.example("customer")["invoice_prefix"] == "FROMENV"


def test_a_missing_fixtures_file_says_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError) as raised:
        StripeSandbox(fixtures_path=tmp_path / "nowhere.json")

    assert "nowhere.json" in str(raised.value) and "STRIPE_FIXTURES_PATH" in str(raised.value)
