"""Several sandboxes on one database file are one Stripe: what the server, RQ workers and CLI
commands each open (threads and processes here)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import stripe

import stripe_sandbox.sandbox as sandbox_module
from stripe_sandbox import SandboxHTTPClient, StripeSandbox
from tests.sandbox.sandbox_helpers import (
    BASE_URL,
    IBAN_OK,
    WEBHOOK_SECRET,
    Deliveries,
    checkout_page,
    payment_session_params,
    submit,
)

ROOT = Path(__file__).resolve().parents[2]


def open_sandbox(path, clock=None, deliver=None, settle_delay_seconds=None) -> StripeSandbox:
    return StripeSandbox(webhook_secret=WEBHOOK_SECRET, checkout_base_url=BASE_URL, path=path,
                         deliver=deliver, settle_delay_seconds=settle_delay_seconds, clock=clock)


def client_of(sandbox: StripeSandbox) -> stripe.StripeClient:
    return stripe.StripeClient("sk_test_sandbox", http_client=SandboxHTTPClient(sandbox))


@pytest.fixture
def path(tmp_path) -> Path:
    return tmp_path / "stripe-sandbox.db"


def test_two_sandboxes_on_one_file_see_each_others_objects_and_events(path):
    first, second = open_sandbox(path), open_sandbox(path)

    customer = client_of(first).v1.customers.create(params={"email": "shared@example.com"})
    intent = client_of(second).v1.payment_intents.create(params={"amount": 1500, "currency": "eur",
                                                                 "customer": customer.id})

    assert client_of(second).v1.customers.retrieve(customer.id).email == "shared@example.com"
    assert [pi.id for pi in client_of(first).v1.payment_intents.list(params={"customer": customer.id})] == [intent.id]
    assert [e["type"] for e in first.events] == ["customer.created", "payment_intent.created"]


def test_an_idempotent_create_repeated_through_another_sandbox_replays_the_first_answer(path):
    first, second = open_sandbox(path), open_sandbox(path)
    params = {"email": "once@example.com"}

    created = client_of(first).v1.customers.create(params=params, options={"idempotency_key": "cust-1"})
    replayed = client_of(second).v1.customers.create(params=params, options={"idempotency_key": "cust-1"})

    assert replayed.id == created.id
    assert [o["id"] for o in second.objects() if o["object"] == "customer"] == [created.id]


def test_concurrent_idempotent_creates_from_threads_on_two_sandboxes_make_one_payment_intent(path):
    sandboxes = [open_sandbox(path), open_sandbox(path)]
    customer = client_of(sandboxes[0]).v1.customers.create(params={"email": "race@example.com"})
    params = {"amount": 2000, "currency": "eur", "customer": customer.id, "metadata": {"topup_id": "9"}}
    start, ids = threading.Barrier(8), []

    def create(sandbox):
        start.wait()
        ids.append(client_of(sandbox).v1.payment_intents.create(params=params,
                                                                options={"idempotency_key": "topup-9"}).id)

    threads = [threading.Thread(target=create, args=(sandboxes[n % 2],)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    intents = [o for o in sandboxes[1].objects() if o["object"] == "payment_intent"]
    assert len(ids) == 8 and set(ids) == {intents[0]["id"]}
    assert len(intents) == 1


CREATE_IN_A_PROCESS = textwrap.dedent("""
    import sys, time
    import stripe
    from stripe_sandbox import SandboxHTTPClient, StripeSandbox
    path, start_at = sys.argv[1], float(sys.argv[2])
    client = stripe.StripeClient("sk_test_sandbox", http_client=SandboxHTTPClient(StripeSandbox(path=path)))
    time.sleep(max(0.0, start_at - time.time()))
    print(client.v1.customers.create(params={"email": "proc@example.com"},
                                     options={"idempotency_key": "proc-1"}).id)
