"""Login, logout and the language switch, shared by customers and staff."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from flask_babel import gettext as _

from flask import Blueprint, current_app, flash, make_response, render_template, request, session, url_for
from flask_login import UserMixin, current_user, login_required, login_user, logout_user

from core.accounts.users import (
    SignedInUser, authenticate, end_sessions, normalize_email, set_language, set_password_token, signed_in_user,
    user_for_set_password_token,
)
from core.accounts.users import set_password as change_password
from core.clock import utcnow
from app.extensions import limiter, login_manager
from app.extensions import db
from app.web import redirect_to, safe_next_url
from app.forms import LanguageForm, LoginForm, SetPasswordForm, SetPasswordLinkForm

bp = Blueprint("auth", __name__)


@dataclass(frozen=True, eq=False)
class LoginUser(SignedInUser, UserMixin):
    """The signed-in user as Flask-Login wants it: core's read-only copy with Flask-Login's protocol
    (its ``is_active`` is the user's own)."""

    @classmethod
    def of(cls, user: SignedInUser) -> LoginUser:
        return cls(**{field.name: getattr(user, field.name) for field in fields(user)})

    def get_id(self) -> str:
        """What Flask-Login keeps in the session: the user and the generation of their sessions, so
        that raising the generation (core.accounts.users.end_sessions) refuses every older session."""
        return f"{self.id}:{self.session_generation}"


# When the session's login began and when it last made a request (ISO times, UTC): the session
# cookie is signed, so neither can be moved; a copied cookie only ever gets older.
_LOGIN_STARTED, _LOGIN_SEEN = "login_started", "login_seen"


@login_manager.user_loader
def load_user(session_user: str) -> LoginUser | None:
    """Read anew on every request, so a role change, a block or a deactivation applies at once.
    A session of an older generation (its user logged out somewhere, got a new password, was
    deactivated or changed role), or past its maximum age or idle time, ends here."""
    user_id, _colon, generation = session_user.partition(":")
    user = signed_in_user(db.session, int(user_id)) if user_id.isdigit() else None
    if user is None or str(user.session_generation) != generation or _login_expired():
        _clear_session()
        flash(_("Your session has ended. Please log in again."), "info")
        return None
    session[_LOGIN_SEEN] = utcnow().isoformat(timespec="seconds")
    return LoginUser.of(user)


def _login_expired() -> bool:
    """Whether the login is older than SESSION_MAX_HOURS or idle for longer than SESSION_IDLE_MINUTES.
    A session without the times (a remember-me cookie: the portal issues none) counts as expired."""
    try:
        started, seen = (datetime.fromisoformat(session[key]) for key in (_LOGIN_STARTED, _LOGIN_SEEN))
    except (KeyError, TypeError, ValueError):
        return True
    now, config = utcnow(), current_app.config
    return (now - started >= timedelta(hours=config["SESSION_MAX_HOURS"])
            or now - seen >= timedelta(minutes=config["SESSION_IDLE_MINUTES"]))


def _clear_session() -> None:
    """An empty session but for the language chosen: no login, no CSRF secret, no times."""
    language = session.get("lang")
    session.clear()
    if language:
        session["lang"] = language


def _begin_login(user_id: int) -> None:
    """A new session for the user who just proved who they are (the CSRF secret is renewed with it:
    no token planted before the login survives it)."""
    _clear_session()
    login_user(LoginUser.of(signed_in_user(db.session, user_id)))
    session[_LOGIN_STARTED] = session[_LOGIN_SEEN] = utcnow().isoformat(timespec="seconds")


def home_url(user) -> str:
    return url_for("staff.companies") if user.is_staff else url_for("portal.dashboard")


def _login_failed(response) -> bool:
    return response.status_code == 422


def _account_key() -> str:
    """Failed logins count per account *and* address: someone who only knows an email address can
    lock out only their own address, never the account's owner (the per-address limit still holds)."""
    return f"login-account:{normalize_email(request.form.get('email', ''))}:{request.remote_addr}"


@bp.get("/")
def index():
    if current_user.is_authenticated:
        return redirect_to(home_url(current_user))
    return redirect_to(url_for("auth.login"))


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT_PER_ADDRESS"], methods=["POST"],
               deduct_when=_login_failed)
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT_PER_ACCOUNT"], methods=["POST"],
               key_func=_account_key, deduct_when=_login_failed)
def login():
    form = LoginForm()
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect_to(home_url(current_user))
        form.next.data = request.args.get("next", "")
        return render_template("login.html", form=form)
    user = authenticate(db.session, form.email.data or "", form.password.data or "") if form.validate() else None
    if user is None:
        # One message for every failure: it must not tell which part was wrong.
        return render_template("login.html", form=form, error=_("Email or password is not correct.")), 422
    _begin_login(user.id)
    if user.locale is None and session.get("lang"):
        set_language(db.session, user.id, session["lang"])  # keep the language chosen before login
    db.session.commit()  # the login time (and the language)
    return redirect_to(safe_next_url(form.next.data, home_url(user)))


# The set-password link is /set-password#<token>: browsers never send what follows '#', so the token
# appears in no request line (no access log) and no Referer. The page's script (static/js/portal.js)
# posts it; without JavaScript the person pastes the link into the page's form.

def set_password_url(user) -> str:
    """The link for an email that lets ``user`` choose a password (it dies with the first one)."""
    token = set_password_token(user, current_app.config["SECRET_KEY"])
    return f"{current_app.config['PORTAL_BASE_URL']}{url_for('auth.set_password_page')}#{token}"


def _user_of_link(link: str | None):
    """The user a posted link (or the bare token the script posts) is for, or None."""
    token = (link or "").rsplit("#", 1)[-1].strip()
    return user_for_set_password_token(db.session, token, current_app.config["SECRET_KEY"]) if token else None


def _set_password_page(status: int = 200, **context):
    response = make_response(render_template("set_password.html", **context), status)
    response.headers["Cache-Control"] = "no-store"  # the password form carries the token
    return response


@bp.get("/set-password")
def set_password_page():
    return _set_password_page(link_form=SetPasswordLinkForm())


@bp.post("/set-password/open")
def open_set_password_link():
    """The link's token, posted: the form to choose a password, for the user it names."""
    link_form = SetPasswordLinkForm()
    user = _user_of_link(link_form.link.data) if link_form.validate() else None
    if user is None:
        return _set_password_page(404)
    return _set_password_page(form=SetPasswordForm(formdata=None, link=link_form.link.data), email=user.email)


@bp.post("/set-password")
def set_password():
    """The new user chooses a password, then logs in."""
    form = SetPasswordForm()
    user = _user_of_link(form.link.data)
    if user is None:
        return _set_password_page(404)
    if not form.validate():
        return _set_password_page(422, form=form, email=user.email)
    change_password(db.session, user, form.password.data)
    db.session.commit()
    flash(_("Your password is set. Please log in."), "success")
    return redirect_to(url_for("auth.login"))


@bp.post("/logout")
@login_required
def logout():
    end_sessions(db.session, current_user.id)  # on every device, and a copy of this cookie too
    db.session.commit()
    logout_user()
    _clear_session()
    return redirect_to(url_for("auth.login"))


@bp.post("/language")
def change_language():
    form = LanguageForm()
    target = safe_next_url(form.next.data or request.referrer and _path_of(request.referrer), url_for("auth.index"))
    if not form.validate():
        return redirect_to(target)
    session["lang"] = form.language.data
    if current_user.is_authenticated:
        set_language(db.session, current_user.id, form.language.data)
        db.session.commit()
    return redirect_to(target)


def _path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")
