"""Stripe's test card numbers and IBANs, and what each of them does."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Decline:
    code: str
    decline_code: str | None
    message: str
    type: str = "card_error"


INSUFFICIENT_FUNDS = Decline("card_declined", "insufficient_funds", "Your card has insufficient funds.")
GENERIC_DECLINE = Decline("card_declined", "generic_decline", "Your card was declined.")
EXPIRED_CARD = Decline("expired_card", "expired_card", "Your card has expired.")
AUTHENTICATION_REQUIRED = Decline(
    "authentication_required",
    "authentication_required",
    "Your card was declined. This transaction requires authentication.",
)
AUTHENTICATION_FAILED = Decline(
    "payment_intent_authentication_failure",
    None,
    "We are unable to authenticate your payment method. Please choose a different payment "
    "method and try again.",
    type="invalid_request_error",
)
SEPA_INSUFFICIENT_FUNDS = Decline(
    "insufficient_funds", None, "The customer's account has insufficient funds to cover this payment."
)


@dataclass(frozen=True)
class CardBehaviour:
    number: str
    label: str
    decline: Decline | None = None  # every charge fails so
    declines_setup: bool = False  # saving the card fails too
    requires_authentication: bool = False  # on-page 3-D Secure; off-session: authentication_required
    dispute_reason: str | None = None  # the payment succeeds, then the cardholder disputes it so
    refunds_fail: bool = False  # a refund starts as succeeded, then fails (the card was closed)


TEST_CARDS = {
    card.number: card
    for card in [
        CardBehaviour("4242424242424242", "succeeds"),
        CardBehaviour("4000000000009995", "declined: insufficient funds", decline=INSUFFICIENT_FUNDS),
        CardBehaviour("4000002500003155", "requires authentication", requires_authentication=True),
        CardBehaviour("4000000000000002", "declined", decline=GENERIC_DECLINE, declines_setup=True),
        CardBehaviour("4000000000000069", "declined: expired card", decline=EXPIRED_CARD, declines_setup=True),
        CardBehaviour("5555555555554444", "succeeds (Mastercard)"),
        CardBehaviour("4000000000000259", "succeeds, then disputed as fraudulent", dispute_reason="fraudulent"),
        CardBehaviour("4000000000005126", "succeeds; a refund of it fails later", refunds_fail=True),
    ]
}
HOSTED_PAGE_CARDS = ["4242424242424242", "4000000000009995", "4000002500003155", "4000000000000259"]


@dataclass(frozen=True)
class IbanBehaviour:
    iban: str
    label: str
    failure: Decline | None = None
    returned: bool = False  # settles, then the bank returns it (a SEPA dispute, which cannot be contested)


TEST_IBANS = {
    entry.iban: entry
    for entry in [
        IbanBehaviour("DE89370400440532013000", "succeeds after a delay"),
        IbanBehaviour("DE62370400440532013001", "fails after a delay", failure=SEPA_INSUFFICIENT_FUNDS),
        IbanBehaviour("DE35370400440532013002", "succeeds, then is returned (disputed)", returned=True),
    ]
}


def digits_only(text: str) -> str:
    return re.sub(r"[\s-]", "", text or "")


def card_number_valid(number: str) -> bool:
    if not re.fullmatch(r"\d{13,19}", number):
        return False
    total = 0
    for i, digit in enumerate(reversed(number)):
        value = int(digit) * (2 if i % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def card_brand(number: str) -> str:
    if number.startswith("4"):
        return "visa"
    if re.match(r"5[1-5]|2[2-7]", number):
        return "mastercard"
    if re.match(r"3[47]", number):
        return "amex"
    if re.match(r"6011|65", number):
        return "discover"
    return "unknown"


def card_behaviour(number: str) -> CardBehaviour:
    return TEST_CARDS.get(number, CardBehaviour(number, "succeeds"))


def normalize_iban(text: str) -> str:
    return re.sub(r"\s", "", text or "").upper()


def iban_valid(iban: str) -> bool:
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", iban):
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def iban_behaviour(iban: str) -> IbanBehaviour:
    return TEST_IBANS.get(iban, IbanBehaviour(iban, "succeeds after a delay"))


def iban_bank_code(iban: str) -> str:
    """The national bank code; for Germany the 8-digit Bankleitzahl after the check digits."""
    return iban[4:12]


def group4(text: str) -> str:
    return " ".join(text[i:i + 4] for i in range(0, len(text), 4))
