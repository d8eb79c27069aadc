"""One function per REST endpoint: read the parameters as Stripe does, then act.

Handlers run inside `sandbox.transaction()`; they return the object to send (which the API
layer expands and serialises) or raise StripeAPIError.
"""

from __future__ import annotations

import fnmatch
import re
from typing import TYPE_CHECKING, Any, Callable

from . import disputes, payments, sessions
from .errors import invalid_param, invalid_request, missing_param
from .objects import list_object
from .params import Params

if TYPE_CHECKING:
    from .sandbox import StripeSandbox

LIST_PARAMS = {"limit", "starting_after", "ending_before"}
SUPPORTED_METHOD_TYPES = ("card", "sepa_debit")
MIN_SESSION_SECONDS, MAX_SESSION_SECONDS = 30 * 60, 24 * 60 * 60


def paginate(items: list[dict], p: Params, url: str) -> dict:
    """`items` newest first, cut by limit / starting_after / ending_before."""
    limit = p.integer("limit", minimum=1) or 10
    if limit > 100:
        raise invalid_param("limit", "This value must be less than or equal to 100.",
                            "parameter_invalid_integer")
    ids = [item["id"] for item in items]
    for key in ("starting_after", "ending_before"):
        cursor = p.text(key)
        if cursor is not None and cursor not in ids:
            raise invalid_request(f"No such object: '{cursor}'", key, "resource_missing")
    if p.has("ending_before"):
        items = items[:ids.index(p.text("ending_before"))]
        return list_object(items[-limit:], url, has_more=len(items) > limit)
    if p.has("starting_after"):
        items = items[ids.index(p.text("starting_after")) + 1:]
    return list_object(items[:limit], url, has_more=len(items) > limit)


def _created_filter(p: Params) -> Callable[[int], bool]:
    value = p.data.get("created")
    if value in (None, ""):
        return lambda created: True
    if isinstance(value, str):
        exact = p.integer("created")
        return lambda created: created == exact
    bounds = p.nested("created", {"gt", "gte", "lt", "lte"})
    checks = {"gt": lambda c, v: c > v, "gte": lambda c, v: c >= v,
              "lt": lambda c, v: c < v, "lte": lambda c, v: c <= v}
    limits = [(checks[k], bounds.integer(k)) for k in checks if bounds.has(k)]
    return lambda created: all(check(created, limit) for check, limit in limits)


def _list_matching(sb: "StripeSandbox", data: dict, object_type: str, fields: tuple[str, ...], url: str) -> dict:
    """A list endpoint: objects of a type filtered by `created` and exact matches on `fields`."""
    p = Params(data, LIST_PARAMS | set(fields) | {"created"})
    wanted = {key: p.text(key) for key in fields if p.has(key)}
    in_range = _created_filter(p)
    found = [obj for obj in sb.store.of_type(object_type)
             if in_range(obj["created"]) and all(obj[k] == v for k, v in wanted.items())]
    return paginate(found, p, url)


def _email(p: Params, key: str) -> str | None:
    email = p.text(key, max_length=512)
    if email is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+", email):
        raise invalid_param(key, f"Invalid email address: {email}", "email_invalid")
    return email


def _url(p: Params, key: str, required: bool = False) -> str | None:
    url = p.text(key, required=required)
    if url is not None and not re.match(r"https?://", url):
        raise invalid_param(key, "Not a valid URL", "url_invalid")
    return url


def _customer_ref(sb: "StripeSandbox", p: Params, key: str = "customer") -> str | None:
    customer_id = p.text(key)
    if customer_id is not None:
        sb.get(customer_id, "customer", param=p.name(key), status=400)
    return customer_id


# ---- customers --------------------------------------------------------------------------

def create_customer(sb: "StripeSandbox", data: dict) -> dict:
    p = Params(data, {"email", "name", "description", "phone", "metadata", "preferred_locales"})
    return payments.create_customer(
        sb, email=_email(p, "email"), name=p.text("name", max_length=256),
        description=p.text("description"), phone=p.text("phone", max_length=20),
        metadata=p.metadata(), preferred_locales=p.array("preferred_locales"),
    )


def retrieve_customer(sb: "StripeSandbox", data: dict, id: str) -> dict:
    Params(data, set())
    return sb.get(id, "customer")


def list_customer_payment_methods(sb: "StripeSandbox", data: dict, id: str) -> dict:
    sb.get(id, "customer")
    return list_payment_methods(sb, {**data, "customer": id}, url=f"/v1/customers/{id}/payment_methods")


