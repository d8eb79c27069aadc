"""Customer top-ups through Stripe Checkout and saved payment methods (thin views)."""

from __future__ import annotations

from flask import abort, current_app, flash, make_response, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from core.payments.bonuses import best_bonus
from core.clock import utcnow
from app.extensions import limiter
from app.locale import active_language, money
from app.extensions import db
from core.money import UNITS_PER_CENT, InvalidAmount, eur, parse_amount, plain_amount
from core.payments.methods import (
    PaymentMethodNotFound, choose_auto_topup_method, company_payment_methods, remove_payment_method,
    start_adding_method,
)
from core.ledger.balances import account_summary
from core.payments.gateway import PaymentError
from core.payments.topups import (
    AmountOutOfRange, CheckoutFailed, CheckoutPage, CompanyBlocked, ReturnUrls, TopupLimits, TopupNotFound,
    cancel_topup, claim_confirmation, close_checkout, company_topup, confirm_with_stripe, create_checkout,
    open_checkout_topup, recent_topups, topup_for_checkout,
)
from core.documents.vat import VatPolicy, split_topup
from app.inputs import query_id
from core.parsing import InvalidInput
from app.web import company_admin_required, company_user_required, redirect_to, render_page, stripe_gateway
from portal.forms import AMOUNT_ERRORS, AddPaymentMethodForm, TopupForm
from portal import bp


STOP_POLLING = 286  # htmx stops polling on this status


def _limits() -> TopupLimits:
    return TopupLimits(eur(current_app.config["TOPUP_MIN_EUR"]), eur(current_app.config["TOPUP_MAX_EUR"]))


def _read_amount(form: TopupForm) -> tuple[int | None, str | None]:
    limits = _limits()
    try:
        amount = parse_amount(form.chosen_text(), active_language())
        limits.check(amount)
    except InvalidAmount as error:
        return None, str(AMOUNT_ERRORS[error.reason if error.reason in AMOUNT_ERRORS else "not_a_number"])
    except AmountOutOfRange:
        return None, str(AMOUNT_ERRORS["out_of_range"]) % {"minimum": money(limits.minimum),
                                                           "maximum": money(limits.maximum)}
    return amount, None


def _topup_page(form: TopupForm, *, error: str | None = None, status: int = 200, left_checkout=None):
    company_id = current_user.company_id
    amount, preview_error = _read_amount(form) if form.chosen_text() else (None, None)
    return render_template(
        "portal/topup.html", form=form, error=error, presets=current_app.config["TOPUP_PRESETS_EUR"],
        limits=_limits(), preview=_preview(company_id, amount), preview_error=preview_error,
        topups=recent_topups(db.session, company_id), summary=account_summary(db.session, company_id),
        left_checkout=left_checkout,
    ), status


def _preview(company_id: int, amount: int | None):
    if amount is None:
        return None
    vat = VatPolicy.from_config(current_app.config)
    payable = split_topup(amount, vat).gross_cents * UNITS_PER_CENT
    return {"amount": amount, "payable": payable, "vat_added": not vat.amounts_include_vat,
            "bonus": best_bonus(db.session, company_id, amount, utcnow())}


@bp.get("/billing/topup")
@company_user_required
def topup():
    form = TopupForm(formdata=None, amount=request.args.get("amount", "")[:30])
    return _topup_page(form)


@bp.get("/billing/topup/preview")
@company_user_required
def topup_preview():
    form = TopupForm(request.args, meta={"csrf": False})
    amount, error = _read_amount(form)
    return render_page("portal/partials/bonus_preview.html", "portal/partials/bonus_preview.html",
                       preview=_preview(current_user.company_id, amount), preview_error=error)


def _company_rate_key() -> str:
    return f"topup-company:{current_user.company_id}"


@bp.post("/billing/topup")
@company_admin_required
@limiter.limit(lambda: current_app.config["TOPUP_RATE_LIMIT"], key_func=_company_rate_key)
def start_topup():
    form = TopupForm()
    if not form.validate():
        return _topup_page(form, error=_("The form has expired. Please try again."), status=422)
    amount, error = _read_amount(form)
    if error:
        return _topup_page(form, error=error, status=422)
    try:
        topup = open_checkout_topup(
            db.session, company_id=current_user.company_id, user_id=current_user.id, amount=amount,
            save_payment_method=form.save_payment_method.data, limits=_limits(),
            vat=VatPolicy.from_config(current_app.config))
    except CompanyBlocked:
        return _topup_page(form, error=_("Your account is blocked, so top-ups are not possible. Please contact "
                                         "our support."), status=422)
    db.session.commit()  # step 1: the pending top-up, on record before Stripe is asked
    try:
        checkout_url = create_checkout(
            db.session, stripe_gateway(), topup.id,
            CheckoutPage(_("Prepaid credit %(amount)s", amount=money(amount)),
                         current_app.config["PAYMENT_METHOD_TYPES"], active_language()),
            return_urls=lambda topup_id: ReturnUrls(
                success=url_for("portal.topup_success", _external=True) + "?session_id={CHECKOUT_SESSION_ID}",
                cancel=url_for("portal.topup_cancel", topup=topup_id, _external=True),
            ),
        )
    except CheckoutFailed:
        db.session.commit()  # the top-up stays on record, marked failed with Stripe's answer
        return _topup_page(form, error=_("The payment provider is not reachable right now. Nothing was charged. "
                                         "Please try again in a few minutes."), status=422)
    db.session.commit()  # step 2: the customer and the Checkout Session
    return redirect_to(checkout_url)


