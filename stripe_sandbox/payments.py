"""Customers, payment methods, payment intents, charges, setup intents and refunds.

Every function here runs inside `sandbox.transaction()` and raises StripeAPIError where
Stripe would answer with an error.
"""

from __future__ import annotations

import copy
import datetime
from typing import TYPE_CHECKING, Any

from . import disputes, objects, testdata
from .errors import DOC_URL, StripeAPIError, invalid_param, invalid_request
from .store import new_id
from .testdata import Decline

if TYPE_CHECKING:
    from .sandbox import StripeSandbox

MINIMUM_AMOUNTS = {"eur": 50, "usd": 50, "gbp": 30, "chf": 50}
CURRENCY_SYMBOLS = {"eur": "€", "usd": "$", "gbp": "£"}


def format_amount(amount: int, currency: str) -> str:
    symbol = CURRENCY_SYMBOLS.get(currency.lower())
    value = f"{amount / 100:,.2f}"
    return f"{symbol}{value}" if symbol else f"{value} {currency.upper()}"


# ---- customers --------------------------------------------------------------------------

def create_customer(sb: "StripeSandbox", *, email: str | None = None, name: str | None = None,
                    description: str | None = None, phone: str | None = None,
                    metadata: dict | None = None, preferred_locales: list | None = None) -> dict:
    customer = objects.customer(sb.fixtures, id=new_id("cus", 14), created=sb.now(), email=email,
                                name=name, description=description, phone=phone,
                                metadata=metadata or {}, preferred_locales=preferred_locales or [])
    sb.put(customer)
    sb.emit("customer.created", customer)
    return customer


# ---- payment methods --------------------------------------------------------------------

def create_card_payment_method(sb: "StripeSandbox", number: str, *, name: str | None = None,
                               email: str | None = None) -> dict:
    pm = objects.card_payment_method(
        sb.fixtures, id=new_id("pm"), created=sb.now(), brand=testdata.card_brand(number),
        last4=number[-4:], exp_month=12, exp_year=_year(sb) + 5, funding="credit", country="US",
        fingerprint=_fingerprint(sb, number), name=name, email=email,
    )
    sb.put(pm)
    sb.private(pm["id"])["card_number"] = number
    return pm


def create_sepa_payment_method(sb: "StripeSandbox", iban: str, *, name: str | None = None,
                               email: str | None = None) -> dict:
    pm = objects.sepa_payment_method(
        sb.fixtures, id=new_id("pm"), created=sb.now(), bank_code=testdata.iban_bank_code(iban),
        country=iban[:2], last4=iban[-4:], fingerprint=_fingerprint(sb, iban), name=name, email=email,
    )
    sb.put(pm)
    sb.private(pm["id"])["iban"] = iban
    return pm


def _fingerprint(sb: "StripeSandbox", secret_number: str) -> str:
    """Same card or IBAN, same fingerprint — as on Stripe."""
    fingerprints = sb.store.meta.setdefault("fingerprints", {})
    if secret_number not in fingerprints:
        fingerprints[secret_number] = objects.new_fingerprint()
    return fingerprints[secret_number]


def _year(sb: "StripeSandbox") -> int:
    return datetime.datetime.fromtimestamp(sb.now(), datetime.timezone.utc).year


def _reusable(sb: "StripeSandbox", pm: dict) -> None:
    if sb.private(pm["id"]).get("consumed"):
        raise invalid_request(
            "The provided PaymentMethod was previously used with a PaymentIntent without Customer "
            "attachment, shared with a connected account without Customer attachment, or was "
            "detached from a Customer. It may not be used again. To use a PaymentMethod multiple "
            "times, you must attach it to a Customer first.", "payment_method")


def attach_payment_method(sb: "StripeSandbox", pm: dict, customer_id: str) -> dict:
    _reusable(sb, pm)
    if pm["customer"] == customer_id:
        return pm
    if pm["customer"]:
        raise invalid_request("The payment method you provided has already been attached to a "
                              "customer.", "payment_method")
    pm["customer"] = customer_id
    sb.put(pm)
    sb.emit("payment_method.attached", pm)
    return pm


