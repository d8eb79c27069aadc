"""The only module that imports `stripe`. Everything else gets plain dataclasses from here.

Every create call carries an idempotency key derived from our own record (e.g. ``topup-42-checkout``),
so a retried request never creates a second payment. Stripe errors become :class:`PaymentError`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from core.parsing import InvalidInput, check_text, parse_json

if TYPE_CHECKING:
    import stripe

WEBHOOK_TOLERANCE_SECONDS = 300
MAX_EVENT_DEPTH = 32  # Stripe's events nest about 11 levels deep
MAX_EVENT_ID_LENGTH = 255  # the stored id's column
MAX_EVENT_TYPE_LENGTH = 100


@dataclass
class PaymentError(Exception):
    """A Stripe error in our terms. ``message`` is safe to show; ``kind`` is card/request/api/auth/network."""

    kind: str
    code: str | None = None
    decline_code: str | None = None
    message: str = ""
    payment_intent: dict[str, Any] | None = None

    def __str__(self) -> str:
        return f"{self.kind}: {self.code or ''} {self.decline_code or ''} {self.message}".strip()


class InvalidWebhook(Exception):
    """Bad, missing or stale signature, or a body that is not UTF-8: nothing proves it came from Stripe."""


class MalformedEvent(Exception):
    """A correctly signed body that cannot be stored as the event it claims to be: not JSON, not an
    event object, an unusable id or type, a NUL character (PostgreSQL cannot keep it in text) or
    nesting deeper than :data:`MAX_EVENT_DEPTH`. ``event_id`` is the body's own id when that is
    usable, else an id made from the body's hash (a redelivery of the same body is the same event)."""

    def __init__(self, reason: str, payload: bytes, event_id: str | None = None, event_type: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.event_id = event_id or f"malformed_{hashlib.sha256(payload).hexdigest()}"
        self.event_type = event_type or ""


class MalformedObject(ValueError):
    """A Stripe object whose fields do not have Stripe's types (an amount that is not an integer,
    metadata that is not an object of strings, ...): it is evidence of nothing."""


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str | None
    status: str | None
    payment_status: str | None
    mode: str
    customer_id: str | None
    payment_intent_id: str | None
    setup_intent_id: str | None
    amount_total: int | None
    metadata: dict[str, str] = field(default_factory=dict)
    currency: str | None = None
    livemode: bool | None = None


@dataclass(frozen=True)
class PaymentIntent:
    id: str
    status: str
    amount: int
    customer_id: str | None
    payment_method_id: str | None
    payment_method_types: tuple[str, ...]
    latest_charge_id: str | None
    error_code: str | None
    decline_code: str | None
    error_message: str | None
    metadata: dict[str, str] = field(default_factory=dict)
    currency: str | None = None
    amount_received: int | None = None
    livemode: bool | None = None
    created: int | None = None  # unix seconds


@dataclass(frozen=True)
class PaymentMethod:
    id: str
    type: str  # card | sepa_debit
    customer_id: str | None
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None
    bank_code: str | None
    country: str | None


@dataclass(frozen=True)
class Charge:
    id: str
    amount: int
    amount_refunded: int
    payment_intent_id: str | None
    status: str


@dataclass(frozen=True)
class Refund:
    id: str
    amount: int
    status: str
    payment_intent_id: str | None
    charge_id: str | None


@dataclass(frozen=True)
class DisputeReport:
    """A dispute as a Stripe event carries it (every dispute event carries the whole dispute)."""

    id: str
    amount: int  # cents disputed
    currency: str | None
    status: str
    reason: str
    charge_id: str | None
    payment_intent_id: str | None


def _check_not_from_the_future(signature_header: str | None) -> None:
    """Stripe's library refuses a signature older than the tolerance; one dated further ahead is
    refused here alike (a header made to stay valid for days)."""
    stamps = [item[2:] for item in (signature_header or "").split(",") if item.startswith("t=")]
    if stamps and stamps[0].isdigit() and int(stamps[0]) > time.time() + WEBHOOK_TOLERANCE_SECONDS:
        raise InvalidWebhook("the signature's timestamp is in the future")


def _text_problem(value: Any, limit: int) -> str | None:
    if not isinstance(value, str) or not value:
        return "is missing or not a string"
    if len(value) > limit:
        return f"is longer than {limit} characters"
    if not value.isprintable():
        return "contains control characters"
    return None


def _content_problem(event: Any) -> str | None:
    """A string anywhere (key or value) that the databases cannot store: a NUL byte or a lone
    surrogate (PostgreSQL refuses both). Walked without recursion; the parser has bounded the depth."""
    pending = [event]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending.extend(value)
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, str):
            try:
                check_text(value)
            except InvalidInput:
                return "contains a NUL character or a lone surrogate"
    return None


