"""Stripe-shaped objects, each built from a deep copy of Stripe's own example of its type.

The examples come from Stripe's fixtures3.json. Builders only overwrite fields the example
has (`_fill` refuses others), so every object carries the example's fields and no more —
except the few listed in FIELDS_BEYOND_FIXTURES: real API fields that the single example
of a type cannot show because they belong to another variant (a SEPA payment method, a
failed payment's error details).
"""

from __future__ import annotations

import copy
import json
import os
import secrets
from pathlib import Path
from typing import Any

# Stripe's own example objects (MIT licence beside the file), copied from ../shared/stripe/ so that
# the demo and the tests work from a plain clone of this repository.
DEFAULT_FIXTURES_PATH = Path(__file__).resolve().parent / "fixtures" / "fixtures3.json"

# Real Stripe fields absent from the fixture examples; each is declared by the stripe
# library's own types (stripe.PaymentMethod.SepaDebit, stripe.PaymentIntent.LastPaymentError,
# stripe.Charge.PaymentMethodDetails.SepaDebit), which the sandbox's tests check.
FIELDS_BEYOND_FIXTURES: dict[str, dict[str, Any]] = {
    "payment_method": {
        "sepa_debit": {
            "bank_code": None,
            "branch_code": None,
            "country": None,
            "fingerprint": None,
            "generated_from": None,
            "last4": None,
        }
    },
    "payment_intent": {
        "last_payment_error": {
            "type": None,
            "code": None,
            "decline_code": None,
            "doc_url": None,
            "message": None,
            "param": None,
            "charge": None,
            "payment_method_type": None,
        }
    },
    "charge": {
        "payment_method_details": {
            "sepa_debit": {
                "bank_code": None,
                "branch_code": None,
                "country": None,
                "fingerprint": None,
                "last4": None,
                "mandate": None,
            }
        }
    },
}


def resolve_fixtures_path(explicit: str | os.PathLike | None = None) -> Path:
    return Path(explicit or os.environ.get("STRIPE_FIXTURES_PATH") or DEFAULT_FIXTURES_PATH)


def merge_shapes(base: Any, extra: Any) -> Any:
    """`base` with the keys of `extra` added, recursively (used to build reference shapes)."""
    if not isinstance(base, dict) or not isinstance(extra, dict):
        return copy.deepcopy(extra if base is None else base)
    merged = copy.deepcopy(base)
    for key, value in extra.items():
        merged[key] = merge_shapes(merged.get(key), value)
    return merged


class Fixtures:
    def __init__(self, path: str | os.PathLike | None = None):
        self.path = resolve_fixtures_path(path)
        try:
            with open(self.path, encoding="utf-8") as f:
                self.examples: dict[str, dict[str, Any]] = json.load(f)["resources"]
        except FileNotFoundError:
            raise FileNotFoundError(f"Stripe's fixtures3.json is not at {self.path}; pass "
                                    "fixtures_path or set STRIPE_FIXTURES_PATH") from None

    def example(self, name: str) -> dict[str, Any]:
        return copy.deepcopy(self.examples[name])

    def reference_shape(self, name: str) -> dict[str, Any]:
        """Every field an object of this type may carry."""
        return merge_shapes(self.examples[name], FIELDS_BEYOND_FIXTURES.get(name, {}))


def _fill(obj: dict[str, Any], **values: Any) -> dict[str, Any]:
    for key, value in values.items():
        if key not in obj:
            raise KeyError(f"Stripe's example {obj.get('object')!r} has no field {key!r}")
        obj[key] = value
    return obj


def list_object(data: list[dict[str, Any]], url: str, has_more: bool = False) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


def customer(fx: Fixtures, *, id: str, created: int, email, name, description, phone,
             metadata: dict, preferred_locales: list) -> dict[str, Any]:
    obj = fx.example("customer")
    _fill(obj, id=id, created=created, email=email, name=name, description=description,
          phone=phone, metadata=metadata, preferred_locales=preferred_locales, address=None,
          balance=0, currency=None, default_source=None, delinquent=False, discount=None,
          invoice_prefix=secrets.token_hex(4).upper(), next_invoice_sequence=1, shipping=None,
          tax_exempt="none", test_clock=None, livemode=False)
    obj["invoice_settings"] = _fill(obj["invoice_settings"], custom_fields=None,
                                    default_payment_method=None, footer=None, rendering_options=None)
    return obj