# ---- checkout sessions --------------------------------------------------------------------

SESSION_PARAMS = {
    "mode", "customer", "customer_email", "payment_method_types", "line_items", "currency",
    "payment_intent_data", "setup_intent_data", "metadata", "client_reference_id", "success_url",
    "cancel_url", "expires_at", "locale", "ui_mode", "submit_type", "billing_address_collection",
    "customer_creation",
}


def create_checkout_session(sb: "StripeSandbox", data: dict) -> dict:
    p = Params(data, SESSION_PARAMS)
    mode = p.choice("mode", ("payment", "setup"), required=True)
    p.choice("ui_mode", ("hosted",))
    p.choice("submit_type", ("auto", "pay", "book", "donate"))
    p.choice("billing_address_collection", ("auto", "required"))
    p.choice("customer_creation", ("always", "if_required"))
    customer = _customer_ref(sb, p)
    customer_email = _email(p, "customer_email")
    if customer and customer_email:
        raise invalid_request("You may only specify one of these parameters: customer, customer_email.",
                              "customer_email")
    method_types = _method_types(p)
    items = _line_items(p, mode)
    currency = _session_currency(p, mode, items)
    if "sepa_debit" in method_types and currency not in (None, "eur"):
        raise invalid_param("payment_method_types", "The payment method type `sepa_debit` only "
                            "supports the currency eur.", "payment_method_unactivated")
    if mode == "payment":
        payments.check_amount(sum(i["unit_amount"] * i["quantity"] for i in items), currency, "line_items")
    now = sb.now()
    expires_at = p.integer("expires_at")
    if expires_at is None:
        expires_at = now + int(sb.checkout_expiry_seconds)
    elif expires_at < now + MIN_SESSION_SECONDS:
        raise invalid_param("expires_at", "The `expires_at` timestamp must be at least 30 minutes "
                            "from Checkout Session creation.", "parameter_invalid_integer")
    if expires_at > now + MAX_SESSION_SECONDS:
        raise invalid_param("expires_at", "The `expires_at` timestamp must be less than 24 hours "
                            "from Checkout Session creation.", "parameter_invalid_integer")
    return sessions.create(
        sb, mode=mode, customer=customer, customer_email=customer_email,
        payment_method_types=method_types, line_items=items, currency=currency,
        payment_intent_data=_payment_intent_data(p, mode), setup_intent_data=_setup_intent_data(p, mode),
        metadata=p.metadata(), client_reference_id=p.text("client_reference_id", max_length=200),
        success_url=_url(p, "success_url", required=True), cancel_url=_url(p, "cancel_url"),
        expires_at=expires_at, locale=p.text("locale"),
    )


def _method_types(p: Params) -> list[str]:
    types = p.array("payment_method_types") or ["card"]
    for i, method_type in enumerate(types):
        if method_type not in SUPPORTED_METHOD_TYPES:
            raise invalid_param(f"payment_method_types[{i}]", f"The payment method type provided: "
                                f"{method_type} is invalid. The Stripe sandbox supports: "
                                f"{', '.join(SUPPORTED_METHOD_TYPES)}.", "parameter_invalid_string")
    return list(dict.fromkeys(types))


def _line_items(p: Params, mode: str) -> list[dict[str, Any]]:
    raw = p.array("line_items")
    if mode == "setup":
        if raw:
            raise invalid_param("line_items", "You can not pass `line_items` in `setup` mode.")
        return []
    if not raw:
        raise missing_param("line_items")
    items = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise invalid_param(f"line_items[{i}]", "Invalid object")
        item = Params(entry, {"price_data", "quantity", "price"}, f"line_items[{i}]")
        if item.has("price"):
            raise invalid_request(f"No such price: '{item.text('price')}' (the Stripe sandbox "
                                  "supports price_data only)", item.name("price"), "resource_missing")
        price = item.nested("price_data", {"currency", "unit_amount", "product_data", "tax_behavior"},
                            required=True)
        product = price.nested("product_data", {"name", "description", "metadata", "images"},
                               required=True)
        items.append({
            "name": product.text("name", required=True),
            "description": product.text("description"),
            "currency": price.text("currency", required=True).lower(),
            "unit_amount": price.integer("unit_amount", required=True, minimum=0),
            "quantity": item.integer("quantity", required=True, minimum=1),
        })
    return items


