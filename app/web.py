"""Web glue shared by the portal and staff blueprints: access rules, htmx responses, the menu."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from functools import wraps
from time import monotonic
from urllib.parse import urlsplit

from flask import abort, current_app, g, make_response, redirect, render_template, request, session, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup
from wtforms.fields.choices import SelectChoice

from core.accounts.audit import Actor, record_denied
from app.fragments import FragmentCache
from core.i18n import active_language, wtforms_translations
from core.schema import Role, db, without_transaction
from core.payments.gateway import StripeGateway


class Form(FlaskForm):
    """The base of every form: Flask-WTF's, with WTForms' own messages translated from a catalogue
    kept per language (Flask-WTF would load it from disk on every request)."""

    class Meta:
        def get_translations(self, form):
            return wtforms_translations(active_language())


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


def reads_only(view):
    """Pages that only read (put it outermost, before the user is loaded): their statements run
    without a transaction on PostgreSQL, sparing a BEGIN and a ROLLBACK round trip per request.
    Each SELECT sees committed data as it would in a READ COMMITTED transaction; a view that
    writes must not carry it (tests/web/test_dashboard.py checks the pages that do)."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        without_transaction(db.session)
        return view(*args, **kwargs)

    return wrapper


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


_menus = FragmentCache(max_entries=500)  # pages x kinds of user x languages


def navigation_links() -> Markup:
    """The menu's links for the signed-in kind of user, the current page marked
    (templates/partials/navigation_links.html), remembered per language, kind, page and root path."""
    kind = ("company" if current_user.company_id else "staff" if current_user.is_staff else None) \
        if current_user.is_authenticated else None
    context = {"kind": kind, "endpoint": request.endpoint, "blueprint": request.blueprint}
    key = (active_language(), request.script_root, *context.values())
    return _remembered_partial(_menus, key, "partials/navigation_links.html", context)


_select_options = FragmentCache(max_entries=500)  # selects x languages x selections


def select_options(select: str, choices: Sequence[SelectChoice], selected: str | None) -> Markup:
    """The ``<option>``s of the select ``select`` (templates/partials/select_options.html) with
    ``selected`` marked, remembered per language and selection: each lazily translated label costs
    a catalogue lookup (the ledger filter's eight, about 3 % of the page). ``select`` names the
    choices: a name always stands for the same choices."""
    if not any(choice.value == selected for choice in choices):
        selected = None  # a value sent from outside the choices is no new fragment
    return _remembered_partial(_select_options, (select, active_language(), selected),
                               "partials/select_options.html", {"choices": choices, "selected": selected})


def _remembered_partial(cache: FragmentCache, key: Hashable, template: str, context: dict) -> Markup:
    """``template`` rendered with ``context``, remembered in ``cache`` under ``key`` (which must hold
    everything the output depends on)."""
    return cache.get_or_render(key, lambda: Markup(current_app.jinja_env.get_template(template).render(context)))


CSRF_SIGNATURE_REUSE_SECONDS = 60
_csrf_tokens = FragmentCache(max_entries=10_000)  # sessions active within a minute


def csrf_token() -> str:
    """The page's CSRF token: Flask-WTF's, but signed once a minute per session instead of on every
    page (the signature, an HMAC over zlib-compressed JSON, cost about 4 % of a page). A
    token signed up to a minute ago is as valid as a new one: it carries the same session secret,
    and its age counts only against WTF_CSRF_TIME_LIMIT, which loses at most that minute."""
    token = g.get("csrf_token")
    if token is None and "csrf_token" in session:
        key = (current_app.secret_key, session["csrf_token"], int(monotonic()) // CSRF_SIGNATURE_REUSE_SECONDS)
        token = g.csrf_token = _csrf_tokens.get_or_render(key, lambda: Markup(generate_csrf()))
    return token or generate_csrf()  # a new session's first token is made (and signed) by Flask-WTF