def checkout_session(fx: Fixtures, *, id: str, created: int, expires_at: int, mode: str,
                     customer: str | None, customer_email: str | None,
                     payment_method_types: list[str], metadata: dict,
                     client_reference_id: str | None, success_url: str | None,
                     cancel_url: str | None, url: str, amount_total: int | None,
                     currency: str | None, locale: str | None) -> dict[str, Any]:
    obj = fx.example("checkout.session")
    paid_mode = mode == "payment"
    _fill(obj, id=id, created=created, expires_at=expires_at, mode=mode, customer=customer,
          customer_email=customer_email, payment_method_types=payment_method_types,
          metadata=metadata, client_reference_id=client_reference_id, success_url=success_url,
          cancel_url=cancel_url, url=url, amount_subtotal=amount_total,
          amount_total=amount_total, currency=currency, locale=locale,
          payment_status="unpaid" if paid_mode else "no_payment_required", status="open",
          payment_intent=None, setup_intent=None, livemode=False, after_expiration=None,
          allow_promotion_codes=None, billing_address_collection=None, client_secret=None,
          consent=None, consent_collection=None, custom_fields=[], custom_text=None,
          customer_creation=None if customer else "if_required", customer_details=None,
          invoice=None, invoice_creation=None, payment_link=None, payment_method_collection=None,
          payment_method_configuration_details=None, payment_method_options={},
          phone_number_collection={"enabled": False}, recovered_from=None,
          saved_payment_method_options=None, shipping_address_collection=None,
          shipping_cost=None, shipping_options=[], submit_type=None, subscription=None,
          ui_mode="hosted", adaptive_pricing={"enabled": False}, discounts=[],
          collected_information=None, permissions=None, wallet_options=None, origin_context=None,
          currency_conversion=None, customer_account=None, integration_identifier=None,
          managed_payments={"enabled": False})
    obj["automatic_tax"] = _fill(obj["automatic_tax"], enabled=False, liability=None, status=None,
                                 provider=None)
    obj["total_details"] = (
        _fill(obj["total_details"], amount_discount=0, amount_shipping=0, amount_tax=0)
        if paid_mode else None
    )
    return obj


def customer_details(fx: Fixtures, *, email: str | None, name: str | None) -> dict[str, Any]:
    details = fx.example("checkout.session")["customer_details"]
    details["address"] = None
    return _fill(details, email=email, name=name, phone=None, tax_exempt="none", tax_ids=[],
                 business_name=None, individual_name=None)


def _billing_details(fx: Fixtures, name: str | None, email: str | None) -> dict[str, Any]:
    details = fx.example("payment_method")["billing_details"]
    details["address"] = {key: None for key in details["address"]}
    return _fill(details, email=email, name=name, phone=None, tax_id=None)


def card_payment_method(fx: Fixtures, *, id: str, created: int, brand: str, last4: str,
                        exp_month: int, exp_year: int, funding: str, country: str,
                        fingerprint: str, name: str | None, email: str | None) -> dict[str, Any]:
    obj = fx.example("payment_method")
    card = obj["card"]
    _fill(card, brand=brand, country=country, display_brand=brand, exp_month=exp_month,
          exp_year=exp_year, fingerprint=fingerprint, funding=funding, generated_from=None,
          last4=last4, wallet=None, regulated_status="unregulated")
    _fill(card["checks"], address_line1_check=None, address_postal_code_check=None, cvc_check="pass")
    _fill(card["networks"], available=[brand], preferred=None)
    _fill(card["three_d_secure_usage"], supported=True)
    return _fill(obj, id=id, created=created, type="card", customer=None, metadata={},
                 livemode=False, allow_redisplay="unspecified", customer_account=None,
                 billing_details=_billing_details(fx, name, email))


def sepa_payment_method(fx: Fixtures, *, id: str, created: int, bank_code: str, country: str,
                        last4: str, fingerprint: str, name: str | None,
                        email: str | None) -> dict[str, Any]:
    obj = fx.example("payment_method")
    del obj["card"]
    # Beyond the fixture: see FIELDS_BEYOND_FIXTURES.
    obj["sepa_debit"] = {"bank_code": bank_code, "branch_code": "", "country": country,
                         "fingerprint": fingerprint, "generated_from": None, "last4": last4}
    return _fill(obj, id=id, created=created, type="sepa_debit", customer=None, metadata={},
                 livemode=False, allow_redisplay="unspecified", customer_account=None,
                 billing_details=_billing_details(fx, name, email))


