"""A model of the money that tests itself: random sequences of what customers, the telephony platform,
staff and Stripe do, against the real services, the sandbox and the database, with every Stripe
webhook held back and delivered in any order, as often as the sequence says.

The model keeps its own account of what the balance must be, from what it did and what Stripe was
told — a top-up counts once, the first time an event proving its payment arrives (a refund or dispute
of it proves it too); a refund counts once, the first time an event listing it arrives, and comes back
once if it fails later; a chargeback takes the payment back once and a won dispute gives it back
once — and after every step checks the
portal against it: the balance, the ledger's invariants (balance == sum of entries, the before/after
chain, reserved == open holds), no top-up credited twice or beyond what was paid, no refund above it.

The budget is fixed (``MONEY_MODEL_EXAMPLES`` sequences of ``MONEY_MODEL_STEPS`` steps) so the suite
stays fast; raise them locally to search longer (``MONEY_MODEL_NO_SHRINK=1`` shows a failure as found,
``MONEY_MODEL_VERBOSE=1`` every step).
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, Verbosity, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import func, select

from app.extensions import db, limiter
from core.accounts.audit import Actor
from core.backoffice import money_actions
from core.calls.api_keys import create_api_key
from core.clock import utcnow
from core.ledger.postings import verify_ledger
from core.money import UNITS_PER_CENT, divide_half_up, eur
from core.schema import (
    BalanceTransaction, BonusRule, CallCharge, CallReservation, EntryType, PrepaidBalance, Topup, TopupRefund,
)
from tests.builders import add_company
from tests.conftest import wipe_database
from tests.helpers import log_in
from tests.stripe_helpers import CARD_OK, IBAN_FAILS, IBAN_OK, pay, start_topup

EXAMPLES = int(os.environ.get("MONEY_MODEL_EXAMPLES", "25"))
STEPS = int(os.environ.get("MONEY_MODEL_STEPS", "30"))
PHASES = [Phase.generate] if os.environ.get("MONEY_MODEL_NO_SHRINK") else list(Phase)

BONUS_FROM, BONUS_PERCENT = eur("500"), 10
STAFF = Actor(None, "model@staff.example.com")
PAID_EVENTS = {"checkout.session.completed", "checkout.session.async_payment_succeeded", "payment_intent.succeeded"}


@dataclass
class PaidTopup:
    """What the model knows of one top-up: its amount and, once counted, its bonus and refunds."""

    amount_cents: int
    payment_intent_id: str | None = None
    credited: bool = False
    bonus: int = 0
    refunded_amount: int = 0  # units of the credit taken back by counted refunds
    bonus_reversed: int = 0
    refunded_at_stripe: int = 0  # cents, counted or not
    refunds_counted: dict[str, int] = field(default_factory=dict)  # refund id -> what it took off
    refunds_given_up: set[str] = field(default_factory=set)  # failed or canceled: final
    refund_ids: list[str] = field(default_factory=list)  # made at Stripe, counted or not
    dispute_id: str | None = None  # at most one, on a payment nothing was refunded of
    dispute_state: str | None = None  # None, "debited", "won", "lost"
    dispute_debit: int = 0

    @property
    def amount(self) -> int:
        return self.amount_cents * UNITS_PER_CENT

    def _share(self, cents: int) -> int:
        """What taking back ``cents`` of the payment takes off the balance: the credit and the bonus share."""
        amount = cents * UNITS_PER_CENT
        bonus_back = min(divide_half_up(self.bonus * amount, self.amount), self.bonus - self.bonus_reversed)
        self.refunded_amount += amount
        self.bonus_reversed += bonus_back
        return amount + bonus_back

    def count_refund(self, refund_id: str, cents: int) -> int:
        """Count a refund once (never one that failed first); returns what it takes off the balance."""
        if refund_id in self.refunds_counted or refund_id in self.refunds_given_up:
            return 0
        self.refunds_counted[refund_id] = self._share(cents)
        return self.refunds_counted[refund_id]

    def give_up_refund(self, refund_id: str) -> int:
        """A refund failed or was canceled: returns what comes back (what it took, once)."""
        if refund_id in self.refunds_given_up:
            return 0
        self.refunds_given_up.add(refund_id)
        return self.refunds_counted.get(refund_id, 0)

    def dispute_reported(self, status: str) -> int:
        """A report of the dispute, in any order: returns the balance's change (a chargeback takes the
        payment back once, won gives it back once, a closed dispute never reopens; inquiries move nothing)."""
        if status.startswith("warning_") or self.dispute_state in ("won", "lost"):
            return 0
        change = 0
        if self.dispute_state is None and status != "won":
            self.dispute_debit = self._share(self.amount_cents)
            change = -self.dispute_debit
            self.dispute_state = "debited"
        if status == "won":
            change += self.dispute_debit
            self.dispute_state = "won"
        elif status == "lost":
            self.dispute_state = "lost"
        return change


class MoneyModel(RuleBasedStateMachine):
    app = None  # set by the test

    def __init__(self):
        super().__init__()
        app = self.app
        wipe_database(app)
        with app.app_context():
            limiter.reset()
            db.session.add(BonusRule(name="10 % ab 500 €", min_amount=BONUS_FROM, percent_basis_points=BONUS_PERCENT * 100))
            self.company_id, email = add_company(db.session, 1)
            self.api_key = create_api_key(db.session, self.company_id, "model")[1]
            db.session.commit()
        self.sandbox = app.extensions["stripe_sandbox"]
        self.webhooks = self.sandbox.deliver
        self.webhooks.hold = True
        self.settle_delay, self.sandbox.settle_delay_seconds = self.sandbox.settle_delay_seconds, None  # the model settles
        self.sandbox.settle_pending()  # the sandbox outlives an example: its debits still open are not ours
        self.webhooks.held.clear()
        self.client = app.test_client()
        assert log_in(self.client, email).status_code in (302, 303)
        self.expected = 0
        self.topups: dict[int, PaidTopup] = {}
        self.delivered: list[tuple[str, str]] = []
        self.calls_made = 0
        self.live_calls: dict[str, dict] = {}  # call id -> the answer to its start
        self.ended_calls: dict[str, int] = {}  # call id -> its charge's id

    def teardown(self):
        self.webhooks.reset()
        self.sandbox.settle_delay_seconds = self.settle_delay

    # -- what the customer does ------------------------------------------------------------------

    def pay_a_topup(self, data):
        euros = data.draw(st.sampled_from([500, 100, 10, 750]), label="euros")
        method = data.draw(st.sampled_from([CARD_OK, IBAN_OK, IBAN_FAILS]), label="method")
        with self.app.app_context():
            limiter.reset()  # the per-company attempt limit is not what this model is about
        started = start_topup(self.client, str(euros))
        assert started.status_code == 303, started.text
        assert pay(self.client, started.headers["Location"], method).status_code == 303
        with self.app.app_context():
            topup_id = db.session.scalar(select(func.max(Topup.id)))
        self.topups[topup_id] = PaidTopup(euros * 100)

    def the_bank_settles_sepa_debits(self, data):
        self.sandbox.settle_pending()

    # -- what Stripe delivers, in any order and as often as it likes -------------------------------

    def deliver_a_held_event(self, data):
        payload, signature = self.webhooks.held.pop(data.draw(st.integers(0, len(self.webhooks.held) - 1)))
        self._deliver(payload, signature)
        self.delivered.append((payload, signature))

    def deliver_everything_held_in_any_order(self, data):
        """Stripe delivers what is due in its own order, some of it twice."""
        held = data.draw(st.permutations(self.webhooks.held))
        self.webhooks.held.clear()
        for payload, signature in held:
            for _ in range(data.draw(st.integers(1, 2))):
                self._deliver(payload, signature)
            self.delivered.append((payload, signature))

    def deliver_an_event_again(self, data):
        self._deliver(*data.draw(st.sampled_from(self.delivered)))

    def _deliver(self, payload: str, signature: str) -> None:
        assert self.webhooks.send(payload, signature) == 200
        event = json.loads(payload)
        obj = event["data"]["object"]
        if event["type"] in PAID_EVENTS and obj.get("status") in ("complete", "succeeded") \
                and obj.get("payment_status", "paid") == "paid":
            self._count_payment(int(obj["metadata"]["topup_id"]))
        if event["type"] == "charge.refunded":  # a refunded charge was paid: the payment counts too
            self._count_payment(int(obj["metadata"]["topup_id"]))
            self._count_refunds(obj)
        if event["type"] in ("charge.refund.updated", "refund.updated", "refund.failed"):
            self._refund_reported(self._topup_of_refund(obj["id"]), obj["id"], obj["amount"], obj["status"])
        if event["type"].startswith("charge.dispute."):
            topup_id = next(i for i, t in self.topups.items() if t.dispute_id == obj["id"])
            self._count_payment(topup_id)  # a disputed payment was paid
            self.expected += self.topups[topup_id].dispute_reported(obj["status"])

    def _count_payment(self, topup_id: int) -> None:
        topup = self.topups[topup_id]
        if topup.credited:
            return
        topup.credited = True
        topup.bonus = divide_half_up(topup.amount * BONUS_PERCENT, 100) if topup.amount >= BONUS_FROM else 0
        self.expected += topup.amount + topup.bonus

    def _count_refunds(self, charge: dict) -> None:
        topup = self.topups[int(charge["metadata"]["topup_id"])]
        for refund in charge["refunds"]["data"]:
            self._refund_reported(topup, refund["id"], refund["amount"], refund["status"])

    def _refund_reported(self, topup: PaidTopup, refund_id: str, cents: int, status: str) -> None:
        self._count_payment(next(i for i, t in self.topups.items() if t is topup))
        if status in ("succeeded", "pending"):
            self.expected -= topup.count_refund(refund_id, cents)
        elif status in ("failed", "canceled"):
            self.expected += topup.give_up_refund(refund_id)

    def _topup_of_refund(self, refund_id: str) -> PaidTopup:
        return next(t for t in self.topups.values() if refund_id in t.refund_ids)

    # -- refunds: in Stripe's dashboard (the webhook tells us) and by staff (booked at once) ---------

    def _refundable(self) -> list[int]:
        """Top-ups the model counted, with money left to refund at Stripe."""
        return sorted(i for i, t in self.topups.items()
                      if t.credited and t.refunded_at_stripe < t.amount_cents and t.dispute_id is None)

    def _paid_at_stripe(self) -> list[int]:
        """Top-ups Stripe holds the money of, counted by us or not (their webhooks may be held back)."""
        return sorted(i for i, t in self.topups.items() if t.refunded_at_stripe < t.amount_cents
                      and t.dispute_id is None and self._intent_status(i) == "succeeded")

    def _intent_status(self, topup_id: int) -> str | None:
        intent = self._intent_of(topup_id)
        return self._stripe_object(intent, "payment_intent")["status"] if intent else None

    def _intent_of(self, topup_id: int) -> str | None:
        with self.app.app_context():
            checkout_id = db.session.get(Topup, topup_id).stripe_checkout_session_id
        return self._stripe_object(checkout_id, "checkout.session").get("payment_intent")

    def _stripe_object(self, object_id: str, object_type: str) -> dict:
        with self.sandbox.transaction(tick=False):
            return dict(self.sandbox.get(object_id, object_type))

    def someone_refunds_in_the_stripe_dashboard(self, data):
        topup_id = data.draw(st.sampled_from(self._paid_at_stripe()))
        topup = self.topups[topup_id]
        cents = data.draw(st.integers(1, topup.amount_cents - topup.refunded_at_stripe))
        topup.refund_ids.append(self.sandbox.refund_from_dashboard(self._intent_of(topup_id), cents)["id"])
        topup.refunded_at_stripe += cents

    def staff_refund_a_topup(self, data):
        topup_id = data.draw(st.sampled_from(self._refundable()))
        topup = self.topups[topup_id]
        cents = data.draw(st.integers(1, topup.amount_cents - topup.refunded_at_stripe))
        with self.app.app_context():
            plan = money_actions.check_topup_refund(
                db.session, topup_id, cents, "Model", uuid.uuid4().hex, override_available=True,
                actor_is_admin=True, support_limit=0)
            db.session.commit()
            money_actions.refund_topup(db.session, self.app.extensions["stripe_gateway"], STAFF, plan)
            db.session.commit()
            refund_id = db.session.scalar(select(TopupRefund.stripe_refund_id).order_by(TopupRefund.id.desc()))
        topup.refunded_at_stripe += cents
        topup.refund_ids.append(refund_id)
        self.expected -= topup.count_refund(refund_id, cents)

    def _failable_refunds(self) -> list[str]:
        return [r for t in self.topups.values() for r in t.refund_ids if r not in t.refunds_given_up
                and self._stripe_object(r, "refund")["status"] not in ("failed", "canceled")]

    def a_refund_fails_later(self, data):
        refund_id = data.draw(st.sampled_from(self._failable_refunds()))
        self.sandbox.fail_refund(refund_id, data.draw(st.sampled_from(["failed", "canceled"])))

    def _disputable(self) -> list[int]:
        return [i for i in self._paid_at_stripe() if self.topups[i].refunded_at_stripe == 0]

    def the_payers_bank_disputes_a_payment(self, data):
        topup_id = data.draw(st.sampled_from(self._disputable()))
        self.topups[topup_id].dispute_id = self.sandbox.dispute_payment(self._intent_of(topup_id))["id"]

    def _open_disputes(self) -> list[str]:
        return [t.dispute_id for t in self.topups.values() if t.dispute_id
                and self._stripe_object(t.dispute_id, "dispute")["status"] in ("needs_response", "warning_needs_response")]

    def a_dispute_is_decided(self, data):
        dispute_id = data.draw(st.sampled_from(self._open_disputes()))
        self.sandbox.submit_dispute_evidence(dispute_id, data.draw(st.sampled_from(["winning_evidence",
                                                                                    "losing_evidence"])))

    # -- calls, as the telephony platform reports them --------------------------------------------

    def _api(self, call_id: str, action: str, body: dict):
        return self.client.post(f"/api/v1/calls/{call_id}/{action}", json=body,
                                headers={"Authorization": f"Bearer {self.api_key}"})

    def a_call_starts(self, data):
        self.calls_made += 1
        call_id = f"call-{self.calls_made}"
        answer = self._api(call_id, "start", {"started_at": utcnow().isoformat() + "Z"})
        assert answer.status_code in (200, 402), answer.text
        if answer.status_code == 200:
            self.live_calls[call_id] = answer.json
        else:
            assert self._available() < eur("0.42"), "a start was refused while a minute was available"

    def a_call_ends(self, data):
        seconds = data.draw(st.integers(0, 900), label="seconds")
        call_id = data.draw(st.sampled_from(sorted(self.live_calls)))
        answer = self._api(call_id, "end", {"duration_seconds": seconds})
        assert answer.status_code == 200, answer.text
        assert answer.json["amount"] == f"{divide_half_up(seconds * eur('0.42'), 60) / 10_000:.4f}"
        self.expected -= eur(answer.json["amount"])
        first_start = self.live_calls.pop(call_id)
        self._call_ended(call_id, answer, seconds)
        reserved = self._account().reserved
        retried_start = self._api(call_id, "start", {"started_at": utcnow().isoformat() + "Z"})
        assert retried_start.status_code == 200 and retried_start.json == first_start  # the first answer
        assert self._account().reserved == reserved  # and nothing held again

    def a_call_ends_before_its_start_arrives(self, data):
        seconds = data.draw(st.integers(1, 900), label="seconds")
        self.calls_made += 1
        call_id = f"call-{self.calls_made}"
        answer = self._api(call_id, "end", {"duration_seconds": seconds})
        assert answer.status_code == 200, answer.text
        self.expected -= eur(answer.json["amount"])
        self._call_ended(call_id, answer, seconds)
        late_start = self._api(call_id, "start", {"started_at": utcnow().isoformat() + "Z"})
        assert late_start.status_code == 200, late_start.text
        assert (late_start.json["ended"], late_start.json["max_seconds"]) == (True, 0)

    def _call_ended(self, call_id: str, answer, seconds: int) -> None:
        with self.app.app_context():
            self.ended_calls[call_id] = db.session.scalar(select(CallCharge.id).where(CallCharge.call_id == call_id))
        again = self._api(call_id, "end", {"duration_seconds": seconds})  # the platform retries
        assert again.status_code == 200 and again.json == answer.json

    def a_hold_reaches_its_deadline(self, data):
        from core.calls.live import expire_reservation
        call_id = data.draw(st.sampled_from(sorted(self.live_calls)))
        with self.app.app_context():
            reservation_id = db.session.scalar(select(CallReservation.id).where(CallReservation.call_id == call_id))
            expire_reservation(db.session, reservation_id)
            db.session.commit()

    def staff_refund_part_of_a_call(self, data):
        charge_id = data.draw(st.sampled_from(sorted(self.ended_calls.values())))
        with self.app.app_context():
            charge = db.session.get(CallCharge, charge_id)
            left = charge.amount - charge.refunded_amount
            if left <= 0:
                return
            value = data.draw(st.integers(1, left))
            money_actions.refund_call(db.session, STAFF, charge_id, amount=value, reason="Model",
                                      request_key=uuid.uuid4().hex, actor_is_admin=True, support_limit=0)
            db.session.commit()
        self.expected += value

    # -- staff adjustments -------------------------------------------------------------------------

    def staff_adjust_the_balance(self, data):
        amount = data.draw(st.integers(-10_000, 10_000).filter(bool), label="cents") * UNITS_PER_CENT
        with self.app.app_context():
            money_actions.adjust_balance(db.session, STAFF, self.company_id, amount, "Model", "Model",
                                         uuid.uuid4().hex)
            db.session.commit()
        self.expected += amount

    # -- the steps: who acts next, and what they do (each group picks among what it can do now) ------

    @rule(data=st.data())
    def the_customer_acts(self, data):
        self.pay_a_topup(data)

    @rule(data=st.data())
    def stripe_acts(self, data):
        self._one_of(data, [
            (self.deliver_everything_held_in_any_order, self.webhooks.held),
            (self.someone_refunds_in_the_stripe_dashboard, self._paid_at_stripe()),
            (self.deliver_a_held_event, self.webhooks.held),
            (self.the_bank_settles_sepa_debits, True),
            (self.deliver_an_event_again, self.delivered),
            (self.a_refund_fails_later, self._failable_refunds()),
            (self.the_payers_bank_disputes_a_payment, self._disputable()),
            (self.a_dispute_is_decided, self._open_disputes()),
        ])

    @rule(data=st.data())
    def the_telephony_platform_acts(self, data):
        self._one_of(data, [
            (self.a_call_starts, True),
            (self.a_call_ends, self.live_calls),
            (self.a_call_ends_before_its_start_arrives, True),
            (self.a_hold_reaches_its_deadline, self.live_calls),
        ])

    @rule(data=st.data())
    def staff_act(self, data):
        self._one_of(data, [
            (self.staff_refund_a_topup, self._refundable()),
            (self.staff_refund_part_of_a_call, self.ended_calls),
            (self.staff_adjust_the_balance, True),
        ])

    @staticmethod
    def _one_of(data, actions) -> None:
        possible = [action for action, can in actions if can]
        data.draw(st.sampled_from(possible), label="action")(data)

    # -- what must hold after every step -------------------------------------------------------------

    def _account(self) -> PrepaidBalance:
        with self.app.app_context():
            account = db.session.get(PrepaidBalance, self.company_id)
            db.session.expunge(account)
            return account

    def _available(self) -> int:
        account = self._account()
        return account.balance - account.reserved

    @invariant()
    def the_ledger_is_consistent(self):
        with self.app.app_context():
            assert verify_ledger(db.session) == []

    @invariant()
    def the_balance_is_what_the_model_expects(self):
        with self.app.app_context():
            assert db.session.get(PrepaidBalance, self.company_id).balance == self.expected

    @invariant()
    def no_topup_credited_twice_or_refunded_beyond_what_was_paid(self):
        with self.app.app_context():
            for topup in db.session.scalars(select(Topup)):
                credits = db.session.execute(select(func.count(), func.coalesce(func.sum(BalanceTransaction.amount), 0))
                                             .where(BalanceTransaction.type == EntryType.TOPUP.value,
                                                    BalanceTransaction.reference_type == "topup",
                                                    BalanceTransaction.reference_id == str(topup.id))).one()
                assert credits[0] <= 1 and credits[1] <= topup.charged_cents * UNITS_PER_CENT
                assert (credits[0] == 1) == self.topups[topup.id].credited
                refunded = db.session.execute(select(func.coalesce(func.sum(TopupRefund.refunded_cents), 0),
                                                     func.coalesce(func.sum(TopupRefund.bonus_reversed), 0))
                                              .where(TopupRefund.topup_id == topup.id)).one()
                assert refunded[0] <= topup.charged_cents and refunded[1] <= topup.bonus_amount


def test_the_money_model_holds_for_random_sequences(app):
    MoneyModel.app = app
    run_state_machine_as_test(MoneyModel, settings=settings(
        max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, database=None,
        suppress_health_check=list(HealthCheck), phases=PHASES, verbosity=Verbosity.verbose if os.environ.get("MONEY_MODEL_VERBOSE") else Verbosity.normal))
