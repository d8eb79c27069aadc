"""Automatic top-up settings and the history of attempts (thin views; the engine is core.payments.auto_topup)."""

from __future__ import annotations

from flask import current_app, flash, request, url_for
from flask_babel import gettext as _, lazy_gettext as _l
from flask_login import current_user

from core.payments.auto_topup import (
    BALANCE_RECOVERED, DAILY_LIMIT, DISABLED, MAX_CONSECUTIVE_FAILURES, MAX_DAILY_LIMIT, MONTHLY_CAP,
    AutoTopupPolicy, AutoTopupSettings, InvalidSettings, overview, plain_amount, reconcile, save_settings,
)
from app.locale import active_language, money, payment_failure_reason
from app.extensions import db
from core.schema import AutoTopupAttempt, AutoTopupStatus
from core.money import InvalidAmount, eur, parse_amount
from core.parsing import InvalidInput, parse_integer
from core.payments.methods import company_payment_methods
from core.payments.gateway import PaymentError
from core.payments.topups import TopupLimits
from app.web import company_admin_required, company_user_required, redirect_to, render_page, stripe_gateway
from portal.forms import AMOUNT_ERRORS, AutoTopupForm
from portal import bp


STOP_POLLING = 286  # htmx stops polling on this status

STATUS_LABELS = {
    AutoTopupStatus.PENDING.value: _l("Waiting to be charged"),
    AutoTopupStatus.PROCESSING.value: _l("Processing (SEPA direct debit)"),
    AutoTopupStatus.SUCCEEDED.value: _l("Succeeded"),
    AutoTopupStatus.FAILED.value: _l("Failed"),
    AutoTopupStatus.ACTION_REQUIRED.value: _l("Confirmation needed"),
    AutoTopupStatus.SKIPPED.value: _l("Skipped"),
}

SKIP_REASONS = {
    DAILY_LIMIT: _l("The daily limit of automatic top-ups was reached."),
    MONTHLY_CAP: _l("The monthly cap for automatic top-ups was reached."),
    DISABLED: _l("Automatic top-up was turned off before the payment started."),
    BALANCE_RECOVERED: _l("The balance was above the threshold again."),
}

FIELD_ERRORS = {
    ("threshold", "missing"): _l("Please enter the balance below which we top up."),
    ("threshold", "negative"): _l("The threshold cannot be negative."),
    ("threshold", "out_of_range"): _l("The threshold can be at most %(maximum)s."),
    ("amount", "missing"): AMOUNT_ERRORS["missing"],
    ("amount", "out_of_range"): AMOUNT_ERRORS["out_of_range"],
    ("daily_limit", "out_of_range"): _l("Please enter a whole number from 1 to %(maximum)s."),
    ("monthly_cap", "out_of_range"): _l("Please enter a positive amount, or leave the field empty for no cap."),
    ("monthly_cap", "below_amount"): _l("The monthly cap must be at least the top-up amount (%(amount)s)."),
    ("payment_method", "missing"): _l("Please choose a saved payment method to turn on automatic top-up."),
    ("payment_method", "unknown"): _l("Please choose one of your saved payment methods."),
}


def _limits() -> TopupLimits:
    return TopupLimits(eur(current_app.config["TOPUP_MIN_EUR"]), eur(current_app.config["TOPUP_MAX_EUR"]))


def _policy() -> AutoTopupPolicy:
    return AutoTopupPolicy.from_config(current_app.config)


def attempt_reason(attempt: AutoTopupAttempt) -> str:
    """Why an attempt ended as it did, in the active language."""
    if attempt.status == AutoTopupStatus.SKIPPED.value:
        return str(SKIP_REASONS.get(attempt.reason or "", ""))
    if attempt.status == AutoTopupStatus.FAILED.value:
        return payment_failure_reason(attempt.reason, attempt.decline_code)
    if attempt.status == AutoTopupStatus.ACTION_REQUIRED.value:
        return _("Your bank asks you to confirm this payment.")
    if attempt.status == AutoTopupStatus.PROCESSING.value:
        return _("Waiting for the bank to confirm the direct debit.")
    return ""


def _form_from(settings: AutoTopupSettings) -> AutoTopupForm:
    language = active_language()

    def plain(units):
        return plain_amount(units, language) if units is not None else ""

    return AutoTopupForm(formdata=None, enabled=settings.enabled, threshold=plain(settings.threshold),
                         amount=plain(settings.amount), payment_method=settings.payment_method_id or "",
                         daily_limit=str(settings.daily_limit), monthly_cap=plain(settings.monthly_cap))