def _storable_event(text: str, payload: bytes) -> dict[str, Any]:
    """The signed body as an event that can be stored as it is, or MalformedEvent with the reason."""
    try:  # core's one parser of outside JSON: nesting beyond MAX_EVENT_DEPTH is refused before parsing
        event = parse_json(text, max_depth=MAX_EVENT_DEPTH, check_strings=False)
    except InvalidInput as error:
        raise MalformedEvent(f"not JSON that can be stored: {error}", payload) from None
    if not isinstance(event, dict) or event.get("object") != "event":
        raise MalformedEvent("not an event object", payload)
    if problem := _text_problem(event.get("id"), MAX_EVENT_ID_LENGTH):
        raise MalformedEvent(f"the event id {problem}", payload)
    event_id = event["id"]
    kind = event.get("type")
    if kind is not None and (problem := _text_problem(kind, MAX_EVENT_TYPE_LENGTH)):
        raise MalformedEvent(f"the event type {problem}", payload, event_id)
    if problem := _content_problem(event):
        raise MalformedEvent(f"the event {problem}", payload, event_id, kind)
    return event


def event_problem(kind: str, event: dict[str, Any]) -> str | None:
    """Why a stored event of type ``kind`` cannot be acted on (no type, its data not an object
    holding an object), or None. Checked before every attempt, so a replay cannot turn it into
    "ignored"."""
    if not kind:
        return "the event has no type"
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        return "the event's data is not an object holding an object"
    return None


