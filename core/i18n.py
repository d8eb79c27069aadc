"""Language choice and locale-aware formatting for templates, emails and CSV."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timezone, tzinfo
from decimal import Decimal
from functools import cache
from typing import NamedTuple

from babel import Locale, dates, support
from babel.numbers import format_decimal, format_percent
from flask import g, request, session
from flask_babel import format_date, get_locale, get_timezone, get_translations
from flask_babel.speaklater import LazyString
from flask_login import current_user
from jinja2 import pass_eval_context
from jinja2.nodes import EvalContext
from markupsafe import Markup
from wtforms.i18n import messages_path as wtforms_messages_path

from core.schema import EntryType, TopupStatus
from core.money import UNITS_PER_CENT, format_money, format_whole_number


def gettext(string: str, **variables) -> str:
    """Flask-Babel's gettext, from the catalogue looked up once per request (see display_settings)."""
    message = _catalogue().ugettext(string)
    return message % variables if variables else message


def ngettext(singular: str, plural: str, num: int, **variables) -> str:
    variables.setdefault("num", num)
    return _catalogue().ungettext(singular, plural, num) % variables


def lazy_gettext(string: str, **variables) -> LazyString:
    """A message translated when it is shown, in the language of that moment."""
    return LazyString(gettext, string, **variables)


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
    return format_decimal(Decimal(seconds) / 60, format="#,##0.0", locale=display_settings().locale)


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


class DisplaySettings(NamedTuple):
    language: str
    locale: Locale
    zone: tzinfo
    translations: support.NullTranslations


def display_settings() -> DisplaySettings:
    """Language, Babel locale, display time zone and message catalogue, looked up once per request.

    A page formats and translates hundreds of values; asking Flask-Babel each time costs more than
    the rest of the page. The cache is checked against Flask-Babel's current locale object, so a
    ``force_locale`` block (e.g. an email in the customer's language) still switches language.
    """
    context = g._get_current_object()
    current = getattr(getattr(context, "_flask_babel", None), "babel_locale", None)
    cached = getattr(context, "_display_settings", None)
    if current is None or cached is None or cached.locale is not current:
        locale = get_locale()
        cached = DisplaySettings(str(locale or DEFAULT_LANGUAGE), locale, get_timezone(), get_translations())
        context._display_settings = cached
    return cached


def active_language() -> str:
    return display_settings().language if g else DEFAULT_LANGUAGE  # g is falsy outside an app context


def money(units: int | None) -> str:
    return "" if units is None else format_money(units, active_language())


def local_datetime(value: datetime | None, style: str = "medium") -> str:
    """A naive-UTC database time in the display time zone and the active locale."""
    if value is None:
        return ""
    settings = display_settings()
    return dates.format_datetime(value.replace(tzinfo=timezone.utc), style, tzinfo=settings.zone, locale=settings.locale)


def local_date(value: date | datetime | None, style: str = "medium") -> str:
    return "" if value is None else format_date(value, style)


def number(value: int | Decimal | None) -> str:
    if value is None:
        return ""
    if isinstance(value, int):
        return format_whole_number(value, display_settings().language)
    return format_decimal(value, locale=display_settings().locale)


def money_cents(value: int | None) -> str:
    return "" if value is None else money(value * UNITS_PER_CENT)


def percent_basis_points(value: int) -> str:
    """1900 → '19 %' (de) / '19%' (en)."""
    return format_percent(Decimal(value) / BASIS_POINTS_PER_WHOLE, format="#,##0.##\u00a0%" if
                          active_language() == "de" else "#,##0.##%", locale=display_settings().locale)


@cache
def wtforms_translations(language: str) -> support.Translations:
    """WTForms' own messages ("Not a valid date value.") in ``language``, loaded once per process."""
    return support.Translations.load(wtforms_messages_path(), [language], domain="wtforms")


def _catalogue() -> support.NullTranslations:
    return display_settings().translations if g else support.NullTranslations()


def template_translators(catalogue: Callable[[], support.NullTranslations]) -> dict:
    """Jinja's ``_``, ``gettext`` and ``ngettext``, translating from ``catalogue()``. They do what
    Jinja's new-style gettext does (escape the variables in HTML, always treat the message as a
    format string) without its three indirect calls and Flask-Babel's catalogue lookup per string:
    a page has dozens."""

    @pass_eval_context
    def gettext(eval_context: EvalContext, string: str, /, **variables) -> str:
        return _formatted(eval_context, catalogue().ugettext(string), variables)

    @pass_eval_context
    def ngettext(eval_context: EvalContext, singular: str, plural: str, count: int, /, **variables) -> str:
        variables.setdefault("num", count)
        return _formatted(eval_context, catalogue().ungettext(singular, plural, count), variables)

    return {"_": gettext, "gettext": gettext, "ngettext": ngettext}


def _rendering_translators() -> dict:
    """For each render_template: the translators bound to the catalogue of that moment, so that
    the page's strings skip the per-call lookup the globals (macros, fragments) make."""
    translations = display_settings().translations
    return template_translators(lambda: translations)


def _formatted(eval_context: EvalContext, message: str, variables: dict) -> str:
    if eval_context.autoescape:
        message = Markup(message)
    return message % variables if variables or "%" in message else message


def register_template_helpers(app) -> None:
    app.jinja_env.globals.update(template_translators(_catalogue))
    app.context_processor(_rendering_translators)
    app.add_template_filter(number, "number")
    app.add_template_filter(money_cents, "money_cents")
    app.add_template_filter(percent_basis_points, "percent_bp")
    app.add_template_filter(money, "money")
    app.add_template_filter(local_datetime, "datetime")
    app.add_template_filter(local_date, "date")
    app.add_template_global(LANGUAGES, "LANGUAGES")
    app.add_template_global(active_language, "active_language")
    app.add_template_global(TOPUP_STATUS_LABELS, "TOPUP_STATUS_LABELS")
    app.add_template_global(payment_failure_reason, "payment_failure_reason")
    app.add_template_global(payment_method_label, "payment_method_label")
    app.add_template_global(minutes_of, "minutes_of")