@bp.get("/billing/topup/success")
@company_user_required
def topup_success():
    """Where Stripe sends the customer back (a GET: it only shows the top-up; the status panel then
    asks Stripe through :func:`check_topup`)."""
    session_id = request.args.get("session_id", "")
    try:
        found = topup_for_checkout(db.session, current_user.company_id, session_id) if session_id else None
    except TopupNotFound:
        found = None
    if found is None:
        abort(404)
    return render_template("portal/topup_success.html", topup=found)


@bp.post("/billing/topup/<id:topup_id>/status")
@company_user_required
def check_topup(topup_id: int):
    """The top-up's status, asking Stripe when its webhook is late (the status panel polls this;
    without JavaScript its button does): two steps of core, each committed."""
    try:
        found = company_topup(db.session, current_user.company_id, topup_id)
    except TopupNotFound:
        abort(404)
    if claim_confirmation(db.session, found):
        db.session.commit()  # step 1: the time of asking, so concurrent pollers do not all ask
        found = confirm_with_stripe(db.session, stripe_gateway(), found.id)
        db.session.commit()  # step 2: Stripe's answer
    if not request.htmx:
        return redirect_to(url_for("portal.topup_success", session_id=found.stripe_checkout_session_id))
    response = make_response(render_template("portal/partials/topup_status.html", topup=found))
    if found.is_final:
        response.status_code = STOP_POLLING
    return response


@bp.get("/billing/topup/cancel")
@company_user_required
def topup_cancel():
    """Where Stripe sends the customer who left the payment page (a GET: it only shows the form again,
    with the way to cancel the waiting top-up, which the page's script takes at once)."""
    try:
        topup_id = query_id("topup")
        found = company_topup(db.session, current_user.company_id, topup_id) if topup_id else None
    except (InvalidInput, TopupNotFound):  # a link that names no top-up of this company
        found = None
    if found is None:
        abort(404)
    form = TopupForm(formdata=None, amount=plain_amount(found.amount, active_language()))
    return _topup_page(form, left_checkout=found)


@bp.post("/billing/topup/<id:topup_id>/cancel")
@company_user_required
def cancel_waiting_topup(topup_id: int):
    try:
        found = company_topup(db.session, current_user.company_id, topup_id)
    except TopupNotFound:
        abort(404)
    if cancel_topup(db.session, current_user.company_id, found.id):
        db.session.commit()  # step 1: canceled on our side before Stripe is asked
        close_checkout(db.session, stripe_gateway(), current_user.company_id, found.id)
        db.session.commit()  # step 2: what Stripe answered, if it was paid or expired meanwhile
    found = company_topup(db.session, current_user.company_id, found.id)
    if found.status == "canceled":
        flash(_("The top-up was canceled. Nothing was charged."), "info")
    return redirect_to(url_for("portal.topup", amount=plain_amount(found.amount, active_language())))


# -- saved payment methods ------------------------------------------------------------------------------

@bp.get("/billing/payment-methods")
@company_user_required
def payment_methods():
    company_id = current_user.company_id
    try:
        methods = company_payment_methods(db.session, stripe_gateway(), company_id)
        error = None
    except PaymentError:
        methods, error = [], _("Your saved payment methods cannot be loaded right now. Please try again later.")
    return render_template("portal/payment_methods.html", methods=methods, error=error,
                           summary=account_summary(db.session, company_id), form=AddPaymentMethodForm())


@bp.post("/billing/payment-methods")
@company_admin_required
def add_payment_method():
    if not AddPaymentMethodForm().validate():
        abort(400)
    try:
        url = start_adding_method(
            db.session, stripe_gateway(), current_user.company_id, current_app.config["PAYMENT_METHOD_TYPES"],
            active_language(), lambda _company: ReturnUrls(
                success=url_for("portal.payment_methods", added=1, _external=True),
                cancel=url_for("portal.payment_methods", _external=True),
            ),
        )
        db.session.commit()  # a new Stripe customer's id
    except PaymentError:
        flash(_("The payment provider is not reachable right now. Please try again in a few minutes."), "error")
        return redirect_to(url_for("portal.payment_methods"))
    return redirect_to(url)


@bp.post("/billing/payment-methods/<method_id>/remove")
@company_admin_required
def remove_method(method_id: str):
    return _method_action(method_id, remove_payment_method, _("The payment method was removed."))


@bp.post("/billing/payment-methods/<method_id>/auto-topup")
@company_admin_required
def choose_method(method_id: str):
    return _method_action(method_id, choose_auto_topup_method,
                          _("This payment method will be used for automatic top-ups."))


def _method_action(method_id: str, action, success_message: str):
    if not AddPaymentMethodForm().validate():
        abort(400)
    try:
        action(db.session, stripe_gateway(), current_user.company_id, method_id[:100])
        db.session.commit()
    except PaymentMethodNotFound:
        abort(404)
    except PaymentError:
        flash(_("The payment provider is not reachable right now. Please try again in a few minutes."), "error")
        return redirect_to(url_for("portal.payment_methods"))
    flash(success_message, "success")
    return redirect_to(url_for("portal.payment_methods"))