""")


def test_concurrent_idempotent_creates_from_four_processes_make_one_customer(path):
    open_sandbox(path)  # the database exists before the processes race for it
    start_at = time.time() + 2.0  # every process has imported the library by then
    processes = [subprocess.Popen([sys.executable, "-c", CREATE_IN_A_PROCESS, str(path), str(start_at)],
                                  cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(4)]
    outputs = [process.communicate(timeout=60) for process in processes]

    assert [process.returncode for process in processes] == [0, 0, 0, 0], [err for _, err in outputs]
    ids = {out.strip() for out, _ in outputs}
    customers = [o["id"] for o in open_sandbox(path).objects() if o["object"] == "customer"]
    assert len(ids) == 1 and list(ids) == customers


def test_a_sepa_debit_started_through_one_sandbox_is_settled_by_another_when_due(path, clock):
    first = open_sandbox(path, clock, settle_delay_seconds=5)
    second = open_sandbox(path, clock, settle_delay_seconds=5)
    session = client_of(first).v1.checkout.sessions.create(params=payment_session_params(None))
    submit(checkout_page(first), session, IBAN_OK)
    intent_id = client_of(first).v1.checkout.sessions.retrieve(session.id).payment_intent

    clock.advance(6)

    assert client_of(second).v1.payment_intents.retrieve(intent_id).status == "succeeded"
    assert client_of(first).v1.checkout.sessions.retrieve(session.id).payment_status == "paid"


def test_a_webhook_left_pending_by_a_sandbox_that_went_away_is_delivered_by_another(path, monkeypatch):
    gone = open_sandbox(path)  # no deliverer: as if its process ended before delivering
    customer = client_of(gone).v1.customers.create(params={"email": "late@example.com"})
    deliveries = Deliveries()
    serving = open_sandbox(path, deliver=deliveries)
    monkeypatch.setattr(sandbox_module, "STALE_CLAIM_SECONDS", -1.0)  # no waiting for the claim to age

    client_of(serving).v1.customers.retrieve(customer.id)  # any operation takes over what is pending

    [event] = deliveries.events()
    assert (event["type"], event["data"]["object"]["id"]) == ("customer.created", customer.id)
    assert serving.undelivered_events() == [] and gone.undelivered_events() == []


class BlockedDeliverer:
    """A background deliverer that waits until released: a process still busy delivering."""

    background = True

    def __init__(self):
        self.release = threading.Event()
        self.received: list[str] = []

    def __call__(self, payload: str, signature: str) -> None:
        self.release.wait(10)
        self.received.append(payload)


def test_a_webhook_the_raising_sandbox_is_still_delivering_is_not_taken_over(path):
    busy = BlockedDeliverer()
    raising = open_sandbox(path, deliver=busy)
    other = Deliveries()
    serving = open_sandbox(path, deliver=other)

    customer = client_of(raising).v1.customers.create(params={"email": "mine@example.com"})
    client_of(serving).v1.customers.retrieve(customer.id)
    busy.release.set()
    raising.wait_for_deliveries()

    assert other.received == []
    assert [json.loads(payload)["type"] for payload in busy.received] == ["customer.created"]
    assert serving.undelivered_events() == []


def create_customer_in_child(sandbox: StripeSandbox, email: str) -> None:
    client_of(sandbox).v1.customers.create(params={"email": email})


def test_a_forked_child_like_a_gunicorn_worker_creates_objects_in_the_same_stripe(path):
    import multiprocessing

    sandbox = open_sandbox(path)
    client_of(sandbox).v1.customers.create(params={"email": "parent@example.com"})
    child = multiprocessing.get_context("fork").Process(target=create_customer_in_child,
                                                        args=(sandbox, "child@example.com"))
    child.start()
    child.join(30)

    assert child.exitcode == 0
    emails = [o["email"] for o in sandbox.objects() if o["object"] == "customer"]
    assert emails == ["parent@example.com", "child@example.com"]