def payment_intent(fx: Fixtures, *, id: str, created: int, amount: int, currency: str,
                   customer: str | None, description: str | None, metadata: dict,
                   payment_method: str | None, payment_method_types: list[str],
                   setup_future_usage: str | None, receipt_email: str | None,
                   statement_descriptor: str | None,
                   statement_descriptor_suffix: str | None) -> dict[str, Any]:
    obj = fx.example("payment_intent")
    return _fill(obj, id=id, created=created, amount=amount, currency=currency,
                 customer=customer, description=description, metadata=metadata,
                 payment_method=payment_method, payment_method_types=payment_method_types,
                 setup_future_usage=setup_future_usage, receipt_email=receipt_email,
                 statement_descriptor=statement_descriptor,
                 statement_descriptor_suffix=statement_descriptor_suffix,
                 status="requires_payment_method" if payment_method is None else "requires_confirmation",
                 amount_capturable=0, amount_details={"tip": {}}, amount_received=0,
                 application=None, application_fee_amount=None, automatic_payment_methods=None,
                 canceled_at=None, cancellation_reason=None, capture_method="automatic",
                 client_secret=f"{id}_secret_{secrets.token_urlsafe(18)}",
                 confirmation_method="automatic", last_payment_error=None, latest_charge=None,
                 livemode=False, next_action=None, on_behalf_of=None,
                 payment_method_configuration_details=None, payment_method_options={},
                 processing=None, review=None, shipping=None, transfer_data=None,
                 transfer_group=None, source=None, excluded_payment_method_types=None,
                 customer_account=None, managed_payments=None)


def last_payment_error(*, type: str, code: str, message: str, decline_code: str | None,
                       charge: str | None, payment_method_type: str,
                       doc_url: str | None) -> dict[str, Any]:
    # Beyond the fixture (whose example only has `type`): see FIELDS_BEYOND_FIXTURES.
    return {"type": type, "code": code, "decline_code": decline_code, "doc_url": doc_url,
            "message": message, "param": None, "charge": charge,
            "payment_method_type": payment_method_type}


def charge_outcome(fx: Fixtures, status: str, decline_code: str | None) -> dict[str, Any]:
    outcome = fx.example("charge")["outcome"]
    if status == "failed":
        return _fill(outcome, advice_code=None, network_advice_code=None,
                     network_decline_code=None, network_status="declined_by_network",
                     reason=decline_code,
                     seller_message=f"The bank returned the decline code `{decline_code}`.",
                     type="issuer_declined")
    return _fill(outcome, advice_code=None, network_advice_code=None, network_decline_code=None,
                 network_status="approved_by_network", reason=None,
                 seller_message="Payment complete.", type="authorized")


def _card_payment_details(fx: Fixtures, amount: int, pm: dict, authenticated: bool) -> dict:
    details = fx.example("charge")["payment_method_details"]
    card, source = details["card"], pm["card"]
    _fill(card, amount_authorized=amount, brand=source["brand"], checks=dict(source["checks"]),
          country=source["country"], exp_month=source["exp_month"], exp_year=source["exp_year"],
          fingerprint=source["fingerprint"], funding=source["funding"], installments=None,
          last4=source["last4"], mandate=None, network=source["brand"], wallet=None,
          authorization_code=None, regulated_status="unregulated", network_transaction_id=None,
          transaction_link_id=None)
    _fill(card["overcapture"], maximum_amount_capturable=amount, status="unavailable")
    three_d_secure = card["three_d_secure"]
    if authenticated:
        _fill(three_d_secure, authentication_flow="challenge", electronic_commerce_indicator="05",
              exemption_indicator=None, result="authenticated", result_reason=None,
              transaction_id=None, version="2.2.0")
    else:
        card["three_d_secure"] = None
    return _fill(details, type="card")


def _sepa_payment_details(fx: Fixtures, pm: dict) -> dict:
    details = fx.example("charge")["payment_method_details"]
    del details["card"]
    source = pm["sepa_debit"]
    # Beyond the fixture: see FIELDS_BEYOND_FIXTURES.
    details["sepa_debit"] = {"bank_code": source["bank_code"], "branch_code": source["branch_code"],
                             "country": source["country"], "fingerprint": source["fingerprint"],
                             "last4": source["last4"], "mandate": None}
    return _fill(details, type="sepa_debit")


