"""Staff: failed top-ups and automatic top-ups, and the manual retry (a new Checkout link by email)."""

from __future__ import annotations

from flask import abort, current_app, flash, url_for
from flask_babel import gettext as _

from core.backoffice.failed_payments import failed_payments as failed_payment_rows
from core.backoffice.failed_payments import (
    PAYMENT_KINDS, NotFailed, create_retry_checkout, open_retry_topup, record_retry,
)
from app.locale import money
from app.extensions import db
from core.money import eur
from core.payments.topups import CheckoutFailed, ReturnUrls, TopupLimits, TopupNotFound
from core.documents.vat import VatPolicy
from app.inputs import query_choice
from app.web import redirect_to, render_page, staff_actor, staff_required, stripe_gateway
from staff import bp



@bp.get("/failed-payments")
@staff_required()
def failed_payments():
    kind = query_choice("kind", ["", *PAYMENT_KINDS])
    return render_page("staff/failed_payments.html", "staff/partials/failed_payment_rows.html",
                       rows=failed_payment_rows(db.session, kind), kind=kind)


@bp.post("/failed-payments/<id:topup_id>/retry")
@staff_required()
def retry_payment(topup_id: int):
    config = current_app.config
    try:
        new_topup = open_retry_topup(
            db.session, staff_actor(), topup_id,
            limits=TopupLimits(eur(config["TOPUP_MIN_EUR"]), eur(config["TOPUP_MAX_EUR"])),
            vat=VatPolicy.from_config(config))
    except TopupNotFound:
        abort(404)
    except NotFailed:
        flash(_("Only a failed top-up can be retried."), "error")
        return redirect_to(url_for("staff.failed_payments"))
    db.session.commit()  # step 1: the new pending top-up, on record before Stripe is asked
    try:
        url = create_retry_checkout(
            db.session, stripe_gateway(), new_topup.id, payment_method_types=config["PAYMENT_METHOD_TYPES"],
            description=_("Prepaid credit (retry of top-up #%(id)s)", id=topup_id),
            return_urls=lambda new_id: ReturnUrls(
                success=url_for("portal.topup_success", _external=True) + "?session_id={CHECKOUT_SESSION_ID}",
                cancel=url_for("portal.topup_cancel", topup=new_id, _external=True),
            ),
        )
    except CheckoutFailed:
        db.session.commit()  # the new top-up stays on record, marked failed with Stripe's answer
        flash(_("The payment provider is not reachable right now. Please try again in a few minutes."), "error")
        return redirect_to(url_for("staff.failed_payments"))
    db.session.commit()  # step 2: its Checkout Session
    record_retry(db.session, staff_actor(), topup_id, new_topup, url)
    db.session.commit()  # step 3: the audit record and the email
    flash(_("A new payment link for %(amount)s was emailed to the company (top-up #%(id)s).",
            amount=money(new_topup.amount), id=new_topup.id), "success")
    return redirect_to(url_for("staff.failed_payments"))
