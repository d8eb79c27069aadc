"""StripeSandbox: the state, the clock, events and their webhook delivery."""

from __future__ import annotations

import atexit
import copy
import json
import logging
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

from . import disputes, objects, payments, sessions
from .errors import no_such
from .objects import Fixtures
from .store import Store, new_id
from .webhooks import DEV_WEBHOOK_SECRET, Deliver, DeliveryWorker, signature_header

log = logging.getLogger(__name__)

CHECKOUT_PATH = "/sandbox/stripe/checkout"
# A webhook still pending this long after an instance claimed it is taken over by another instance
# with a deliverer: the claiming process went away (a CLI killed, an RQ work horse that exited).
STALE_CLAIM_SECONDS = 60.0
EXIT_DELIVERY_TIMEOUT = 30.0  # a process about to exit first delivers what it raised, for this long


class StripeSandbox:
    """Plays Stripe; its state is an SQLite database that every process opening `path` shares.

    The application reaches it through the `stripe` library only.

    - `webhook_secret`: signs webhooks (`whsec_...`), as the endpoint's signing secret does.
    - `checkout_base_url`: external URL of the app serving the checkout blueprint; a
      session's `url` is `{checkout_base_url}/sandbox/stripe/checkout/{id}`. None: the
      origin of the session's success URL (the app serves the page itself).
    - `deliver(payload, signature_header)`: called for every event this instance raises; see
      webhooks.HTTPDeliverer. An instance with a deliverer also delivers the events another
      instance raised and left pending for `STALE_CLAIM_SECONDS` (that process went away).
    - `settle_delay_seconds`: how long SEPA debits stay `processing`; None: until settle_pending().
    - `checkout_expiry_seconds`: how long a Checkout Session created without `expires_at` stays
      open (24 hours, as at Stripe); then it expires by itself and `checkout.session.expired` is sent.
    - `fixtures_path`: Stripe's fixtures3.json (default: env STRIPE_FIXTURES_PATH, then
      the copy in stripe_sandbox/fixtures/).
    - `path`: the SQLite database file (created when missing); None: a private in-memory one.
    - `clock`: returns the current unix time; tests may replace `sandbox.clock`.
    """

    def __init__(
        self,
        webhook_secret: str = DEV_WEBHOOK_SECRET,
        checkout_base_url: str | None = "http://127.0.0.1:5000",
        deliver: Deliver | None = None,
        settle_delay_seconds: float | None = 5.0,
        fixtures_path: str | Path | None = None,
        path: str | Path | None = None,
        clock: Callable[[], float] | None = None,
        checkout_expiry_seconds: float = 24 * 60 * 60,
    ):
        self.webhook_secret = webhook_secret
        self.checkout_base_url = checkout_base_url.rstrip("/") if checkout_base_url else None
        self.settle_delay_seconds = settle_delay_seconds
        self.checkout_expiry_seconds = checkout_expiry_seconds
        self.clock = clock or time.time
        self.fixtures = Fixtures(fixtures_path)
        self.path = Path(path) if path else None
        self.store = Store(path)
        self.deliver = deliver
        self.instance_id = new_id("sbx", 16)
        self.request_context: tuple[str | None, str | None] = (None, None)
        self._lock = threading.RLock()
        self._depth = 0
        self._outbox: list[str] = []
        self._worker: DeliveryWorker | None = None
        self._worker_pid: int | None = None
        self._timer_lock = threading.Lock()
        self._timer: tuple[threading.Timer | None, float] = (None, 0.0)
        self._wake_at_next_due()

    # ---- state and transactions -------------------------------------------------------

    @contextmanager
    def transaction(self, tick: bool = True) -> Iterator["StripeSandbox"]:
        """One database transaction (nested calls join it): committed on the way out, rolled back
        on an error; then the events raised are delivered. `tick=False`: no time passes."""
        with self._lock:
            outermost = self._depth == 0
            self._depth += 1
            try:
                if outermost:
                    self.store.begin()
                    if tick:
                        self._tick()
                yield self
                if outermost:
                    self.store.commit()
            except BaseException:
                if outermost:
                    self.store.rollback()
                    self._outbox = []
                raise
            finally:
                self._depth -= 1
            outbox: list[str] = []
            if outermost:
                outbox, self._outbox = self._outbox, []
                if self._background_delivery():
                    for event_id in outbox:  # queued under the lock: keeps event order
                        self._delivery_worker().submit(event_id)
                    outbox = []
        for event_id in outbox:
            self._deliver_event(event_id)

    def now(self) -> int:
        return int(self.clock())

    def get(self, object_id: str, object_type: str, label: str | None = None,
            param: str | None = "id", status: int = 404) -> dict[str, Any]:
        obj = self.store.get(object_id or "", object_type)
        if obj is None:
            raise no_such(label or object_type.replace("_", " "), object_id, param, status)
        return obj

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.store.put(obj)

    def private(self, object_id: str) -> dict[str, Any]:
        return self.store.private_of(object_id)

    def checkout_url(self, session_id: str, success_url: str | None = None) -> str:
        """The hosted page's URL; without a configured base, on the origin of the success URL."""
        base = self.checkout_base_url
        if base is None:
            parts = urlsplit(success_url or "")
            base = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else "http://127.0.0.1:5000"
        return f"{base}{CHECKOUT_PATH}/{session_id}"

    # ---- time passing -----------------------------------------------------------------

    def _tick(self) -> None:
        """Settle SEPA debits and expire sessions whose time has come; take over webhooks left
        pending by an instance that went away."""
        now = self.clock()
        for settlement in self.store.settlements(due_by=now):
            self._settle(settlement)
        for session in self.store.sessions_expired_by(now):
            sessions.expire(self, session)
        if self.deliver:
            real_now = time.time()
            self._outbox += self.store.claim_stale_deliveries(self.instance_id, real_now - STALE_CLAIM_SECONDS,
                                                              real_now)

    def schedule_settlement(self, payment_intent_id: str, session_id: str | None) -> None:
        delay = self.settle_delay_seconds
        due = None if delay is None else self.clock() + delay
        self.store.add_settlement(payment_intent_id, session_id, due)
        if due is not None:
            self.wake_at(due)

    def schedule_expiry(self, expires_at: float) -> None:
        """Expire a Checkout Session at `expires_at` even if nobody asks the sandbox anything then."""
        self.wake_at(expires_at)

    def wake_at(self, due: float) -> None:
        """Tick at `due` (sandbox clock) at the latest. One timer per process, for the earliest due
        time: each tick schedules the next, so thousands of open sessions need no thousand threads."""
        with self._timer_lock:
            timer, scheduled = self._timer
            if timer is not None and timer.is_alive() and scheduled <= due:
                return
            if timer is not None:
                timer.cancel()
            timer = threading.Timer(max(0.0, due - self.clock()) + 0.05, self._on_timer)
            timer.daemon = True
            self._timer = (timer, due)
            timer.start()

    def _wake_at_next_due(self) -> None:
        with self.transaction(tick=False):
            due = self.store.next_due()
        if due is not None:
            self.wake_at(due)

    def _on_timer(self) -> None:
        with self._timer_lock:
            self._timer = (None, 0.0)
        with self.transaction():
            pass  # the transaction's tick settles and expires what is due
        self._wake_at_next_due()

    def _settle(self, settlement: dict[str, Any]) -> None:
        self.store.remove_settlement(settlement["payment_intent"])
        succeeded = payments.settle_sepa_debit(self, settlement["payment_intent"])
        if settlement["checkout_session"]:
            sessions.record_async_result(self, settlement["checkout_session"], succeeded)
        if succeeded:
            payments.return_if_test_iban(self, settlement["payment_intent"])

    # ---- events and webhooks ----------------------------------------------------------

    def emit(self, event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
        request_id, idempotency_key = self.request_context
        event = objects.event(
            self.fixtures, id=new_id("evt"), created=self.now(), type=event_type, data_object=obj,
            request_id=request_id, idempotency_key=idempotency_key,
            pending_webhooks=1 if self.deliver else 0,
        )
        self.put(event)
        self.store.add_delivery(event["id"], self.instance_id if self.deliver else None, time.time())
        if self.deliver:
            self._outbox.append(event["id"])
        return event

    def _background_delivery(self) -> bool:
        return bool(getattr(self.deliver, "background", False))

    def _delivery_worker(self) -> DeliveryWorker:
        """This process's delivery thread (a forked child starts its own: threads do not survive a fork)."""
        if self._worker is None or self._worker_pid != os.getpid():
            self._worker, self._worker_pid = DeliveryWorker(self._deliver_event), os.getpid()
            atexit.register(self._worker.wait_idle, EXIT_DELIVERY_TIMEOUT)
        return self._worker

    def _deliver_event(self, event_id: str) -> bool:
        deliver = self.deliver
        if deliver is None:
            return False
        with self.transaction(tick=False):
            event = copy.deepcopy(self.get(event_id, "event"))
        payload = json.dumps(event, indent=2)
        error = None
        try:
            delivered = deliver(payload, signature_header(payload, self.webhook_secret)) is not False
        except Exception as exc:  # the application's handler failing must not break the sandbox
            delivered, error = False, f"{type(exc).__name__}: {exc}"
            log.warning("stripe sandbox: webhook %s (%s) not delivered: %s", event_id, event["type"], error)
        with self.transaction(tick=False):
            self.store.record_attempt(event_id, delivered, error)
            if delivered:
                self.get(event_id, "event")["pending_webhooks"] = 0
        return delivered

    # ---- the public Python interface --------------------------------------------------

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every event so far, oldest first (copies)."""
        with self.transaction(tick=False):
            return copy.deepcopy(list(reversed(self.store.of_type("event"))))

    def objects(self) -> list[dict[str, Any]]:
        """Every object so far, oldest first (copies)."""
        with self.transaction(tick=False):
            return copy.deepcopy(self.store.all_objects())

    def undelivered_events(self) -> list[dict[str, Any]]:
        """Events whose webhook has not (yet) been delivered, oldest first."""
        with self.transaction(tick=False):
            delivered = self.store.delivered_ids()
            return [e for e in self.events if e["id"] not in delivered]

    def redeliver(self, event_id: str) -> bool | None:
        """Send an event's webhook again. Inline deliverers: returns whether it was delivered."""
        with self.transaction(tick=False):
            self.get(event_id, "event")
        if self._background_delivery():
            self._delivery_worker().submit(event_id)
            return None
        return self._deliver_event(event_id)

    def wait_for_deliveries(self, timeout: float = 10.0) -> bool:
        """For a background deliverer: wait until the queued webhooks have been attempted."""
        if self._worker is None or self._worker_pid != os.getpid():  # none started in this process
            return True
        return self._worker.wait_idle(timeout)

    def settle_pending(self) -> int:
        """Settle every processing SEPA debit now, whatever the delay; returns how many."""
        with self.transaction():
            pending = self.store.settlements()
            for settlement in pending:
                self._settle(settlement)
            return len(pending)

    def expire_session(self, session_id: str) -> dict[str, Any]:
        """Expire an open Checkout Session, as if its `expires_at` had passed."""
        with self.transaction():
            return copy.deepcopy(sessions.expire(self, self.get(session_id, "checkout.session",
                                                                "checkout.session")))

    def dispute_payment(self, payment_intent_id: str, reason: str = "general") -> dict[str, Any]:
        """The payer's bank takes a settled payment back, weeks later: a SEPA debit is returned (a
        dispute lost from the start), a card payment charged back (a dispute awaiting evidence)."""
        with self.transaction():
            pi = self.get(payment_intent_id, "payment_intent", "payment_intent")
            charge = payments.refundable_charge(self, pi)
            if charge["payment_method_details"]["type"] == "sepa_debit":
                return copy.deepcopy(disputes.return_sepa_debit(self, charge, reason))
            return copy.deepcopy(disputes.open_dispute(self, charge, reason))

    def submit_dispute_evidence(self, dispute_id: str, text: str) -> dict[str, Any]:
        """Answer a dispute as a person would in Stripe's dashboard; `winning_evidence` wins it,
        `losing_evidence` loses it (Stripe's test mode)."""
        with self.transaction():
            dispute = self.get(dispute_id, "dispute", "dispute")
            return copy.deepcopy(disputes.submit_evidence(self, dispute, {"uncategorized_text": text}))

    def fail_refund(self, refund_id: str, status: str = "failed") -> dict[str, Any]:
        """A refund fails (the bank could not pay it out) or is canceled, after it was made."""
        with self.transaction():
            return copy.deepcopy(payments.fail_refund(self, self.get(refund_id, "refund", "refund"), status))

    def refund_from_dashboard(self, payment_intent_id: str, amount: int | None = None,
                              reason: str | None = None) -> dict[str, Any]:
        """Refund as a person would in Stripe's dashboard: no API call by the application."""
        with self.transaction():
            pi = self.get(payment_intent_id, "payment_intent", "payment_intent")
            charge = payments.refundable_charge(self, pi)
            return copy.deepcopy(payments.create_refund(self, charge, amount, {}, reason))
