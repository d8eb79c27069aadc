"""Staff money actions (/admin): adjust a balance, refund a call, refund a top-up, and for a top-up
under review credit what Stripe received or refund its payment.

Two steps each: the form posts amount and reason and gets a confirmation page with the current
and the resulting balance; that page posts the same values back with ``confirm``, the balance it
showed and the form's request key. Thin views: parse, call one core service, commit, render
(the top-up refund calls its two steps, see :func:`core.backoffice.money_actions.check_topup_refund`).
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
import uuid

from flask import abort, current_app, flash, url_for
from flask_login import current_user
from werkzeug.routing import BuildError

from core.backoffice import money_actions as actions
from core.accounts.audit import record_denied
from app.locale import active_language, money
from app.extensions import db
from core.schema import CallCharge, Company, Role, Topup
from core.money import CURRENCY, InvalidAmount, UNITS_PER_CENT, eur, parse_amount
from core.parsing import MAX_BIG_ID, MAX_ID, InvalidInput, parse_integer
from app.web import redirect_to, render_page, staff_actor, staff_required, stripe_gateway
from staff.forms import AdjustmentForm, CallRefundForm, ReviewActionForm, TopupRefundForm
from staff import bp


AMOUNT_MESSAGES = {
    "missing": _l("Please enter an amount."),
    "not_a_number": _l("Please enter the amount as a number, e.g. 150 or 150,50."),
    "too_precise": _l("Please enter at most two decimal places."),
    "too_large": _l("This amount is too large."),
    "bad_seconds": _l("Please enter the seconds as a whole number."),
}

MESSAGES = {
    "reason_required": _l("Please give a reason."),
    "invalid_amount": _l("Please enter an amount greater than zero and at most %(maximum)s."),
    "above_refundable": _l("At most %(refundable)s can still be refunded."),
    "nothing_refundable": _l("Nothing is left to refund."),
    "not_refundable": _l("This top-up was not paid, so it cannot be refunded."),
    "admin_only": _l("Only staff admins may do this (support staff may refund up to %(limit)s)."),
    "exceeds_available": _l("The refund of %(debit)s exceeds the available balance of %(available)s. "
                            "A staff admin can refund anyway."),
    "stale": _l("The balance changed since the preview. Please check the new figures and confirm again."),
    "duplicate": _l("This form was already submitted; nothing was changed."),
    "stripe_failed": _l("Stripe refused the refund: %(message)s"),
    "not_found": _l("This page does not exist."),
    "not_in_review": _l("This top-up is no longer under review; nothing was changed."),
    "not_paid_at_stripe": _l("Stripe has no successful payment for this top-up: there is nothing to credit or refund."),
    "not_creditable": _l("Stripe's payment cannot be credited to this company (%(problem)s). Refund it instead."),
    "stripe_unavailable": _l("Stripe could not be asked: %(message)s"),
}

# Why Stripe's own record of a payment cannot be credited (the codes of core.payments.topups.evidence_problem)
CREDIT_PROBLEMS = {
    "customer_mismatch": _l("it was paid by another Stripe customer"),
    "currency_mismatch": _l("it was paid in another currency"),
    "livemode_mismatch": _l("it was paid in the other Stripe mode"),
}


class _FormError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _support_limit() -> int:
    return eur(str(current_app.config.get("STAFF_SUPPORT_REFUND_LIMIT_EUR", "50")))


def _is_admin() -> bool:
    return current_user.role == Role.STAFF_ADMIN.value


def _message(error: actions.StaffActionError) -> str:
    values = {"maximum": money(actions.MAX_ADJUSTMENT), "limit": money(_support_limit())}
    if isinstance(error, actions.AboveRefundable):
        values["refundable"] = money(error.refundable)
    if isinstance(error, actions.ExceedsAvailable):
        values.update(debit=money(error.debit), available=money(error.available))
    if isinstance(error, (actions.RefundFailed, actions.StripeUnavailable)):
        values["message"] = error.error.message or error.error.code or error.error.kind
    if isinstance(error, actions.NotCreditable):
        values["problem"] = CREDIT_PROBLEMS.get(error.problem, error.problem)
    return str(MESSAGES.get(error.code, MESSAGES["not_found"])) % values


def _amount(text: str | None) -> int:
    try:
        return parse_amount(text, active_language())
    except InvalidAmount as error:
        raise _FormError(str(AMOUNT_MESSAGES.get(error.reason, AMOUNT_MESSAGES["not_a_number"]))) from None


def _expected(form) -> int | None:
    """The balance the confirmation page showed (None if the post carries none it could have shown)."""
    try:
        return parse_integer(form.expected_balance.data, -MAX_BIG_ID, MAX_BIG_ID)
    except InvalidInput:
        return None


def _after(company_id: int) -> str:
    try:
        return url_for("staff.company", company_id=company_id)
    except BuildError:
        return url_for("staff.companies")


def _render(template: str, status: int = 200, **context):
    return render_page(template, template, status, **context)


def _unsubmitted_or_invalid(template: str, form, page: dict):
    """The empty form on GET, the form with an error (422) when what was sent does not validate;
    None when the action may go on."""
    if not form.is_submitted():
        return _render(template, **page)
    if not form.validate():
        return _render(template, 422, error=_l("Some of the values you sent are not valid."), **page)
    return None


def _denied(action: str, target_type: str, target_id, company_id, error) -> object:
    db.session.rollback()  # nothing of the refused action; the attempt is recorded on its own
    record_denied(db.session, staff_actor(), action, target_type=target_type, target_id=target_id,
                  company_id=company_id)
    db.session.commit()
    return _render("staff/money/denied.html", 403, message=_message(error))


def _status_of(error: actions.StaffActionError) -> int:
    return {"stale": 409, "duplicate": 409, "not_in_review": 409, "stripe_failed": 502,
            "stripe_unavailable": 502}.get(error.code, 422)


# -- manual adjustment -------------------------------------------------------------------------------

@bp.route("/companies/<id:company_id>/adjust", methods=["GET", "POST"])
@staff_required(Role.STAFF_ADMIN)
def adjust(company_id: int):
    company = db.session.get(Company, company_id) or abort(404)
    form = AdjustmentForm()
    page = {"company": company, "form": form, "action_url": url_for(".adjust", company_id=company_id)}
    if (early := _unsubmitted_or_invalid("staff/money/adjust.html", form, page)) is not None:
        return early
    try:
        amount = _amount(form.amount.data)
        if form.direction.data == "debit":
            amount = -amount
        if form.confirm.data:
            result = actions.adjust_balance(db.session, staff_actor(), company_id, amount, form.description.data,
                                            form.reason.data, form.request_key.data,
                                            expected_balance=_expected(form))
            db.session.commit()
            flash(_l("Balance adjusted by %(amount)s; new balance %(balance)s.", amount=money(amount),
                     balance=money(result.resulting_balance)), "success")
            return redirect_to(_after(company_id))
        if not (form.reason.data or "").strip():
            raise actions.ReasonRequired()
        preview = actions.preview_adjustment(db.session, company_id, amount)
    except _FormError as error:
        return _render("staff/money/adjust.html", 422, error=error.message, **page)
    except actions.StaleBalance as error:
        preview = actions.preview_adjustment(db.session, company_id, amount)
        return _confirm("staff/money/adjust.html", page, preview, form, 409, _message(error))
    except actions.StaffActionError as error:
        return _render("staff/money/adjust.html", _status_of(error), error=_message(error), **page)
    return _confirm("staff/money/adjust.html", page, preview, form)


def _confirm(template, page, preview, form, status: int = 200, error: str | None = None):
    form.expected_balance.data = str(preview.balance)
    form.request_key.data = form.request_key.data or uuid.uuid4().hex
    return _render(template, status, preview=preview, confirming=True, error=error, **page)


# -- call refund -------------------------------------------------------------------------------------

def _call_refund_values(form) -> dict:
    mode = form.mode.data or "full"
    if mode == "amount":
        return {"amount": _amount(form.amount.data)}
    if mode == "seconds":
        try:
            return {"seconds": parse_integer(form.seconds.data, 0, MAX_ID)}
        except InvalidInput:
            raise _FormError(str(AMOUNT_MESSAGES["bad_seconds"])) from None
    return {}


@bp.route("/calls/<bigid:charge_id>/refund", methods=["GET", "POST"])
@staff_required()
def refund_call(charge_id: int):
    charge = db.session.get(CallCharge, charge_id) or abort(404)
    form = CallRefundForm()
    page = {"charge": charge, "company": db.session.get(Company, charge.company_id), "form": form,
            "action_url": url_for(".refund_call", charge_id=charge_id), "support_limit": _support_limit()}
    template = "staff/money/call_refund.html"
    if (early := _unsubmitted_or_invalid(template, form, page)) is not None:
        return early
    values: dict = {}
    try:
        values = _call_refund_values(form)
        if form.confirm.data:
            refund = actions.refund_call(db.session, staff_actor(), charge_id, reason=form.reason.data,
                                         request_key=form.request_key.data, actor_is_admin=_is_admin(),
                                         support_limit=_support_limit(), expected_balance=_expected(form), **values)
            db.session.commit()
            flash(_l("Refunded %(amount)s for call %(call)s.", amount=money(refund.amount), call=charge.call_id),
                  "success")
            return redirect_to(_after(charge.company_id))
        if not (form.reason.data or "").strip():
            raise actions.ReasonRequired()
        preview = actions.preview_call_refund(db.session, charge_id, **values)
        if not _is_admin() and preview.amount > _support_limit():
            raise actions.AdminOnly()
    except _FormError as error:
        return _render(template, 422, error=error.message, **page)
    except actions.AdminOnly as error:
        return _denied("staff.refund_call", "call_charge", charge_id, charge.company_id, error)
    except actions.StaleBalance as error:
        preview = actions.preview_call_refund(db.session, charge_id, **values)
        return _confirm(template, page, preview, form, 409, _message(error))
    except actions.StaffActionError as error:
        return _render(template, _status_of(error), error=_message(error), **page)
    return _confirm(template, page, preview, form)


# -- top-up refund -----------------------------------------------------------------------------------

@bp.route("/topups/<id:topup_id>/refund", methods=["GET", "POST"])
@staff_required()
def refund_topup(topup_id: int):
    topup = db.session.get(Topup, topup_id) or abort(404)
    form = TopupRefundForm()
    page = {"topup": topup, "company": db.session.get(Company, topup.company_id), "form": form,
            "action_url": url_for(".refund_topup", topup_id=topup_id), "support_limit": _support_limit()}
    template = "staff/money/topup_refund.html"
    if (early := _unsubmitted_or_invalid(template, form, page)) is not None:
        return early
    cents = None
    override = bool(form.override_available.data)
    try:
        if form.mode.data == "amount":
            cents = _amount(form.amount.data) // UNITS_PER_CENT
        if override and not _is_admin():
            raise actions.AdminOnly()
        if form.confirm.data:
            plan = actions.check_topup_refund(
                db.session, topup_id, cents, form.reason.data, form.request_key.data, override_available=override,
                actor_is_admin=_is_admin(), support_limit=_support_limit(), expected_balance=_expected(form))
            db.session.commit()  # step 1 only read: no transaction stays open while Stripe is asked
            result = actions.refund_topup(db.session, stripe_gateway(), staff_actor(), plan)
            db.session.commit()
            flash(_l("Refunded %(amount)s through Stripe; new balance %(balance)s.",
                     amount=money(result.refunded_cents * UNITS_PER_CENT), balance=money(result.resulting_balance)),
                  "success")
            return redirect_to(_after(topup.company_id))
        if not (form.reason.data or "").strip():
            raise actions.ReasonRequired()
        preview = actions.preview_topup_refund(db.session, topup_id, cents)
        if not _is_admin() and preview.amount > _support_limit():
            raise actions.AdminOnly()
    except _FormError as error:
        return _render(template, 422, error=error.message, **page)
    except actions.AdminOnly as error:
        return _denied("staff.refund_topup", "topup", topup_id, topup.company_id, error)
    except actions.StaleBalance as error:
        preview = actions.preview_topup_refund(db.session, topup_id, cents)
        return _confirm(template, page, preview, form, 409, _message(error))
    except actions.StaffActionError as error:
        return _render(template, _status_of(error), error=_message(error), **page)
    return _confirm(template, page, preview, form)


# -- a top-up under review: credit what Stripe received, or refund the payment -------------------------

@bp.route("/topups/<id:topup_id>/credit-received", methods=["GET", "POST"])
@staff_required(Role.STAFF_ADMIN)
def credit_received(topup_id: int):
    return _review_action(topup_id, "credit")


@bp.route("/topups/<id:topup_id>/refund-payment", methods=["GET", "POST"])
@staff_required()
def refund_review_payment(topup_id: int):
    return _review_action(topup_id, "refund")


def _review_action(topup_id: int, action: str):
    """Both actions on a top-up under review: the reason, a preview from Stripe's own record, then the
    confirmed action in its two steps (see :func:`core.backoffice.money_actions.check_review_action`)."""
    topup = db.session.get(Topup, topup_id) or abort(404)
    form = ReviewActionForm()
    endpoint = ".credit_received" if action == "credit" else ".refund_review_payment"
    page = {"topup": topup, "company": db.session.get(Company, topup.company_id), "form": form, "action": action,
            "action_url": url_for(endpoint, topup_id=topup_id), "support_limit": _support_limit(),
            "payment_amount": payment_amount}
    template = "staff/money/review_topup.html"
    if (early := _unsubmitted_or_invalid(template, form, page)) is not None:
        return early
    gateway = stripe_gateway()
    try:
        if form.confirm.data:
            plan = actions.check_review_action(db.session, topup_id, form.reason.data, form.request_key.data)
            db.session.commit()  # step 1 only read: no transaction stays open while Stripe is asked
            return _do_review_action(action, gateway, plan, form)
        if not (form.reason.data or "").strip():
            raise actions.ReasonRequired()
        db.session.commit()  # the page's reads end before Stripe is asked
        preview = (actions.preview_review_credit if action == "credit" else actions.preview_review_refund)(
            db.session, gateway, topup_id)
        if action == "refund" and not _is_admin() and preview.received_cents * UNITS_PER_CENT > _support_limit():
            raise actions.AdminOnly()
    except actions.AdminOnly as error:
        return _denied("staff.refund_review_payment", "topup", topup_id, topup.company_id, error)
    except actions.StaleBalance as error:
        db.session.rollback()
        preview = actions.preview_review_credit(db.session, gateway, topup_id)
        return _confirm(template, page, preview, form, 409, _message(error))
    except actions.StaffActionError as error:
        db.session.rollback()
        return _render(template, _status_of(error), error=_message(error), **page)
    return _confirm(template, page, preview, form)


def _do_review_action(action: str, gateway, plan, form):
    if action == "credit":
        result = actions.credit_received(db.session, gateway, staff_actor(), plan, expected_balance=_expected(form))
        message = _l("Credited %(amount)s for the %(paid)s Stripe received (bonus %(bonus)s); new balance %(balance)s.",
                     amount=money(result.amount), paid=money(result.received_cents * UNITS_PER_CENT),
                     bonus=money(result.bonus), balance=money(result.resulting_balance))
    else:
        result = actions.refund_in_review(db.session, gateway, staff_actor(), plan, actor_is_admin=_is_admin(),
                                          support_limit=_support_limit())
        message = _l("Refunded the payment of %(paid)s through Stripe; nothing was credited or debited.",
                     paid=payment_amount(result.received_cents, result.currency))
    db.session.commit()
    flash(message, "success")
    return redirect_to(url_for("staff.failed_payments"))


def payment_amount(cents: int, currency: str) -> str:
    """Money Stripe received, in our format when it is ours, else as cents in its own currency."""
    if currency.upper() == CURRENCY:
        return money(cents * UNITS_PER_CENT)
    return f"{cents // 100}.{cents % 100:02d} {currency.upper()}"