def detach_payment_method(sb: "StripeSandbox", pm: dict) -> dict:
    if not pm["customer"]:
        raise invalid_request("The payment method you provided is not attached to a customer so "
                              "detachment is impossible.", "payment_method")
    pm["customer"] = None
    sb.private(pm["id"])["consumed"] = True
    sb.put(pm)
    sb.emit("payment_method.detached", pm)
    return pm


# ---- payment intents --------------------------------------------------------------------

def check_amount(amount: int, currency: str, param: str = "amount") -> None:
    minimum = MINIMUM_AMOUNTS.get(currency, 50)
    if amount < minimum:
        raise StripeAPIError(400, "invalid_request_error",
                             f"Amount must be at least {format_amount(minimum, currency)} {currency}",
                             code="amount_too_small", param=param)


def create_payment_intent(sb: "StripeSandbox", *, amount: int, currency: str, customer: str | None,
                          payment_method: str | None = None, description: str | None = None,
                          metadata: dict | None = None, payment_method_types: list[str],
                          setup_future_usage: str | None = None, receipt_email: str | None = None,
                          statement_descriptor: str | None = None,
                          statement_descriptor_suffix: str | None = None) -> dict:
    pi = objects.payment_intent(
        sb.fixtures, id=new_id("pi"), created=sb.now(), amount=amount, currency=currency,
        customer=customer, description=description, metadata=metadata or {},
        payment_method=payment_method, payment_method_types=payment_method_types,
        setup_future_usage=setup_future_usage, receipt_email=receipt_email,
        statement_descriptor=statement_descriptor, statement_descriptor_suffix=statement_descriptor_suffix,
    )
    sb.put(pi)
    sb.emit("payment_intent.created", pi)
    return pi


def confirm_with_saved_method(sb: "StripeSandbox", pi: dict, pm: dict, off_session: bool) -> dict:
    """Confirm through the API (e.g. an off-session top-up); raises the card error Stripe would."""
    _reusable(sb, pm)
    if pm["type"] == "sepa_debit":
        start_sepa_debit(sb, pi, pm, session_id=None)
        return pi
    behaviour = testdata.card_behaviour(sb.private(pm["id"]).get("card_number", ""))
    if behaviour.requires_authentication:
        require_authentication(sb, pi, pm, testdata.AUTHENTICATION_REQUIRED if off_session else None)
        if off_session:
            raise _card_error(testdata.AUTHENTICATION_REQUIRED, pi, pm, None)
        return pi
    if behaviour.decline:
        charge = decline_card(sb, pi, pm, behaviour.decline)
        raise _card_error(behaviour.decline, pi, pm, charge["id"])
    succeed_card_payment(sb, pi, pm)
    return pi


def _card_error(decline: Decline, pi: dict, pm: dict, charge_id: str | None) -> StripeAPIError:
    extra: dict[str, Any] = {"payment_intent": copy.deepcopy(pi), "payment_method": copy.deepcopy(pm)}
    if charge_id:
        extra["charge"] = charge_id
    return StripeAPIError(402, "card_error", decline.message, code=decline.code,
                          decline_code=decline.decline_code, extra=extra)


def _new_charge(sb: "StripeSandbox", pi: dict, pm: dict, status: str, decline: Decline | None = None,
                authenticated: bool = False) -> dict:
    charge = objects.charge(
        sb.fixtures, id=new_id("ch"), created=sb.now(), amount=pi["amount"], currency=pi["currency"],
        customer=pi["customer"], description=pi["description"], metadata=dict(pi["metadata"]),
        payment_intent=pi["id"], pm=pm, status=status,
        failure_code=decline.code if decline else None,
        failure_message=decline.message if decline else None,
        decline_code=decline.decline_code if decline else None,
        balance_transaction=new_id("txn") if status == "succeeded" else None,
        authenticated=authenticated,
    )
    return sb.put(charge)


def _save_for_future_use(sb: "StripeSandbox", pi: dict, pm: dict) -> None:
    if pi["setup_future_usage"] and pi["customer"]:
        attach_payment_method(sb, pm, pi["customer"])
    elif not pm["customer"]:
        sb.private(pm["id"])["consumed"] = True