def _page(form: AutoTopupForm | None = None, *, errors: dict[str, str] | None = None, error: str | None = None,
          status: int = 200, partial: str = "portal/partials/auto_topup_form.html"):
    company_id = current_user.company_id
    view = overview(db.session, company_id, policy=_policy())
    try:
        methods = company_payment_methods(db.session, stripe_gateway(), company_id)
    except PaymentError:
        methods = []
        error = error or _("Your saved payment methods cannot be loaded right now. Please try again later.")
    complete_payment_url = None
    if view.awaiting_customer is not None:
        complete_payment_url = url_for("portal.topup",
                                       amount=plain_amount(view.awaiting_customer.amount, active_language()))
    response = render_page(
        "portal/auto_topup.html", partial, status, form=form or _form_from(view.settings), errors=errors or {},
        error=error, methods=methods, view=view, status_labels=STATUS_LABELS, attempt_reason=attempt_reason,
        max_failures=MAX_CONSECUTIVE_FAILURES, complete_payment_url=complete_payment_url, limits=_limits(),
    )
    return response, view


def _read_amount(text: str | None, field: str, errors: dict[str, str], *, required: bool) -> int | None:
    text = (text or "").strip()
    if not text:
        if required:
            errors[field] = str(FIELD_ERRORS.get((field, "missing"), AMOUNT_ERRORS["missing"]))
        return None
    try:
        return parse_amount(text, active_language())
    except InvalidAmount as invalid:
        errors[field] = str(AMOUNT_ERRORS.get(invalid.reason, AMOUNT_ERRORS["not_a_number"]))
        return None


def _read(form: AutoTopupForm) -> tuple[AutoTopupSettings | None, dict[str, str]]:
    """The typed values in our terms, or the messages for what cannot be read at all."""
    errors: dict[str, str] = {}
    enabled = bool(form.enabled.data)
    threshold = _read_amount(form.threshold.data, "threshold", errors, required=enabled)
    amount = _read_amount(form.amount.data, "amount", errors, required=enabled)
    monthly_cap = _read_amount(form.monthly_cap.data, "monthly_cap", errors, required=False)
    try:
        daily_limit = parse_integer(form.daily_limit.data, 1, MAX_DAILY_LIMIT)
    except InvalidInput:
        errors["daily_limit"] = _messages({"daily_limit": "out_of_range"}, None)["daily_limit"]
    if errors:
        return None, errors
    method = (form.payment_method.data or "").strip() or None
    return AutoTopupSettings(enabled, threshold, amount, method, daily_limit, monthly_cap), {}


def _messages(codes: dict[str, str], settings: AutoTopupSettings | None) -> dict[str, str]:
    limits = _limits()
    values = {"minimum": money(limits.minimum), "maximum": money(limits.maximum),
              "amount": money(settings.amount) if settings and settings.amount is not None else ""}
    messages = {}
    for field, code in codes.items():
        text = str(FIELD_ERRORS.get((field, code), _l("Some of the values you sent are not valid.")))
        params = {"maximum": MAX_DAILY_LIMIT} if field == "daily_limit" else values
        messages[field] = text % params if "%(" in text else text
    return messages


@bp.get("/billing/auto-topup")
@company_user_required
def auto_topup():
    return _page()[0]


@bp.post("/billing/auto-topup")
@company_admin_required
def save_auto_topup():
    form = AutoTopupForm()
    if not form.validate():
        return _page(form, error=_("The form has expired. Please try again."), status=422)[0]
    values, errors = _read(form)
    if values is not None:
        try:
            save_settings(db.session, stripe_gateway(), current_user.company_id, values, _limits())
            # The attempts catch up with their top-ups here (and in the jobs), not on the GET.
            reconcile(db.session, current_user.company_id, policy=_policy())
            db.session.commit()
        except InvalidSettings as invalid:
            errors = _messages(invalid.errors, values)
        except PaymentError:
            return _page(form, error=_("The payment provider is not reachable right now. Please try again in a few "
                                       "minutes."), status=503)[0]
        else:
            flash(_("Your automatic top-up settings were saved."), "success")
            return redirect_to(url_for("portal.auto_topup"))
    return _page(form, errors=errors, status=422)[0]


@bp.get("/billing/auto-topup/history")
@company_user_required
def auto_topup_history():
    """The history table; htmx polls it while an attempt is in flight and stops when none is."""
    response, view = _page(partial="portal/partials/auto_topup_history.html")
    if request.htmx and not view.in_flight:
        response.status_code = STOP_POLLING
    return response
