"""Staff pages under /admin (staff users only): the company list and a company's page with its tabs."""

from __future__ import annotations

from flask import abort, current_app, flash, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from core.accounts.audit import audit_trail, company_audit_trail, record_action
from core.payments.auto_topup import attempt_history
from core.payments.disputes import company_disputes, flagging
from core.ledger.balances import account_summary
from core.accounts.companies import (
    FLAGS, SORTS, AutoTopupIncomplete, InvalidListCursor, change_rate, change_threshold, list_companies, rate_history,
    set_auto_topup, set_blocked,
)
from app.locale import active_language, money
from core.ledger.postings import book_unexplained_difference
from core.documents.invoices import documents_page
from core.calls.api_keys import company_api_keys
from app.extensions import db
from core.schema import CallCharge, Company, Role, SentEmail, User, WebhookEvent
from core.money import InvalidAmount, parse_amount
from core.payments.topups import recent_topups
from core.ledger.history import Cursor, InvalidCursor, TransactionFilter, transactions_page
from app.inputs import query_id
from app.web import redirect_to, render_page, staff_actor, staff_required
from staff.manage_forms import BlockForm, CompanyListForm, InviteForm, RateForm, ReasonForm, RoleForm, ThresholdForm
from staff import bp


TABS = ("ledger", "topups", "calls", "invoices", "auto_topup", "events", "emails", "users", "audit")
TAB_ROWS = 50
AUDIT_PAGE = 100


@bp.get("/companies")
@staff_required()
def companies():
    form = CompanyListForm(request.args)
    flags = frozenset(flag for flag in request.args.getlist("flag") if flag in FLAGS)
    sort = form.sort.data if form.sort.data in SORTS else "name"
    error, page = None, None
    if form.validate():
        try:
            page = list_companies(db.session, text=form.q.data or "", flags=flags, sort=sort, after=form.after.data or None)
        except InvalidListCursor:
            error = _("This page link is not valid any more. Please start from the first page.")
    else:
        error = _("Please check the search.")
    query = {"q": form.q.data or "", "sort": sort, "flag": sorted(flags)}
    return render_page("staff/companies.html", "staff/partials/company_rows.html", status=400 if error else 200,
                       page=page, error=error, form=form, flags=flags, sort=sort, query=query, all_flags=FLAGS)


def _company_or_404(company_id: int) -> Company:
    company = db.session.get(Company, company_id)
    if company is None:
        abort(404)
    return company


@bp.get("/companies/<id:company_id>")
@staff_required()
def company(company_id: int):
    tab = request.args.get("tab", "ledger")
    if tab not in TABS:
        abort(404)
    record = _company_or_404(company_id)
    context = _tab_context(company_id, tab)
    status = 400 if context.get("error") else 200
    if request.htmx and request.htmx.target == "tab-content":
        return render_page(f"staff/partials/tab_{tab}.html", f"staff/partials/tab_{tab}.html", company=record,
                           status=status, **context)
    disputes = company_disputes(db.session, company_id)
    return render_template(
        "staff/company.html", company=record, summary=account_summary(db.session, company_id), tab=tab, tabs=TABS,
        rates=rate_history(db.session, company_id), block_form=BlockForm(), rate_form=RateForm(),
        threshold_form=ThresholdForm(), disputes=disputes, disputed=bool(flagging(disputes)), **context,
    ), status


def _tab_context(company_id: int, tab: str) -> dict:
    session = db.session
    if tab == "ledger":
        return {"entries": transactions_page(session, company_id, TransactionFilter(), limit=TAB_ROWS).entries}
    if tab == "topups":
        return {"topups": recent_topups(session, company_id, limit=TAB_ROWS)}
    if tab == "calls":
        return {"calls": session.scalars(select(CallCharge).where(CallCharge.company_id == company_id)
                                         .order_by(CallCharge.started_at.desc()).limit(TAB_ROWS)).all()}
    if tab == "invoices":
        return _invoices_tab(company_id)
    if tab == "auto_topup":
        return {"attempts": attempt_history(session, company_id)}
    if tab == "events":
        return {"events": session.scalars(select(WebhookEvent).where(WebhookEvent.company_id == company_id)
                                          .order_by(WebhookEvent.received_at.desc()).limit(TAB_ROWS)).all()}
    if tab == "users":
        return {"users": session.scalars(select(User).where(User.company_id == company_id).order_by(User.id)).all(),
                "api_keys": company_api_keys(session, company_id), "invite_form": InviteForm(),
                "reason_form": ReasonForm(), "role_form": RoleForm()}
    if tab == "emails":
        return {"emails": session.scalars(select(SentEmail).where(SentEmail.company_id == company_id)
                                          .order_by(SentEmail.created_at.desc()).limit(TAB_ROWS)).all()}
    return {"records": company_audit_trail(session, company_id, TAB_ROWS)}


def _invoices_tab(company_id: int) -> dict:
    try:
        after, before = Cursor.from_query(request.args, "after"), Cursor.from_query(request.args, "before")
    except InvalidCursor:
        return {"page": None, "error": _("This page link is not valid any more. Please start from the first page.")}
    return {"page": documents_page(db.session, company_id, after=after, before=before,
                                   limit=current_app.config["DOCUMENTS_PAGE_SIZE"]), "error": None}


