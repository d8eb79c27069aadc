"""Staff: disputes (card chargebacks, SEPA returns) of every company, newest first."""

from __future__ import annotations

from flask import request

from app.extensions import db
from app.web import render_page, staff_required
from core.payments.disputes import recent_disputes
from staff import bp


@bp.get("/disputes")
@staff_required()
def disputes():
    open_only = request.args.get("open") == "1"
    return render_page("staff/disputes.html", "staff/partials/dispute_rows.html",
                       rows=recent_disputes(db.session, open_only=open_only), open_only=open_only)
