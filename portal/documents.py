"""Invoices, credit notes and monthly statements as PDF downloads (thin views)."""

from __future__ import annotations

from flask import Response, abort, current_app, render_template, request
from flask_babel import gettext as _
from flask_login import current_user

from core.documents.invoices import company_document, documents_page
from app.extensions import db
from core.documents.statements import company_statement, company_statements
from core.ledger.history import Cursor, InvalidCursor
from app.web import company_user_required
from portal import bp


@bp.get("/billing/invoices")
@company_user_required
def invoices():
    company_id = current_user.company_id
    page, error = None, None
    try:
        page = documents_page(db.session, company_id, after=Cursor.from_query(request.args, "after"),
                              before=Cursor.from_query(request.args, "before"),
                              limit=current_app.config["DOCUMENTS_PAGE_SIZE"])
    except InvalidCursor:
        error = _("This page link is not valid any more. Please start from the first page.")
    return render_template("portal/invoices.html", page=page, error=error,
                           statements=company_statements(db.session, company_id)), 400 if error else 200


@bp.get("/billing/invoices/<id:invoice_id>.pdf")
@company_user_required
def invoice_pdf(invoice_id: int):
    document = company_document(db.session, current_user.company_id, invoice_id)
    if document is None:
        abort(404)
    return _pdf(document.pdf, f"{document.number}.pdf")


@bp.get("/billing/invoices/statements/<id:statement_id>.pdf")
@company_user_required
def statement_pdf(statement_id: int):
    statement = company_statement(db.session, current_user.company_id, statement_id)
    if statement is None:
        abort(404)
    return _pdf(statement.pdf, f"statement-{statement.month:%Y-%m}.pdf")


def _pdf(data: bytes, filename: str) -> Response:
    response = Response(data, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'inline; filename="{filename}"'
    response.headers["Cache-Control"] = "private, max-age=0"
    return response
