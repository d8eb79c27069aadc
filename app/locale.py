"""The request's language, and the template filters and helpers that format for it.

Messages are translated by Flask-Babel (Jinja's i18n extension as Flask-Babel installs it); the
domain's labels (core.i18n) are message ids translated here when shown."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from flask import g, request, session
from flask_babel import get_locale, get_timezone, gettext
from flask_login import current_user

from core.i18n import (
    DEFAULT_LANGUAGE, DISPUTE_STATUS_LABELS, ENTRY_TYPE_LABELS, LANGUAGES, TOPUP_STATUS_LABELS, format_local_date,
    format_local_datetime, format_minutes, format_number, format_percent_basis_points, payment_failure_message, payment_method_message,
)
from core.money import UNITS_PER_CENT, format_money


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


def money_cents(value: int | None) -> str:
    return "" if value is None else money(value * UNITS_PER_CENT)


def number(value: int | Decimal | None) -> str:
    return format_number(value, active_language())


def percent_basis_points(value: int) -> str:
    return format_percent_basis_points(value, active_language())


def minutes_of(seconds: int) -> str:
    return format_minutes(seconds, active_language())


def local_datetime(value: datetime | None, style: str = "medium") -> str:
    return format_local_datetime(value, active_language(), get_timezone(), style)


def local_date(value: date | datetime | None, style: str = "medium") -> str:
    return format_local_date(value, active_language(), get_timezone(), style)


def entry_type_label(entry_type: str) -> str:
    return gettext(ENTRY_TYPE_LABELS[entry_type]) if entry_type in ENTRY_TYPE_LABELS else entry_type


def entry_type_labels() -> dict[str, str]:
    """The ledger type names in the active language, translated once for a whole table."""
    return {key: gettext(label) for key, label in ENTRY_TYPE_LABELS.items()}


def topup_status_label(status: str) -> str:
    return gettext(TOPUP_STATUS_LABELS[status]) if status in TOPUP_STATUS_LABELS else status


def dispute_status_label(status: str) -> str:
    return gettext(DISPUTE_STATUS_LABELS[status]) if status in DISPUTE_STATUS_LABELS else status


def payment_failure_reason(code: str | None, decline_code: str | None) -> str:
    """A translated, customer-safe reason for a failed payment."""
    return gettext(payment_failure_message(code, decline_code))


def payment_method_label(method_type: str | None) -> str:
    return gettext(payment_method_message(method_type))


def register_template_helpers(app) -> None:
    app.add_template_filter(number, "number")
    app.add_template_filter(money_cents, "money_cents")
    app.add_template_filter(percent_basis_points, "percent_bp")
    app.add_template_filter(money, "money")
    app.add_template_filter(local_datetime, "datetime")
    app.add_template_filter(local_date, "date")
    for helper in (active_language, entry_type_labels, topup_status_label, dispute_status_label, payment_failure_reason,
                   payment_method_label, minutes_of):
        app.add_template_global(helper)
    app.add_template_global(LANGUAGES, "LANGUAGES")
