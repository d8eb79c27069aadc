"""Languages, the labels of the domain's codes, and formatting in a given language.

Labels are message ids, marked with ``N_`` so that `make messages` extracts them; whoever shows one
translates it: the web layer through Flask-Babel (app/locale.py), documents and emails through
:mod:`core.rendering`. Nothing here knows a request."""

from __future__ import annotations

from datetime import date, datetime, timezone, tzinfo
from decimal import Decimal

from babel import dates
from babel.numbers import format_decimal, format_percent

from core.money import format_whole_number
from core.schema import DisputeStatus, EntryType, TopupStatus

LANGUAGES = {"de": "Deutsch", "en": "English"}
DEFAULT_LANGUAGE = "de"
BASIS_POINTS_PER_WHOLE = 10_000


def N_(message: str) -> str:
    """Marks ``message`` for extraction; it is translated where it is shown."""
    return message


ENTRY_TYPE_LABELS = {
    EntryType.TOPUP.value: N_("Top-up"),
    EntryType.BONUS.value: N_("Bonus"),
    EntryType.CHARGE.value: N_("Call charge"),
    EntryType.REFUND.value: N_("Refund"),
    EntryType.ADJUSTMENT.value: N_("Adjustment"),
    EntryType.TOPUP_REFUND.value: N_("Top-up refund"),
    EntryType.BONUS_REVERSAL.value: N_("Bonus reversal"),
    EntryType.REFUND_FAILED.value: N_("Refund failed"),
    EntryType.DISPUTE.value: N_("Payment disputed"),
    EntryType.DISPUTE_WON.value: N_("Dispute won"),
}

DISPUTE_STATUS_LABELS = {
    DisputeStatus.WARNING_NEEDS_RESPONSE.value: N_("Inquiry: response needed"),
    DisputeStatus.WARNING_UNDER_REVIEW.value: N_("Inquiry under review"),
    DisputeStatus.WARNING_CLOSED.value: N_("Inquiry closed"),
    DisputeStatus.NEEDS_RESPONSE.value: N_("Response needed"),
    DisputeStatus.UNDER_REVIEW.value: N_("Under review"),
    DisputeStatus.WON.value: N_("Won"),
    DisputeStatus.LOST.value: N_("Lost"),
}

TOPUP_STATUS_LABELS = {
    TopupStatus.PENDING.value: N_("Waiting for payment"),
    TopupStatus.PROCESSING.value: N_("Processing (SEPA direct debit)"),
    TopupStatus.CREDITED.value: N_("Credited"),
    TopupStatus.FAILED.value: N_("Failed"),
    TopupStatus.CANCELED.value: N_("Canceled"),
    TopupStatus.EXPIRED.value: N_("Expired"),
    TopupStatus.REVIEW.value: N_("Under review"),
    TopupStatus.REFUNDED.value: N_("Refunded"),
}

DECLINE_REASONS = {
    "insufficient_funds": N_("Insufficient funds on the card."),
    "lost_card": N_("The card was reported lost."),
    "stolen_card": N_("The card was reported stolen."),
    "expired_card": N_("The card has expired."),
    "incorrect_cvc": N_("The security code is incorrect."),
}
FAILURE_REASONS = {
    "card_declined": N_("The card was declined."),
    "authentication_required": N_("The bank requires authentication for this payment."),
    "expired_card": N_("The card has expired."),
    "incorrect_cvc": N_("The security code is incorrect."),
    "processing_error": N_("The payment could not be processed. Please try again."),
    "sepa_failed": N_("The SEPA direct debit failed."),
    "insufficient_funds": N_("Insufficient funds on the account."),
    "account_closed": N_("The bank account is closed."),
    "debit_not_authorized": N_("The account holder did not authorise the direct debit."),
    "payment_intent_payment_attempt_failed": N_("The payment attempt failed."),
}
PAYMENT_FAILED = N_("The payment failed.")

PAYMENT_METHOD_LABELS = {"card": N_("card"), "sepa_debit": N_("SEPA direct debit")}


def payment_failure_message(code: str | None, decline_code: str | None) -> str:
    """The message id of a customer-safe reason for a failed payment."""
    if decline_code in DECLINE_REASONS:
        return DECLINE_REASONS[decline_code]
    return FAILURE_REASONS.get(code or "", PAYMENT_FAILED)


def payment_method_message(method_type: str | None) -> str:
    return PAYMENT_METHOD_LABELS.get(method_type or "card", method_type or "")


def format_minutes(seconds: int, language: str) -> str:
    """Billed seconds as minutes with one decimal: 3690 → '61,5' (de)."""
    return format_decimal(Decimal(seconds) / 60, format="#,##0.0", locale=language)


def format_number(value: int | Decimal | None, language: str) -> str:
    if value is None:
        return ""
    if isinstance(value, int):
        return format_whole_number(value, language)
    return format_decimal(value, locale=language)


def format_percent_basis_points(value: int, language: str) -> str:
    """1900 → '19 %' (de) / '19%' (en)."""
    pattern = "#,##0.##\u00a0%" if language == "de" else "#,##0.##%"
    return format_percent(Decimal(value) / BASIS_POINTS_PER_WHOLE, format=pattern, locale=language)


def format_local_datetime(value: datetime | None, language: str, zone: tzinfo, style: str = "medium") -> str:
    """A naive-UTC database time in the display time zone ``zone``."""
    if value is None:
        return ""
    return dates.format_datetime(value.replace(tzinfo=timezone.utc), style, tzinfo=zone, locale=language)


def format_local_date(value: date | datetime | None, language: str, zone: tzinfo, style: str = "medium") -> str:
    """A date, or the local day of a naive-UTC database time in ``zone``."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.replace(tzinfo=timezone.utc).astimezone(zone).date()
    return dates.format_date(value, style, locale=language)