def _session_currency(p: Params, mode: str, items: list[dict]) -> str | None:
    currencies = {item["currency"] for item in items}
    if len(currencies) > 1:
        raise invalid_param("line_items", "All line items must use the same currency.")
    explicit = (p.text("currency") or "").lower() or None
    if mode == "payment" and explicit and explicit not in currencies:
        raise invalid_param("currency", "The currency must match the line items' currency.")
    return currencies.pop() if currencies else explicit


def _payment_intent_data(p: Params, mode: str) -> dict[str, Any]:
    data = p.nested("payment_intent_data", {"setup_future_usage", "metadata", "description",
                                            "receipt_email", "statement_descriptor",
                                            "statement_descriptor_suffix", "capture_method"})
    if data is None:
        return {}
    if mode != "payment":
        raise invalid_param("payment_intent_data", "You can only pass `payment_intent_data` in "
                            "`payment` mode.")
    data.choice("capture_method", ("automatic",))
    return {
        "setup_future_usage": data.choice("setup_future_usage", ("off_session", "on_session")),
        "metadata": data.metadata(),
        "description": data.text("description", max_length=1000),
        "receipt_email": _email(data, "receipt_email"),
        "statement_descriptor": data.text("statement_descriptor", max_length=22),
        "statement_descriptor_suffix": data.text("statement_descriptor_suffix", max_length=22),
    }


def _setup_intent_data(p: Params, mode: str) -> dict[str, Any]:
    data = p.nested("setup_intent_data", {"metadata", "description"})
    if data is None:
        return {}
    if mode != "setup":
        raise invalid_param("setup_intent_data", "You can only pass `setup_intent_data` in `setup` mode.")
    return {"metadata": data.metadata(), "description": data.text("description", max_length=1000)}


def retrieve_checkout_session(sb: "StripeSandbox", data: dict, id: str) -> dict:
    Params(data, set())
    return sb.get(id, "checkout.session", "checkout.session")


def list_checkout_sessions(sb: "StripeSandbox", data: dict) -> dict:
    return _list_matching(sb, data, "checkout.session", ("customer", "payment_intent", "status"),
                          "/v1/checkout/sessions")


def expire_checkout_session(sb: "StripeSandbox", data: dict, id: str) -> dict:
    Params(data, set())
    return sessions.expire(sb, sb.get(id, "checkout.session", "checkout.session"))


# ---- payment intents ----------------------------------------------------------------------

PAYMENT_INTENT_PARAMS = {
    "amount", "currency", "customer", "payment_method", "confirm", "off_session", "metadata",
    "description", "payment_method_types", "setup_future_usage", "receipt_email",
    "statement_descriptor", "statement_descriptor_suffix", "capture_method",
    "error_on_requires_action", "automatic_payment_methods", "return_url",
}


def create_payment_intent(sb: "StripeSandbox", data: dict) -> dict:
    p = Params(data, PAYMENT_INTENT_PARAMS)
    amount = p.integer("amount", required=True, minimum=1)
    currency = p.text("currency", required=True).lower()
    payments.check_amount(amount, currency)
    p.choice("capture_method", ("automatic", "automatic_async"))
    p.nested("automatic_payment_methods", {"enabled", "allow_redirects"})
    _url(p, "return_url")
    p.flag("error_on_requires_action")
    customer = _customer_ref(sb, p)
    pm = _payment_method_ref(sb, p, customer)
    confirm = p.flag("confirm")
    off_session = p.choice("off_session", ("true", "false", "one_off", "recurring")) not in (None, "false")
    if off_session and not confirm:
        raise invalid_param("off_session", "You may only specify `off_session` when `confirm` is true.")
    if confirm and pm is None:
        raise invalid_request("You cannot confirm this PaymentIntent because it's missing a payment "
                              "method. Specify a payment method with the `payment_method` parameter.",
                              "payment_method", "payment_intent_unexpected_state")
    types = _method_types(p) if p.has("payment_method_types") else [pm["type"] if pm else "card"]
    if pm and pm["type"] not in types:
        raise invalid_param("payment_method", f"The PaymentMethod provided ({pm['type']}) is not "
                            "allowed for this PaymentIntent (see payment_method_types).")
    pi = payments.create_payment_intent(
        sb, amount=amount, currency=currency, customer=customer,
        payment_method=pm["id"] if pm else None, description=p.text("description", max_length=1000),
        metadata=p.metadata(), payment_method_types=types,
        setup_future_usage=p.choice("setup_future_usage", ("off_session", "on_session")),
        receipt_email=_email(p, "receipt_email"),
        statement_descriptor=p.text("statement_descriptor", max_length=22),
        statement_descriptor_suffix=p.text("statement_descriptor_suffix", max_length=22),
    )
    if confirm:
        payments.confirm_with_saved_method(sb, pi, pm, off_session)
    return pi


