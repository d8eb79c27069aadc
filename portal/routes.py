"""Customer pages under /business/billing. Thin views: parse, call core, render."""

from __future__ import annotations

from flask import Response, current_app, render_template, request, stream_with_context
from flask_babel import gettext as _
from flask_login import current_user

from core.ledger.balances import account_summary
from core.payments.disputes import company_disputes, flagging
from app.csv_export import Number, csv_chunks
from app.locale import active_language, entry_type_label, local_datetime
from app.extensions import db
from core.schema import EntryType
from core.money import format_amount_plain
from core.ledger.history import Cursor, InvalidCursor, TransactionFilter, iter_transactions, transactions_page
from app.web import company_user_required, render_page, wants_partial
from portal.forms import TransactionFilterForm
from portal import bp


DASHBOARD_RECENT = 10


@bp.get("/billing")
@company_user_required
def dashboard():
    company_id = current_user.company_id
    summary = account_summary(db.session, company_id)
    recent = None if wants_partial() else transactions_page(  # the balance card refreshing itself shows none
        db.session, company_id, TransactionFilter(), limit=DASHBOARD_RECENT).entries
    return render_page("portal/dashboard.html", "portal/partials/balance_card.html", summary=summary, recent=recent,
                       disputes=flagging(company_disputes(db.session, company_id)))


@bp.get("/billing/transactions")
@company_user_required
def transactions():
    form = TransactionFilterForm(request.args)
    filters, error = _read_filters(form)
    page = None
    if error is None:
        try:
            page = transactions_page(
                db.session, current_user.company_id, filters,
                after=Cursor.from_query(request.args, "after"), before=Cursor.from_query(request.args, "before"),
                limit=current_app.config["TRANSACTIONS_PAGE_SIZE"],
            )
        except InvalidCursor:
            error = _("This page link is not valid any more. Please start from the first page.")
    return render_page(
        "portal/transactions.html", "portal/partials/transactions_list.html",
        status=400 if error else 200,
        form=form, page=page, error=error, query=_filter_query(form),
    )


@bp.get("/billing/transactions.csv")
@company_user_required
def transactions_csv():
    form = TransactionFilterForm(request.args)
    filters, error = _read_filters(form)
    if error is not None:
        return render_template("portal/transactions.html", form=form, page=None, error=error,
                               query=_filter_query(form)), 400
    rows = iter_transactions(db.session, current_user.company_id, filters)
    response = Response(stream_with_context(_csv_lines(rows, active_language())), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="transactions.csv"'
    return response


def _read_filters(form: TransactionFilterForm) -> tuple[TransactionFilter, str | None]:
    if not form.validate():
        return TransactionFilter(), _("Please check the filter: %(problems)s", problems=_form_problems(form))
    start, end = form.utc_bounds()
    entry_type = EntryType(form.type.data) if form.type.data else None
    return TransactionFilter(entry_type=entry_type, start=start, end=end), None


def _form_problems(form) -> str:
    return "; ".join(f"{form[name].label.text}: {' '.join(map(str, errors))}" for name, errors in form.errors.items())


def _filter_query(form: TransactionFilterForm) -> dict:
    """The active filters as query parameters, for page links and the CSV export."""
    return {name: form[name].raw_data[0] for name in ("type", "start", "end") if form[name].raw_data and form[name].raw_data[0]}


def _csv_lines(rows, language: str):
    """The ledger export: `;` and decimal comma in German, `,` and dot in English."""
    header = [_("Date"), _("Type"), _("Description"), _("Amount (EUR)"), _("Balance after (EUR)"), _("Reference")]
    return csv_chunks(header, ([
        local_datetime(entry.created_at, "short"),
        entry_type_label(entry.type),
        entry.description,
        Number(format_amount_plain(entry.amount, language)),
        Number(format_amount_plain(entry.balance_after, language)),
        f"{entry.reference_type}:{entry.reference_id}" if entry.reference_type else "",
    ] for entry in rows), language)