class StripeGateway:
    def __init__(self, secret_key: str, webhook_secret: str | None, *, api_base: str | None = None,
                 make_http_client: Callable[[], Any] | None = None, sandbox: bool = False):
        self._secret_key = secret_key
        self._api_base = api_base
        self._make_http_client = make_http_client
        # Several secrets, comma-separated, while Stripe rotates the endpoint's signing secret.
        self._webhook_secrets = tuple(part.strip() for part in (webhook_secret or "").split(",") if part.strip())
        self.is_sandbox = sandbox
        self.is_test_mode = sandbox or secret_key.startswith(("sk_test_", "rk_test_"))

    @cached_property
    def _client(self) -> stripe.StripeClient:
        """Built on first use: importing the library costs every process ~0.3 s of CPU at start-up,
        and most (CLI commands, most jobs) never talk to Stripe."""
        import stripe

        options: dict[str, Any] = {"max_network_retries": 2}
        if self._api_base:
            options["base_addresses"] = {"api": self._api_base}
        if self._make_http_client is not None:
            options["http_client"] = self._make_http_client()
        return stripe.StripeClient(self._secret_key, **options)

    # -- customers -------------------------------------------------------------------------

    def create_customer(self, company_id: int, request_key: str, name: str, email: str | None) -> str:
        params = {"name": name, "metadata": {"company_id": str(company_id)}}
        if email:
            params["email"] = email
        customer = self._call(self._client.v1.customers.create, params, key=f"customer-{request_key}")
        return customer["id"]

    # -- checkout ---------------------------------------------------------------------------

    def create_payment_checkout(self, *, topup_id: int, request_key: str, customer_id: str, amount_cents: int, description: str,
                                payment_method_types: list[str], save_payment_method: bool,
                                success_url: str, cancel_url: str, locale: str) -> CheckoutSession:
        metadata = {"topup_id": str(topup_id)}
        intent_data: dict[str, Any] = {"metadata": metadata, "description": description}
        if save_payment_method:
            intent_data["setup_future_usage"] = "off_session"
        params = {
            "mode": "payment",
            "customer": customer_id,
            "client_reference_id": str(topup_id),
            "payment_method_types": payment_method_types,
            "line_items": [{
                "quantity": 1,
                "price_data": {"currency": "eur", "unit_amount": amount_cents, "product_data": {"name": description}},
            }],
            "payment_intent_data": intent_data,
            "metadata": metadata,
            "success_url": success_url,
            "cancel_url": cancel_url,
            "locale": locale,
        }
        session = self._call(self._client.v1.checkout.sessions.create, params, key=f"topup-{request_key}-checkout")
        return _checkout_session(session)

    def create_setup_checkout(self, *, company_id: int, request_key: str, customer_id: str,
                              payment_method_types: list[str], success_url: str, cancel_url: str,
                              locale: str) -> CheckoutSession:
        params = {
            "mode": "setup",
            "customer": customer_id,
            "currency": "eur",
            "payment_method_types": payment_method_types,
            "metadata": {"company_id": str(company_id), "purpose": "save_payment_method"},
            "setup_intent_data": {"metadata": {"company_id": str(company_id)}},
            "success_url": success_url,
            "cancel_url": cancel_url,
            "locale": locale,
        }
        session = self._call(self._client.v1.checkout.sessions.create, params, key=f"setup-{request_key}")
        return _checkout_session(session)

    def retrieve_checkout_session(self, session_id: str) -> CheckoutSession:
        return _checkout_session(self._call(self._client.v1.checkout.sessions.retrieve, session_id))

    def expire_checkout_session(self, session_id: str) -> CheckoutSession:
        return _checkout_session(self._call(self._client.v1.checkout.sessions.expire, session_id))

    # -- payments -----------------------------------------------------------------------------

    def retrieve_payment_intent(self, intent_id: str) -> PaymentIntent:
        return payment_intent_from(self._call(self._client.v1.payment_intents.retrieve, intent_id))

    def retrieve_charge(self, charge_id: str) -> Charge:
        data = self._call(self._client.v1.charges.retrieve, charge_id)
        return Charge(id=data["id"], amount=data.get("amount") or 0, amount_refunded=data.get("amount_refunded") or 0,
                      payment_intent_id=_id_of(data.get("payment_intent")), status=data.get("status") or "")

    def charge_saved_method(self, *, attempt_key: str, customer_id: str, payment_method_id: str,
                            amount_cents: int, description: str, metadata: dict[str, str]) -> PaymentIntent:
        params = {
            "amount": amount_cents,
            "currency": "eur",
            "customer": customer_id,
            "payment_method": payment_method_id,
            "confirm": True,
            "off_session": True,
            "description": description,
            "metadata": metadata,
        }
        return payment_intent_from(self._call(self._client.v1.payment_intents.create, params, key=attempt_key))

    def refund(self, *, refund_key: str, payment_intent_id: str, amount_cents: int | None,
               metadata: dict[str, str]) -> Refund:
        params: dict[str, Any] = {"payment_intent": payment_intent_id, "metadata": metadata}
        if amount_cents is not None:
            params["amount"] = amount_cents
        return refund_from(self._call(self._client.v1.refunds.create, params, key=refund_key))

    def list_refunds(self, payment_intent_id: str) -> list[Refund]:
        listing = self._call(self._client.v1.refunds.list, {"payment_intent": payment_intent_id, "limit": 100})
        return [refund_from(item) for item in listing["data"]]

    # -- saved payment methods ------------------------------------------------------------------

    def list_payment_methods(self, customer_id: str) -> list[PaymentMethod]:
        methods = []
        for method_type in ("card", "sepa_debit"):
            listing = self._call(self._client.v1.payment_methods.list,
                                 {"customer": customer_id, "type": method_type, "limit": 100})
            methods.extend(payment_method_from(item) for item in listing["data"])
        return methods

    def retrieve_payment_method(self, method_id: str) -> PaymentMethod:
        return payment_method_from(self._call(self._client.v1.payment_methods.retrieve, method_id))

    def detach_payment_method(self, method_id: str) -> None:
        self._call(self._client.v1.payment_methods.detach, method_id)

    # -- webhooks --------------------------------------------------------------------------------

    def verify_event(self, payload: bytes, signature_header: str | None) -> dict[str, Any]:
        """The event as a plain dict, if a signature over the raw body is valid for one of the
        configured secrets and its time is within the tolerance, in the past or in the future.
        Raises InvalidWebhook when the signature does not prove that, MalformedEvent when it does
        but the body cannot be stored as the event it claims to be (see :func:`event_problem` for
        what a stored event is checked for before it is acted on)."""
        if not self._webhook_secrets:
            raise InvalidWebhook("no webhook secret configured")
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidWebhook("the body is not UTF-8") from None
        _check_not_from_the_future(signature_header)
        import stripe  # on the first webhook, not at start-up (see _client)

        errors = []
        for secret in self._webhook_secrets:
            try:
                stripe.WebhookSignature.verify_header(text, signature_header, secret, WEBHOOK_TOLERANCE_SECONDS)
                break
            except stripe.SignatureVerificationError as error:
                errors.append(str(error))
        else:
            raise InvalidWebhook("; ".join(errors))
        return _storable_event(text, payload)

    # -- listing for reconciliation (created in a time range, unix seconds) ------------------------

    def list_payment_intents_created(self, since: int, until: int | None = None) -> list[PaymentIntent]:
        return [payment_intent_from(item) for item in self._list_all(self._client.v1.payment_intents.list, since, until)]

    def list_refunds_created(self, since: int, until: int | None = None) -> list[Refund]:
        return [refund_from(item) for item in self._list_all(self._client.v1.refunds.list, since, until)]

    def list_events_created(self, since: int, until: int | None = None) -> list[dict[str, Any]]:
        """Events as plain dicts (id, type, created, pending_webhooks, data)."""
        return self._list_all(self._client.v1.events.list, since, until)

    def _list_all(self, method, since: int, until: int | None) -> list[dict[str, Any]]:
        created: dict[str, int] = {"gte": since}
        if until is not None:
            created["lte"] = until
        params: dict[str, Any] = {"created": created, "limit": 100}
        items: list[dict[str, Any]] = []
        while True:
            page = self._call(method, params)
            items.extend(page["data"])
            if not page.get("has_more") or not page["data"]:
                return items
            params = {**params, "starting_after": page["data"][-1]["id"]}

    # -- plumbing --------------------------------------------------------------------------------

    def _call(self, method, *args, key: str | None = None):
        import stripe  # already loaded by self._client; here for its error classes

        options = {"idempotency_key": key} if key else None
        try:
            if options:
                return _as_dict(method(*args, options=options))
            return _as_dict(method(*args))
        except stripe.StripeError as error:
            raise _payment_error(error) from None