def _payment_method_ref(sb: "StripeSandbox", p: Params, customer: str | None) -> dict | None:
    pm_id = p.text("payment_method")
    if pm_id is None:
        return None
    pm = sb.get(pm_id, "payment_method", param="payment_method", status=400)
    if pm["customer"] and customer is None:
        raise invalid_param("payment_method", "The provided PaymentMethod belongs to a Customer, so "
                            "you must also provide that Customer with the `customer` parameter.")
    if pm["customer"] and pm["customer"] != customer:
        raise invalid_param("payment_method", f"The provided PaymentMethod ({pm_id}) does not belong "
                            f"to the Customer ({customer}).")
    return pm


def retrieve_payment_intent(sb: "StripeSandbox", data: dict, id: str) -> dict:
    Params(data, {"client_secret"})
    return sb.get(id, "payment_intent", "payment_intent")


def list_payment_intents(sb: "StripeSandbox", data: dict) -> dict:
    return _list_matching(sb, data, "payment_intent", ("customer",), "/v1/payment_intents")


# ---- payment methods ----------------------------------------------------------------------

def list_payment_methods(sb: "StripeSandbox", data: dict, url: str = "/v1/payment_methods") -> dict:
    p = Params(data, LIST_PARAMS | {"customer", "type", "allow_redisplay"})
    customer = _customer_ref(sb, p)
    method_type = p.text("type")
    found = [pm for pm in sb.store.of_type("payment_method")
             if pm["customer"] is not None and (customer is None or pm["customer"] == customer)
             and (method_type is None or pm["type"] == method_type)]
    return paginate(found, p, url)


def retrieve_payment_method(sb: "StripeSandbox", data: dict, id: str) -> dict:
    Params(data, set())
    return sb.get(id, "payment_method", "payment_method")


def attach_payment_method(sb: "StripeSandbox", data: dict, id: str) -> dict:
    p = Params(data, {"customer"})
    pm = sb.get(id, "payment_method", "payment_method")
    customer = p.text("customer", required=True)
    sb.get(customer, "customer", param="customer", status=400)
    return payments.attach_payment_method(sb, pm, customer)


def detach_payment_method(sb: "StripeSandbox", data: dict, id: str) -> dict:
    Params(data, set())
    return payments.detach_payment_method(sb, sb.get(id, "payment_method", "payment_method"))


# ---- setup intents, charges ---------------------------------------------------------------

def retrieve_setup_intent(sb: "StripeSandbox", data: dict, id: str) -> dict:
    Params(data, {"client_secret"})
    return sb.get(id, "setup_intent", "setup_intent")


def list_setup_intents(sb: "StripeSandbox", data: dict) -> dict:
    return _list_matching(sb, data, "setup_intent", ("customer", "payment_method"), "/v1/setup_intents")


def retrieve_charge(sb: "StripeSandbox", data: dict, id: str) -> dict:
    Params(data, set())
    return sb.get(id, "charge", "charge")


def list_charges(sb: "StripeSandbox", data: dict) -> dict:
    return _list_matching(sb, data, "charge", ("customer", "payment_intent"), "/v1/charges")


# ---- refunds ------------------------------------------------------------------------------

def create_refund(sb: "StripeSandbox", data: dict) -> dict:
    p = Params(data, {"payment_intent", "charge", "amount", "metadata", "reason"})
    if not p.has("payment_intent") and not p.has("charge"):
        raise invalid_request("One of the following params should be provided for this request: "
                              "charge or payment_intent.", None, "parameter_missing")
    if p.has("payment_intent") and p.has("charge"):
        raise invalid_param("payment_intent", "You cannot specify both `charge` and `payment_intent`.")
    if p.has("charge"):
        charge = sb.get(p.text("charge"), "charge", param="charge", status=400)
    else:
        pi = sb.get(p.text("payment_intent"), "payment_intent", param="payment_intent", status=400)
        charge = payments.refundable_charge(sb, pi)
    reason = p.choice("reason", ("duplicate", "fraudulent", "requested_by_customer"))
    return payments.create_refund(sb, charge, p.integer("amount", minimum=1), p.metadata(), reason)


def retrieve_refund(sb: "StripeSandbox", data: dict, id: str) -> dict:
    Params(data, set())
    return sb.get(id, "refund", "refund")


