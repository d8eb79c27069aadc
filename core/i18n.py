"""Language choice and locale-aware formatting for templates, emails and CSV.

Messages are translated by Flask-Babel: ``gettext`` and ``lazy_gettext`` here are its own (core's
emails and labels take them from here); templates use Jinja's i18n extension as Flask-Babel
installs it."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

from babel import dates
from babel.numbers import format_decimal, format_percent
from flask import g, request, session
from flask_babel import format_date, get_locale, get_timezone, lazy_gettext
from flask_babel import gettext  # noqa: F401 - core's emails take it from here
from flask_login import current_user

from core.schema import EntryType, TopupStatus
from core.money import UNITS_PER_CENT, format_money, format_whole_number

_l = lazy_gettext

LANGUAGES = {"de": "Deutsch", "en": "English"}
BASIS_POINTS_PER_WHOLE = 10_000
DEFAULT_LANGUAGE = "de"

ENTRY_TYPE_LABELS = {
    EntryType.TOPUP.value: _l("Top-up"),
    EntryType.BONUS.value: _l("Bonus"),
    EntryType.CHARGE.value: _l("Call charge"),
    EntryType.REFUND.value: _l("Refund"),
    EntryType.ADJUSTMENT.value: _l("Adjustment"),
    EntryType.TOPUP_REFUND.value: _l("Top-up refund"),
    EntryType.BONUS_REVERSAL.value: _l("Bonus reversal"),
}

TOPUP_STATUS_LABELS = {
    TopupStatus.PENDING.value: _l("Waiting for payment"),
    TopupStatus.PROCESSING.value: _l("Processing (SEPA direct debit)"),
    TopupStatus.CREDITED.value: _l("Credited"),
    TopupStatus.FAILED.value: _l("Failed"),
    TopupStatus.CANCELED.value: _l("Canceled"),
    TopupStatus.EXPIRED.value: _l("Expired"),
}

_DECLINE_REASONS = {
    "insufficient_funds": _l("Insufficient funds on the card."),
    "lost_card": _l("The card was reported lost."),
    "stolen_card": _l("The card was reported stolen."),
    "expired_card": _l("The card has expired."),
    "incorrect_cvc": _l("The security code is incorrect."),
}
_FAILURE_REASONS = {
    "card_declined": _l("The card was declined."),
    "authentication_required": _l("The bank requires authentication for this payment."),
    "expired_card": _l("The card has expired."),
    "incorrect_cvc": _l("The security code is incorrect."),
    "processing_error": _l("The payment could not be processed. Please try again."),
    "sepa_failed": _l("The SEPA direct debit failed."),
    "insufficient_funds": _l("Insufficient funds on the account."),
    "account_closed": _l("The bank account is closed."),
    "debit_not_authorized": _l("The account holder did not authorise the direct debit."),
    "payment_intent_payment_attempt_failed": _l("The payment attempt failed."),
}


_PAYMENT_METHODS = {"card": _l("card"), "sepa_debit": _l("SEPA direct debit")}


def payment_method_label(method_type: str | None) -> str:
    return str(_PAYMENT_METHODS.get(method_type or "card", method_type))


def minutes_of(seconds: int) -> str:
    """Billed seconds as minutes with one decimal: 3690 → '61,5' (de)."""
    return format_decimal(Decimal(seconds) / 60, format="#,##0.0", locale=get_locale())


def payment_failure_reason(code: str | None, decline_code: str | None) -> str:
    """A translated, customer-safe reason for a failed payment."""
    if decline_code in _DECLINE_REASONS:
        return str(_DECLINE_REASONS[decline_code])
    return str(_FAILURE_REASONS.get(code or "", _l("The payment failed.")))


def select_locale() -> str:
    """The user's stored choice, then the session's, then the browser's, then German."""
    user_choice = getattr(current_user, "locale", None) if current_user else None
    if user_choice in LANGUAGES:
        return user_choice
    if session.get("lang") in LANGUAGES:
        return session["lang"]
    return request.accept_languages.best_match(LANGUAGES) or DEFAULT_LANGUAGE


def active_language() -> str:
    locale = get_locale() if g else None  # g is falsy outside an app context
    return locale.language if locale is not None else DEFAULT_LANGUAGE  # the locales are bare languages (LANGUAGES)


def money(units: int | None) -> str:
    return "" if units is None else format_money(units, active_language())


def local_datetime(value: datetime | None, style: str = "medium") -> str:
    """A naive-UTC database time in the display time zone and the active locale."""
    if value is None:
        return ""
    return dates.format_datetime(value.replace(tzinfo=timezone.utc), style, tzinfo=get_timezone(), locale=get_locale())


def local_date(value: date | datetime | None, style: str = "medium") -> str:
    return "" if value is None else format_date(value, style)


def number(value: int | Decimal | None) -> str:
    if value is None:
        return ""
    if isinstance(value, int):
        return format_whole_number(value, active_language())
    return format_decimal(value, locale=get_locale())


def money_cents(value: int | None) -> str:
    return "" if value is None else money(value * UNITS_PER_CENT)


def percent_basis_points(value: int) -> str:
    """1900 → '19 %' (de) / '19%' (en)."""
    return format_percent(Decimal(value) / BASIS_POINTS_PER_WHOLE, format="#,##0.##\u00a0%" if
                          active_language() == "de" else "#,##0.##%", locale=get_locale())


def entry_type_labels() -> dict[str, str]:
    """The ledger type names in the active language, translated once for a whole table."""
    return {key: str(label) for key, label in ENTRY_TYPE_LABELS.items()}


def register_template_helpers(app) -> None:
    app.add_template_filter(number, "number")
    app.add_template_filter(money_cents, "money_cents")
    app.add_template_filter(percent_basis_points, "percent_bp")
    app.add_template_filter(money, "money")
    app.add_template_filter(local_datetime, "datetime")
    app.add_template_filter(local_date, "date")
    app.add_template_global(LANGUAGES, "LANGUAGES")
    app.add_template_global(active_language, "active_language")
    app.add_template_global(entry_type_labels, "entry_type_labels")
    app.add_template_global(TOPUP_STATUS_LABELS, "TOPUP_STATUS_LABELS")
    app.add_template_global(payment_failure_reason, "payment_failure_reason")
    app.add_template_global(payment_method_label, "payment_method_label")
    app.add_template_global(minutes_of, "minutes_of")
