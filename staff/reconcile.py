"""Staff: reconciliation — ledger integrity, credits/debits per top-up and refund, Stripe vs portal."""

from __future__ import annotations

from datetime import datetime, time

from flask import current_app
from flask_login import current_user

from app.extensions import db

from core.schema import Role
from core.backoffice.reconcile import FINDING_LABELS, reconcile
from app.inputs import query_day
from app.web import render_page, staff_required, stripe_gateway
from staff import bp



@bp.get("/reconciliation")
@staff_required()
def reconciliation():
    since = query_day("since")
    start = datetime.combine(since, time.min) if since else None
    findings = reconcile(db.session, stripe_gateway() if start else None, since=start)
    return render_page("staff/reconciliation.html", "staff/partials/reconcile_findings.html",
                       findings=findings, since=since, stripe_checked=start is not None, labels=FINDING_LABELS,
                       # corrections (ledger adjustments with reason and audit) are for staff admins only
                       can_correct=current_user.role == Role.STAFF_ADMIN.value,
                       correction_endpoints=set(current_app.view_functions))