def list_refunds(sb: "StripeSandbox", data: dict) -> dict:
    return _list_matching(sb, data, "refund", ("charge", "payment_intent"), "/v1/refunds")


# ---- disputes -----------------------------------------------------------------------------

EVIDENCE_TEXT_FIELDS = {"uncategorized_text", "product_description", "customer_name", "customer_email_address",
                        "refund_policy_disclosure", "service_date", "access_activity_log"}


def retrieve_dispute(sb: "StripeSandbox", data: dict, id: str) -> dict:
    Params(data, set())
    return sb.get(id, "dispute", "dispute")


def list_disputes(sb: "StripeSandbox", data: dict) -> dict:
    return _list_matching(sb, data, "dispute", ("charge", "payment_intent"), "/v1/disputes")


def update_dispute(sb: "StripeSandbox", data: dict, id: str) -> dict:
    """Evidence decides the outcome as in Stripe's test mode (see stripe_sandbox.disputes)."""
    p = Params(data, {"evidence", "metadata", "submit"})
    dispute = sb.get(id, "dispute", "dispute")
    if p.has("metadata"):
        dispute["metadata"].update(p.metadata())
    evidence = p.nested("evidence", EVIDENCE_TEXT_FIELDS)
    if evidence is None:
        return dispute
    return disputes.submit_evidence(sb, dispute, {key: evidence.text(key) for key in EVIDENCE_TEXT_FIELDS
                                                  if evidence.has(key)})


def close_dispute(sb: "StripeSandbox", data: dict, id: str) -> dict:
    Params(data, set())
    return disputes.accept(sb, sb.get(id, "dispute", "dispute"))


# ---- events -------------------------------------------------------------------------------

def retrieve_event(sb: "StripeSandbox", data: dict, id: str) -> dict:
    Params(data, set())
    return sb.get(id, "event")


def list_events(sb: "StripeSandbox", data: dict) -> dict:
    p = Params(data, LIST_PARAMS | {"type", "types", "created", "delivery_success"})
    patterns = ([p.text("type")] if p.has("type") else []) + list(p.array("types"))
    in_range = _created_filter(p)
    found = [e for e in sb.store.of_type("event")
             if in_range(e["created"])
             and (not patterns or any(fnmatch.fnmatchcase(e["type"], pat) for pat in patterns))]
    return paginate(found, p, "/v1/events")


ID = r"(?P<id>[^/]+)"
ROUTES: list[tuple[str, str, Callable[..., dict]]] = [
    ("POST", r"/v1/customers", create_customer),
    ("GET", rf"/v1/customers/{ID}", retrieve_customer),
    ("GET", rf"/v1/customers/{ID}/payment_methods", list_customer_payment_methods),
    ("POST", r"/v1/checkout/sessions", create_checkout_session),
    ("GET", r"/v1/checkout/sessions", list_checkout_sessions),
    ("GET", rf"/v1/checkout/sessions/{ID}", retrieve_checkout_session),
    ("POST", rf"/v1/checkout/sessions/{ID}/expire", expire_checkout_session),
    ("POST", r"/v1/payment_intents", create_payment_intent),
    ("GET", r"/v1/payment_intents", list_payment_intents),
    ("GET", rf"/v1/payment_intents/{ID}", retrieve_payment_intent),
    ("GET", r"/v1/payment_methods", list_payment_methods),
    ("GET", rf"/v1/payment_methods/{ID}", retrieve_payment_method),
    ("POST", rf"/v1/payment_methods/{ID}/attach", attach_payment_method),
    ("POST", rf"/v1/payment_methods/{ID}/detach", detach_payment_method),
    ("GET", r"/v1/setup_intents", list_setup_intents),
    ("GET", rf"/v1/setup_intents/{ID}", retrieve_setup_intent),
    ("GET", r"/v1/charges", list_charges),
    ("GET", rf"/v1/charges/{ID}", retrieve_charge),
    ("POST", r"/v1/refunds", create_refund),
    ("GET", r"/v1/refunds", list_refunds),
    ("GET", rf"/v1/refunds/{ID}", retrieve_refund),
    ("GET", r"/v1/disputes", list_disputes),
    ("GET", rf"/v1/disputes/{ID}", retrieve_dispute),
    ("POST", rf"/v1/disputes/{ID}", update_dispute),
    ("POST", rf"/v1/disputes/{ID}/close", close_dispute),
    ("GET", r"/v1/events", list_events),
    ("GET", rf"/v1/events/{ID}", retrieve_event),
]
