"""Checkout Sessions: creation, expiry, and what happens when the customer pays on the page.

Every function here runs inside `sandbox.transaction()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import objects, payments, testdata
from .errors import invalid_request
from .store import new_checkout_session_id

if TYPE_CHECKING:
    from .sandbox import StripeSandbox

SESSION_ID_PLACEHOLDER = "{CHECKOUT_SESSION_ID}"


@dataclass
class PageOutcome:
    """What the hosted page shows next: a redirect, the form again with an error, or 3-D Secure."""

    kind: str  # "redirect" | "error" | "authenticate"
    message: str | None = None
    url: str | None = None


def create(sb: "StripeSandbox", *, mode: str, customer: str | None, customer_email: str | None,
           payment_method_types: list[str], line_items: list[dict[str, Any]], currency: str | None,
           payment_intent_data: dict[str, Any], setup_intent_data: dict[str, Any], metadata: dict,
           client_reference_id: str | None, success_url: str, cancel_url: str | None,
           expires_at: int, locale: str | None) -> dict:
    session_id = new_checkout_session_id()
    amount_total = sum(item["unit_amount"] * item["quantity"] for item in line_items)
    session = objects.checkout_session(
        sb.fixtures, id=session_id, created=sb.now(), expires_at=expires_at, mode=mode,
        customer=customer, customer_email=customer_email,
        payment_method_types=payment_method_types, metadata=metadata,
        client_reference_id=client_reference_id, success_url=success_url, cancel_url=cancel_url,
        url=sb.checkout_url(session_id, success_url), amount_total=amount_total if mode == "payment" else None,
        currency=currency, locale=locale,
    )
    sb.put(session)
    sb.private(session_id).update(line_items=line_items, payment_intent_data=payment_intent_data,
                                  setup_intent_data=setup_intent_data)
    sb.schedule_expiry(expires_at)
    return session


def line_items(sb: "StripeSandbox", session: dict) -> list[dict[str, Any]]:
    return sb.private(session["id"]).get("line_items", [])


def description(sb: "StripeSandbox", session: dict) -> str:
    return ", ".join(
        item["name"] if item["quantity"] == 1 else f"{item['quantity']} × {item['name']}"
        for item in line_items(sb, session)
    )


def awaiting_authentication(sb: "StripeSandbox", session: dict) -> bool:
    return bool(sb.private(session["id"]).get("awaiting_authentication"))


def redirect_url(url: str, session: dict) -> str:
    return url.replace(SESSION_ID_PLACEHOLDER, session["id"])


def expire(sb: "StripeSandbox", session: dict) -> dict:
    if session["status"] != "open":
        raise invalid_request('Only Checkout Sessions with a status in ["open"] can be expired. '
                              f'This session has status "{session["status"]}".')
    session.update(status="expired", url=None)
    sb.private(session["id"]).pop("awaiting_authentication", None)
    if session["payment_intent"]:
        payments.cancel_payment_intent(sb, sb.get(session["payment_intent"], "payment_intent"), "abandoned")
    sb.put(session)
    sb.emit("checkout.session.expired", session)
    return session


# ---- paying on the hosted page ------------------------------------------------------------

def pay_with_card(sb: "StripeSandbox", session: dict, number: str) -> PageOutcome:
    number = testdata.digits_only(number)
    if not testdata.card_number_valid(number):
        return PageOutcome("error", "Your card number is incorrect.")
    behaviour = testdata.card_behaviour(number)
    pm = payments.create_card_payment_method(sb, number, email=email_for(sb, session))
    if session["mode"] == "setup":
        if behaviour.declines_setup:
            return PageOutcome("error", behaviour.decline.message)
        if behaviour.requires_authentication:
            return _ask_for_authentication(sb, session, pm)
        return _complete_setup(sb, session, pm)
    pi = _payment_intent(sb, session)
    if behaviour.requires_authentication:
        payments.require_authentication(sb, pi, pm, None)
        return _ask_for_authentication(sb, session, pm)
    if behaviour.decline:
        payments.decline_card(sb, pi, pm, behaviour.decline)
        return PageOutcome("error", behaviour.decline.message)
    _prepare_saving(sb, session, pi)
    payments.succeed_card_payment(sb, pi, pm)
    return _complete(sb, session, "paid", pm)


def pay_with_iban(sb: "StripeSandbox", session: dict, iban: str) -> PageOutcome:
    iban = testdata.normalize_iban(iban)
    if not testdata.iban_valid(iban):
        return PageOutcome("error", "Your IBAN is incorrect.")
    pm = payments.create_sepa_payment_method(sb, iban, email=email_for(sb, session))
    if session["mode"] == "setup":
        return _complete_setup(sb, session, pm)
    pi = _payment_intent(sb, session)
    _prepare_saving(sb, session, pi)
    payments.start_sepa_debit(sb, pi, pm, session["id"])
    return _complete(sb, session, "unpaid", pm)


def authenticate(sb: "StripeSandbox", session: dict, approved: bool) -> PageOutcome:
    pm_id = sb.private(session["id"]).pop("awaiting_authentication", None)
    if not pm_id:
        return PageOutcome("error", "There is no payment waiting for authentication.")
    pm = sb.get(pm_id, "payment_method")
    if session["mode"] == "setup":
        if approved:
            return _complete_setup(sb, session, pm)
        return PageOutcome("error", testdata.AUTHENTICATION_FAILED.message)
    pi = sb.get(session["payment_intent"], "payment_intent")
    if not approved:
        payments.fail_authentication(sb, pi, pm)
        return PageOutcome("error", testdata.AUTHENTICATION_FAILED.message)
    _prepare_saving(sb, session, pi)
    payments.succeed_card_payment(sb, pi, pm, authenticated=True)
    return _complete(sb, session, "paid", pm)


def record_async_result(sb: "StripeSandbox", session_id: str, succeeded: bool) -> None:
    session = sb.get(session_id, "checkout.session")
    if succeeded:
        session["payment_status"] = "paid"
    sb.put(session)
    sb.emit("checkout.session.async_payment_succeeded" if succeeded
            else "checkout.session.async_payment_failed", session)


def email_for(sb: "StripeSandbox", session: dict) -> str | None:
    customer = sb.store.get(session["customer"] or "", "customer")
    return (customer or {}).get("email") or session["customer_email"]


def _ask_for_authentication(sb: "StripeSandbox", session: dict, pm: dict) -> PageOutcome:
    sb.private(session["id"])["awaiting_authentication"] = pm["id"]
    return PageOutcome("authenticate")


def _payment_intent(sb: "StripeSandbox", session: dict) -> dict:
    """The session's PaymentIntent, created at the first attempt to pay and reused after a decline."""
    if session["payment_intent"]:
        return sb.get(session["payment_intent"], "payment_intent")
    data = sb.private(session["id"]).get("payment_intent_data", {})
    pi = payments.create_payment_intent(
        sb, amount=session["amount_total"], currency=session["currency"], customer=session["customer"],
        description=data.get("description"), metadata=data.get("metadata", {}),
        payment_method_types=session["payment_method_types"],
        setup_future_usage=data.get("setup_future_usage"), receipt_email=data.get("receipt_email"),
        statement_descriptor=data.get("statement_descriptor"),
        statement_descriptor_suffix=data.get("statement_descriptor_suffix"),
    )
    session["payment_intent"] = pi["id"]
    sb.put(session)
    return pi