def succeed_card_payment(sb: "StripeSandbox", pi: dict, pm: dict, authenticated: bool = False) -> dict:
    charge = _new_charge(sb, pi, pm, "succeeded", authenticated=authenticated)
    pi.update(status="succeeded", amount_received=pi["amount"], latest_charge=charge["id"],
              payment_method=pm["id"], last_payment_error=None, next_action=None)
    _save_for_future_use(sb, pi, pm)
    sb.emit("charge.succeeded", charge)
    sb.emit("payment_intent.succeeded", pi)
    dispute_reason = testdata.card_behaviour(sb.private(pm["id"]).get("card_number", "")).dispute_reason
    if dispute_reason:
        disputes.open_dispute(sb, charge, dispute_reason)
    return charge


def _fail_payment(sb: "StripeSandbox", pi: dict, pm: dict, decline: Decline, charge_id: str | None) -> None:
    pi.update(status="requires_payment_method", payment_method=None, next_action=None,
              last_payment_error=objects.last_payment_error(
                  type=decline.type, code=decline.code, message=decline.message,
                  decline_code=decline.decline_code, charge=charge_id,
                  payment_method_type=pm["type"], doc_url=DOC_URL.format(code=decline.code)))
    if charge_id:
        pi["latest_charge"] = charge_id
    sb.emit("payment_intent.payment_failed", pi)


def decline_card(sb: "StripeSandbox", pi: dict, pm: dict, decline: Decline) -> dict:
    charge = _new_charge(sb, pi, pm, "failed", decline)
    sb.emit("charge.failed", charge)
    _fail_payment(sb, pi, pm, decline, charge["id"])
    return charge


def fail_authentication(sb: "StripeSandbox", pi: dict, pm: dict) -> None:
    _fail_payment(sb, pi, pm, testdata.AUTHENTICATION_FAILED, None)


def require_authentication(sb: "StripeSandbox", pi: dict, pm: dict, decline: Decline | None) -> None:
    pi.update(status="requires_action", payment_method=pm["id"], next_action={"type": "use_stripe_sdk"})
    if decline:
        pi["last_payment_error"] = objects.last_payment_error(
            type=decline.type, code=decline.code, message=decline.message,
            decline_code=decline.decline_code, charge=None, payment_method_type=pm["type"],
            doc_url=DOC_URL.format(code=decline.code))
    sb.emit("payment_intent.requires_action", pi)


def start_sepa_debit(sb: "StripeSandbox", pi: dict, pm: dict, session_id: str | None) -> dict:
    charge = _new_charge(sb, pi, pm, "pending")
    pi.update(status="processing", payment_method=pm["id"], latest_charge=charge["id"],
              last_payment_error=None, next_action=None)
    _save_for_future_use(sb, pi, pm)
    sb.emit("charge.pending", charge)
    sb.emit("payment_intent.processing", pi)
    sb.schedule_settlement(pi["id"], session_id)
    return charge


def settle_sepa_debit(sb: "StripeSandbox", payment_intent_id: str) -> bool:
    """The bank's answer to a processing SEPA debit; True when the money arrived."""
    pi = sb.get(payment_intent_id, "payment_intent")
    charge = sb.get(pi["latest_charge"], "charge")
    pm = sb.get(charge["payment_method"], "payment_method")
    failure = testdata.iban_behaviour(sb.private(pm["id"]).get("iban", "")).failure
    if failure:
        charge.update(status="failed", failure_code=failure.code, failure_message=failure.message,
                      outcome=objects.charge_outcome(sb.fixtures, "failed", failure.code))
        sb.emit("charge.failed", charge)
        _fail_payment(sb, pi, pm, failure, charge["id"])
        return False
    charge.update(status="succeeded", paid=True, captured=True, amount_captured=charge["amount"],
                  balance_transaction=new_id("txn"),
                  outcome=objects.charge_outcome(sb.fixtures, "succeeded", None))
    pi.update(status="succeeded", amount_received=pi["amount"])
    sb.emit("charge.succeeded", charge)
    sb.emit("payment_intent.succeeded", pi)
    return True


def return_if_test_iban(sb: "StripeSandbox", payment_intent_id: str) -> None:
    """A settled debit from the returning test IBAN comes back: the bank returns it (a SEPA dispute)."""
    charge = sb.get(sb.get(payment_intent_id, "payment_intent")["latest_charge"], "charge")
    pm = sb.get(charge["payment_method"], "payment_method")
    if testdata.iban_behaviour(sb.private(pm["id"]).get("iban", "")).returned:
        disputes.return_sepa_debit(sb, charge)