def _as_dict(obj) -> dict[str, Any]:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def _payment_error(error: stripe.StripeError) -> PaymentError:
    import stripe  # loaded already: an error came from it
    body = (error.json_body or {}).get("error", {}) if isinstance(error.json_body, dict) else {}
    kinds = {
        stripe.CardError: "card",
        stripe.InvalidRequestError: "request",
        stripe.IdempotencyError: "request",
        stripe.AuthenticationError: "auth",
        stripe.PermissionError: "auth",
        stripe.APIConnectionError: "network",
        stripe.RateLimitError: "network",
    }
    kind = next((name for cls, name in kinds.items() if isinstance(error, cls)), "api")
    return PaymentError(
        kind=kind,
        code=body.get("code") or error.code or body.get("type"),
        decline_code=body.get("decline_code"),
        message=error.user_message or body.get("message") or "",
        payment_intent=body.get("payment_intent"),
    )


def _id_of(value) -> str | None:
    """Stripe fields hold an id or, when expanded, the object."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return value["id"]
    raise MalformedObject("an id is neither a string nor an object with an id")


_TYPE_NAMES = {str: "a string", int: "an integer", bool: "true or false", dict: "an object", list: "a list"}


def _field(data: dict[str, Any], name: str, kind: type, default: Any = None) -> Any:
    """``data[name]`` if it has Stripe's type (absent or null gives ``default``); otherwise the object
    is malformed. A bool is no integer here, though Python says it is."""
    value = data.get(name)
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise MalformedObject(f"{name} is not {_TYPE_NAMES[kind]}")
    return value


def _metadata(data: dict[str, Any]) -> dict[str, str]:
    metadata = _field(data, "metadata", dict, {})
    if not all(isinstance(key, str) and isinstance(value, str) for key, value in metadata.items()):
        raise MalformedObject("metadata holds values that are not strings")
    return dict(metadata)


def _object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise MalformedObject("not an object")
    if not isinstance(data["id"], str):
        raise MalformedObject("id is not a string")
    return data


def _checkout_session(data: dict[str, Any]) -> CheckoutSession:
    data = _object(data)
    return CheckoutSession(
        id=data["id"],
        url=_field(data, "url", str),
        status=_field(data, "status", str),
        payment_status=_field(data, "payment_status", str),
        mode=_field(data, "mode", str) or "payment",
        customer_id=_id_of(data.get("customer")),
        payment_intent_id=_id_of(data.get("payment_intent")),
        setup_intent_id=_id_of(data.get("setup_intent")),
        amount_total=_field(data, "amount_total", int),
        metadata=_metadata(data),
        currency=_field(data, "currency", str),
        livemode=_field(data, "livemode", bool),
    )


def checkout_session_from(data: dict[str, Any]) -> CheckoutSession:
    """A checkout session from an event payload; MalformedObject if its fields are not Stripe's types."""
    return _checkout_session(data)


