"""Language choice and locale-aware formatting for templates, emails and CSV."""

from __future__ import annotations

from datetime import date, datetime

from flask import request, session
from flask_babel import format_date, format_datetime, format_decimal, get_locale
from flask_login import current_user

from core.money import format_money

LANGUAGES = {"de": "Deutsch", "en": "English"}
DEFAULT_LANGUAGE = "de"


def select_locale() -> str:
    """The user's stored choice, then the session's, then the browser's, then German."""
    user_choice = getattr(current_user, "locale", None) if current_user else None
    if user_choice in LANGUAGES:
        return user_choice
    if session.get("lang") in LANGUAGES:
        return session["lang"]
    return request.accept_languages.best_match(LANGUAGES) or DEFAULT_LANGUAGE


def active_language() -> str:
    return str(get_locale() or DEFAULT_LANGUAGE)


def money(units: int | None) -> str:
    return "" if units is None else format_money(units, active_language())


def local_datetime(value: datetime | None, style: str = "medium") -> str:
    return "" if value is None else format_datetime(value, style)


def local_date(value: date | datetime | None, style: str = "medium") -> str:
    return "" if value is None else format_date(value, style)


def number(value: int | None) -> str:
    return "" if value is None else format_decimal(value)


def register_template_helpers(app) -> None:
    app.add_template_filter(number, "number")
    app.add_template_filter(money, "money")
    app.add_template_filter(local_datetime, "datetime")
    app.add_template_filter(local_date, "date")
    app.add_template_global(LANGUAGES, "LANGUAGES")
    app.add_template_global(active_language, "active_language")