def _back_with_errors(company_id: int, form) -> tuple:
    problems = "; ".join(" ".join(map(str, errors)) for errors in form.errors.values())
    flash(_("Nothing was changed: %(problems)s", problems=problems), "error")
    return redirect_to(url_for("staff.company", company_id=company_id))


@bp.post("/companies/<id:company_id>/block")
@staff_required(Role.STAFF_ADMIN)
def block(company_id: int):
    _company_or_404(company_id)
    form = BlockForm()
    if not form.validate():
        return _back_with_errors(company_id, form)
    blocked = form.block.data == "1"
    set_blocked(db.session, staff_actor(), company_id, blocked, form.reason.data.strip())
    db.session.commit()
    flash(_("The company is blocked.") if blocked else _("The company is unblocked."), "success")
    return redirect_to(url_for("staff.company", company_id=company_id))


@bp.post("/companies/<id:company_id>/rate")
@staff_required(Role.STAFF_ADMIN)
def rate(company_id: int):
    _company_or_404(company_id)
    form = RateForm()
    if not form.validate():
        return _back_with_errors(company_id, form)
    try:
        rate_units = parse_amount(form.rate_per_minute.data, active_language(), max_places=4)
    except InvalidAmount:
        rate_units = -1
    if not 0 < rate_units <= 100_000:  # up to 10 EUR a minute
        flash(_("Nothing was changed: the rate must be between 0,0001 and 10 EUR per minute."), "error")
        return redirect_to(url_for("staff.company", company_id=company_id))
    change_rate(db.session, staff_actor(), company_id, rate_units, form.increment.data, form.reason.data.strip())
    db.session.commit()
    flash(_("The new rate applies to calls that start from now on."), "success")
    return redirect_to(url_for("staff.company", company_id=company_id))


@bp.post("/companies/<id:company_id>/threshold")
@staff_required(Role.STAFF_ADMIN)
def threshold(company_id: int):
    _company_or_404(company_id)
    form = ThresholdForm()
    if not form.validate():
        return _back_with_errors(company_id, form)
    try:
        units = parse_amount(form.threshold.data, active_language())
    except InvalidAmount:
        units = -1
    if not 0 <= units <= 1_000_000 * 10_000:
        flash(_("Nothing was changed: the threshold must be an amount from 0 to 1.000.000 EUR."), "error")
        return redirect_to(url_for("staff.company", company_id=company_id))
    change_threshold(db.session, staff_actor(), company_id, units, form.reason.data.strip())
    db.session.commit()
    flash(_("The low-balance threshold was changed."), "success")
    return redirect_to(url_for("staff.company", company_id=company_id))


@bp.post("/companies/<id:company_id>/book-difference")
@staff_required(Role.STAFF_ADMIN)
def book_difference(company_id: int):
    """Reconciliation: explain a balance that drifted from its ledger with an adjustment entry."""
    _company_or_404(company_id)
    form = ReasonForm()
    if not form.validate():
        return _back_with_errors(company_id, form)
    actor = staff_actor()
    entry = book_unexplained_difference(db.session, company_id, description=form.reason.data.strip(),
                                        actor=f"staff:{actor.user_id}")
    if entry is None:
        db.session.rollback()
        flash(_("The balance equals its ledger; nothing was booked."), "info")
    else:
        record_action(db.session, actor, "ledger.book_difference", target_type="company", target_id=company_id,
                      company_id=company_id, before={"ledger_balance": entry.balance_before},
                      after={"balance": entry.balance_after}, reason=form.reason.data.strip())
        db.session.commit()
        flash(_("The difference of %(amount)s was booked as an adjustment.", amount=money(entry.amount)), "success")
    return redirect_to(url_for("staff.company", company_id=company_id, tab="ledger"))


@bp.post("/companies/<id:company_id>/auto-topup")
@staff_required(Role.STAFF_ADMIN)
def auto_topup(company_id: int):
    _company_or_404(company_id)
    form = BlockForm()  # a reason and an on/off value
    if not form.validate():
        return _back_with_errors(company_id, form)
    enable = form.block.data == "1"
    try:
        set_auto_topup(db.session, staff_actor(), company_id, enable, form.reason.data.strip())
    except AutoTopupIncomplete:
        flash(_("Nothing was changed: the customer has not chosen a payment method, amount and threshold yet."),
              "error")
        return redirect_to(url_for("staff.company", company_id=company_id))
    db.session.commit()
    flash(_("Automatic top-up is on.") if enable else _("Automatic top-up is off."), "success")
    return redirect_to(url_for("staff.company", company_id=company_id))


@bp.get("/audit")
@staff_required()
def audit():
    company_id, before_id = query_id("company"), query_id("before")
    action = request.args.get("action", "")[:60] or None
    records = audit_trail(db.session, company_id=company_id, action=action, before_id=before_id, limit=AUDIT_PAGE)
    older = records[-1].id if len(records) == AUDIT_PAGE else None
    return render_template("staff/audit.html", records=records, older=older, company_id=company_id, action=action or "")