def payment_intent_from(data: dict[str, Any]) -> PaymentIntent:
    """A payment intent from Stripe's answer or an event payload; MalformedObject if its fields are
    not Stripe's types."""
    data = _object(data)
    error = _field(data, "last_payment_error", dict, {})
    methods = _field(data, "payment_method_types", list, [])
    if not all(isinstance(method, str) for method in methods):
        raise MalformedObject("payment_method_types holds values that are not strings")
    return PaymentIntent(
        id=data["id"],
        status=_field(data, "status", str, ""),
        amount=_field(data, "amount", int, 0),
        customer_id=_id_of(data.get("customer")),
        payment_method_id=_id_of(data.get("payment_method")),
        payment_method_types=tuple(methods),
        latest_charge_id=_id_of(data.get("latest_charge")),
        error_code=_field(error, "code", str),
        decline_code=_field(error, "decline_code", str),
        error_message=_field(error, "message", str),
        metadata=_metadata(data),
        currency=_field(data, "currency", str),
        amount_received=_field(data, "amount_received", int),
        livemode=_field(data, "livemode", bool),
        created=_field(data, "created", int),
    )


def payment_method_from(data: dict[str, Any]) -> PaymentMethod:
    card = data.get("card") or {}
    sepa = data.get("sepa_debit") or {}
    return PaymentMethod(
        id=data["id"],
        type=data.get("type") or "",
        customer_id=_id_of(data.get("customer")),
        brand=card.get("brand"),
        last4=card.get("last4") or sepa.get("last4"),
        exp_month=card.get("exp_month"),
        exp_year=card.get("exp_year"),
        bank_code=sepa.get("bank_code"),
        country=sepa.get("country") or card.get("country"),
    )


def dispute_from(data: dict[str, Any]) -> DisputeReport:
    """A dispute from an event payload."""
    return DisputeReport(
        id=data["id"],
        amount=data.get("amount") or 0,
        currency=data.get("currency"),
        status=data.get("status") or "",
        reason=data.get("reason") or "",
        charge_id=_id_of(data.get("charge")),
        payment_intent_id=_id_of(data.get("payment_intent")),
    )


def refund_from(data: dict[str, Any]) -> Refund:
    return Refund(
        id=data["id"],
        amount=data.get("amount") or 0,
        status=data.get("status") or "",
        payment_intent_id=_id_of(data.get("payment_intent")),
        charge_id=_id_of(data.get("charge")),
    )
