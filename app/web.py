"""Web glue shared by the portal and staff blueprints: access rules, htmx responses, forms."""

from __future__ import annotations

from functools import wraps
from urllib.parse import urlsplit

from flask import abort, current_app, make_response, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm

from core.accounts.audit import Actor, record_denied
from app.extensions import db
from core.schema import Role
from core.payments.gateway import StripeGateway


class Form(FlaskForm):
    """The base of every form: Flask-WTF's (CSRF token; WTForms' own messages translated through
    Flask-WTF's i18n, WTF_I18N_ENABLED, in Flask-Babel's locale)."""


def company_admin_required(view):
    """Actions that pay or change settings; members of the company may only look."""

    @wraps(view)
    @company_user_required
    def wrapper(*args, **kwargs):
        if not current_user.is_company_admin:
            abort(403)
        return view(*args, **kwargs)

    return wrapper


def stripe_gateway() -> StripeGateway:
    gateway = current_app.extensions.get("stripe_gateway")
    if gateway is None:
        raise RuntimeError("No Stripe gateway: set STRIPE_SECRET_KEY, or run through wsgi.py, which installs the sandbox.")
    return gateway


def company_user_required(view):
    """Customer pages: a logged-in company user; staff and strangers see nothing here."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if not current_user.is_authenticated:
            return _to_login()
        if current_user.company_id is None:
            abort(404)
        return view(*args, **kwargs)

    return wrapper


def staff_required(*roles: Role):
    """Staff pages; customers get a 404 so the staff area does not reveal itself. A staff member
    without one of ``roles`` gets 403, and the attempt is audited."""
    allowed = {role.value for role in roles} or {Role.STAFF_SUPPORT.value, Role.STAFF_ADMIN.value}

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            if not current_user.is_authenticated:
                return _to_login()
            if not current_user.is_staff:
                abort(404)
            if current_user.role not in allowed:
                record_denied(db.session, staff_actor(), request.endpoint or "unknown", target_type="route",
                              target_id=request.path[:100], company_id=kwargs.get("company_id"))
                db.session.commit()  # this decorator is the entry point of the denied attempt's record
                abort(403)
            return view(*args, **kwargs)

        wrapper.allowed_roles = frozenset(allowed)  # read by the role-matrix test
        return wrapper

    return decorator


def staff_actor() -> Actor:
    """The logged-in staff member as an audit Actor."""
    return Actor(current_user.id, current_user.email, request.remote_addr)


def _to_login():
    return redirect_to(url_for("auth.login", next=request.full_path if request.method == "GET" else None))


def wants_partial() -> bool:
    """Whether this request is htmx swapping in a page's partial rather than loading the page."""
    return bool(request.htmx) and not request.htmx.boosted


def render_page(template: str, partial: str, status: int = 200, **context):
    """One URL, two answers: the full page, or for htmx just the partial it swaps in."""
    chosen = partial if wants_partial() else template
    response = make_response(render_template(chosen, **context), status)
    response.vary.add("HX-Request")
    return response


def redirect_to(location: str):
    """A redirect that htmx follows as a full navigation (HX-Redirect) and browsers as a 303."""
    if request.htmx:
        response = make_response("", 204)
        response.headers["HX-Redirect"] = location
        return response
    return redirect(location, 303)


def safe_next_url(target: str | None, fallback: str) -> str:
    """Only same-site relative paths may be redirect targets."""
    if not target:
        return fallback
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return fallback
    return target