def cancel_payment_intent(sb: "StripeSandbox", pi: dict, reason: str) -> None:
    if pi["status"] in ("requires_payment_method", "requires_confirmation", "requires_action"):
        pi.update(status="canceled", canceled_at=sb.now(), cancellation_reason=reason, next_action=None)
        sb.emit("payment_intent.canceled", pi)


# ---- setup intents ----------------------------------------------------------------------

def create_succeeded_setup_intent(sb: "StripeSandbox", *, customer: str | None, pm: dict,
                                  metadata: dict, description: str | None,
                                  payment_method_types: list[str]) -> dict:
    seti = objects.setup_intent(sb.fixtures, id=new_id("seti"), created=sb.now(), customer=customer,
                                description=description, metadata=metadata, payment_method=pm["id"],
                                payment_method_types=payment_method_types)
    sb.put(seti)
    if customer:
        attach_payment_method(sb, pm, customer)
    sb.emit("setup_intent.created", seti)
    sb.emit("setup_intent.succeeded", seti)
    return seti


# ---- refunds ----------------------------------------------------------------------------

def refundable_charge(sb: "StripeSandbox", pi: dict) -> dict:
    charge = sb.store.get(pi["latest_charge"] or "", "charge")
    if pi["status"] != "succeeded" or charge is None:
        raise invalid_request(f"This PaymentIntent ({pi['id']}) does not have a successful charge "
                              "to refund.", "payment_intent")
    return charge


def create_refund(sb: "StripeSandbox", charge: dict, amount: int | None, metadata: dict,
                  reason: str | None) -> dict:
    if charge["status"] != "succeeded":
        raise invalid_request(f"Charge {charge['id']} has not succeeded and cannot be refunded.", "charge")
    remaining = charge["amount"] - charge["amount_refunded"]
    if remaining <= 0:
        raise invalid_request(f"Charge {charge['id']} has already been refunded.", None,
                              "charge_already_refunded")
    if amount is None:
        amount = remaining
    if amount > remaining:
        raise invalid_param("amount", f"Refund amount ({format_amount(amount, charge['currency'])}) is "
                            f"greater than unrefunded amount on charge "
                            f"({format_amount(remaining, charge['currency'])})", "amount_too_large")
    refund = objects.refund(sb.fixtures, id=new_id("re"), created=sb.now(), amount=amount,
                            charge=charge["id"], currency=charge["currency"], metadata=metadata,
                            payment_intent=charge["payment_intent"], reason=reason,
                            balance_transaction=new_id("txn"))
    sb.put(refund)
    charge["amount_refunded"] += amount
    charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
    charge["refunds"]["data"].insert(0, copy.deepcopy(refund))
    sb.emit("charge.refunded", charge)
    sb.emit("refund.created", refund)
    pm = sb.store.get(charge["payment_method"] or "", "payment_method")
    if pm and testdata.card_behaviour(sb.private(pm["id"]).get("card_number", "")).refunds_fail:
        answered = copy.deepcopy(refund)  # the API answers succeeded; the failure follows
        fail_refund(sb, refund, "failed")
        return answered
    return refund


def fail_refund(sb: "StripeSandbox", refund: dict, status: str) -> dict:
    """A refund that the bank could not carry out (failed) or that was stopped (canceled): the money
    stays with the merchant, the charge counts it as not refunded."""
    if refund["status"] in ("failed", "canceled"):
        raise invalid_request(f"Refund {refund['id']} is already {refund['status']}.", "refund")
    charge = sb.get(refund["charge"], "charge")
    refund["status"] = status
    charge["amount_refunded"] -= refund["amount"]
    charge["refunded"] = False
    charge["refunds"]["data"] = [copy.deepcopy(refund) if item["id"] == refund["id"] else item
                                 for item in charge["refunds"]["data"]]
    sb.emit("charge.refund.updated", refund)
    sb.emit("refund.updated", refund)
    if status == "failed":
        sb.emit("refund.failed", refund)
    return refund
