"""Staff pages under /admin (staff users only)."""

from __future__ import annotations

from flask import Blueprint, request

from core.companies import search_companies
from core.models import db
from core.web import render_page, staff_required

bp = Blueprint("staff", __name__, url_prefix="/admin")


@bp.get("/companies")
@staff_required()
def companies():
    search = request.args.get("q", "")[:200]
    rows = search_companies(db.session, search)
    return render_page("staff/companies.html", "partials/staff_company_rows.html", rows=rows, search=search)