def _prepare_saving(sb: "StripeSandbox", session: dict, pi: dict) -> None:
    """A method saved for later needs a customer: Checkout creates one when none was given."""
    if pi["setup_future_usage"] and not session["customer"]:
        customer = payments.create_customer(sb, email=session["customer_email"])
        session["customer"] = pi["customer"] = customer["id"]


def _complete_setup(sb: "StripeSandbox", session: dict, pm: dict) -> PageOutcome:
    data = sb.private(session["id"]).get("setup_intent_data", {})
    seti = payments.create_succeeded_setup_intent(
        sb, customer=session["customer"], pm=pm, metadata=data.get("metadata", {}),
        description=data.get("description"), payment_method_types=session["payment_method_types"],
    )
    session["setup_intent"] = seti["id"]
    return _complete(sb, session, "no_payment_required", pm)


def _complete(sb: "StripeSandbox", session: dict, payment_status: str, pm: dict) -> PageOutcome:
    session.update(status="complete", payment_status=payment_status, url=None,
                   customer_details=objects.customer_details(
                       sb.fixtures, email=email_for(sb, session), name=pm["billing_details"]["name"]))
    sb.put(session)
    sb.emit("checkout.session.completed", session)
    return PageOutcome("redirect", url=redirect_url(session["success_url"], session))