def charge(fx: Fixtures, *, id: str, created: int, amount: int, currency: str,
           customer: str | None, description: str | None, metadata: dict,
           payment_intent: str, pm: dict, status: str, failure_code: str | None,
           failure_message: str | None, decline_code: str | None, balance_transaction: str | None,
           authenticated: bool = False) -> dict[str, Any]:
    obj = fx.example("charge")
    if pm["type"] == "card":
        details = _card_payment_details(fx, amount, pm, authenticated)
    else:
        details = _sepa_payment_details(fx, pm)
    succeeded = status == "succeeded"
    return _fill(obj, id=id, created=created, amount=amount,
                 amount_captured=amount if succeeded else 0, amount_refunded=0,
                 application=None, application_fee=None, application_fee_amount=None,
                 balance_transaction=balance_transaction,
                 billing_details=copy.deepcopy(pm["billing_details"]),
                 calculated_statement_descriptor="STRIPE SANDBOX", captured=succeeded,
                 currency=currency, customer=customer, description=description, disputed=False,
                 failure_balance_transaction=None, failure_code=failure_code,
                 failure_message=failure_message, fraud_details={}, livemode=False,
                 metadata=metadata, on_behalf_of=None,
                 outcome=None if status == "pending" else charge_outcome(fx, status, decline_code),
                 paid=succeeded, payment_intent=payment_intent, payment_method=pm["id"],
                 payment_method_details=details, receipt_email=None, receipt_number=None,
                 receipt_url=None, refunded=False,
                 refunds=list_object([], f"/v1/charges/{id}/refunds"), review=None,
                 shipping=None, source_transfer=None, statement_descriptor=None,
                 statement_descriptor_suffix=None, status=status, transfer_data=None,
                 transfer_group=None, source=None)


def setup_intent(fx: Fixtures, *, id: str, created: int, customer: str | None,
                 description: str | None, metadata: dict, payment_method: str,
                 payment_method_types: list[str]) -> dict[str, Any]:
    obj = fx.example("setup_intent")
    return _fill(obj, id=id, created=created, customer=customer, description=description,
                 metadata=metadata, payment_method=payment_method,
                 payment_method_types=payment_method_types, status="succeeded",
                 usage="off_session", application=None, automatic_payment_methods=None,
                 cancellation_reason=None, client_secret=f"{id}_secret_{secrets.token_urlsafe(18)}",
                 flow_directions=None, last_setup_error=None, latest_attempt=None, livemode=False,
                 mandate=None, next_action=None, on_behalf_of=None,
                 payment_method_configuration_details=None, payment_method_options={},
                 single_use_mandate=None, excluded_payment_method_types=None)


def refund(fx: Fixtures, *, id: str, created: int, amount: int, charge: str, currency: str,
           metadata: dict, payment_intent: str | None, reason: str | None,
           balance_transaction: str) -> dict[str, Any]:
    obj = fx.example("refund")
    return _fill(obj, id=id, created=created, amount=amount, charge=charge, currency=currency,
                 metadata=metadata, payment_intent=payment_intent, reason=reason,
                 status="succeeded", balance_transaction=balance_transaction,
                 destination_details=None, receipt_number=None, source_transfer_reversal=None,
                 transfer_reversal=None, customer=None, customer_account=None,
                 payment_method=None)


def dispute(fx: Fixtures, *, id: str, created: int, amount: int, charge: str, currency: str,
            payment_intent: str | None, reason: str, status: str, due_by: int,
            card: dict | None) -> dict[str, Any]:
    """A dispute of a charge; `card` is the charge's card details (None for a SEPA return, which
    Stripe's dispute shows without card details)."""
    obj = fx.example("dispute")
    details = obj["payment_method_details"]
    if card is None:
        details = None
    else:
        _fill(details["card"], brand=card["brand"], case_type="chargeback",
              network_reason_code="10.4" if reason == "fraudulent" else "13.1", network=card["brand"])
    _fill(obj["evidence_details"], due_by=due_by, has_evidence=False, past_due=False, submission_count=0,
          enhanced_eligibility={})
    return _fill(obj, id=id, created=created, amount=amount, charge=charge, currency=currency,
                 payment_intent=payment_intent, reason=reason, status=status, balance_transactions=[],
                 is_charge_refundable=False, livemode=False, metadata={}, payment_method_details=details,
                 enhanced_eligibility_types=[])


def event(fx: Fixtures, *, id: str, created: int, type: str, data_object: dict,
          request_id: str | None, idempotency_key: str | None,
          pending_webhooks: int) -> dict[str, Any]:
    import stripe  # for its API version; at start-up the import would cost every process ~0.3 s of CPU

    obj = fx.example("event")
    return _fill(obj, id=id, created=created, type=type, data={"object": copy.deepcopy(data_object)},
                 api_version=stripe.api_version, livemode=False, pending_webhooks=pending_webhooks,
                 request={"id": request_id, "idempotency_key": idempotency_key})


def new_fingerprint() -> str:
    return secrets.token_urlsafe(12)[:16]
