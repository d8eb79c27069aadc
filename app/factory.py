"""The application factory."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from flask import Flask, jsonify, render_template, request
from flask_babel import lazy_gettext as _l
from sqlalchemy import event
from sqlalchemy.engine import Engine

from app.config import ROOT, load_config
from app.extensions import babel, csrf, htmx, limiter, login_manager, migrate
from app.inputs import install_input_parsing
from app.jobs import install_followup_dispatch
from app.locale import register_template_helpers, select_locale
from app.security import init_security
from app.extensions import db
from core.payments.gateway import StripeGateway
from core.rendering import Renderer


def create_app(overrides: dict | None = None) -> Flask:
    instance_path = Path(os.environ.get("INSTANCE_PATH", ROOT / "instance"))
    app = Flask(
        __name__,
        instance_path=str(instance_path),
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    instance_path.mkdir(parents=True, exist_ok=True)
    app.config.update(load_config(instance_path))
    app.config.update(overrides or {})

    _init_logging()
    init_security(app)
    _init_extensions(app)
    app.extensions["renderer"] = Renderer(ROOT / "templates", app.config["BABEL_TRANSLATION_DIRECTORIES"],
                                          app.config["BABEL_DEFAULT_TIMEZONE"])  # documents and emails
    _init_stripe(app)
    install_input_parsing(app)
    _register_blueprints(app)
    _register_error_pages(app)
    _register_cli(app)
    return app


def _init_logging() -> None:
    """Warnings reach stderr (where gunicorn's and the workers' supervisors collect them) unless the
    deployment configured logging itself: e.g. a rate-limit storage that fell back to memory, follow-ups
    left in the outbox while Redis is down."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _init_extensions(app: Flask) -> None:
    db.init_app(app)
    install_followup_dispatch(db.session)  # services' follow-up work is enqueued after their commit
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), render_as_batch=True)
    csrf.init_app(app)
    htmx.init_app(app)
    babel.init_app(app, locale_selector=select_locale)
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = _l("Please log in to see this page.")
    login_manager.login_message_category = "info"
    register_template_helpers(app)


def _init_stripe(app: Flask) -> None:
    """A real Stripe gateway from the keys. Without keys, the entry point installs the sandbox."""
    if app.config["STRIPE_SECRET_KEY"]:
        app.extensions["stripe_gateway"] = StripeGateway(
            app.config["STRIPE_SECRET_KEY"], app.config["STRIPE_WEBHOOK_SECRET"], api_base=app.config["STRIPE_API_BASE"]
        )

    @app.context_processor
    def stripe_mode():
        gateway = app.extensions.get("stripe_gateway")
        return {"stripe_test_mode": gateway is not None and gateway.is_test_mode,
                "stripe_sandbox": gateway is not None and gateway.is_sandbox}


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, _record) -> None:
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()


def _register_blueprints(app: Flask) -> None:
    from api import bp as api_bp
    from app.auth import bp as auth_bp
    from portal import bp as portal_bp
    from staff import bp as staff_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(portal_bp)
    app.register_blueprint(staff_bp)
    app.register_blueprint(api_bp)
    csrf.exempt(api_bp)  # machines authenticate with an API key or Stripe's signature

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}


_API_ERROR_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large",
                    429: "rate_limited", 500: "internal_error"}


def _register_error_pages(app: Flask) -> None:
    messages = {
        400: _l("The request could not be understood."),
        403: _l("You are not allowed to do this."),
        404: _l("This page does not exist."),
        405: _l("This action is not allowed here."),
        413: _l("What you sent is too large."),
        422: _l("Some of the values you sent are not valid."),
        429: _l("Too many attempts. Please wait a moment and try again."),
        500: _l("Something went wrong on our side. Please try again later."),
    }

    def render_error(error):
        code = getattr(error, "code", 500) or 500
        if request.path.startswith("/api/"):  # machines get JSON with a stable code
            return jsonify(error={"code": _API_ERROR_CODES.get(code, "error"), "message": str(messages.get(
                code, messages[500]))}), code
        message = messages.get(code, messages[500])
        return render_template("error.html", code=code, message=message), code

    for code in messages:
        app.register_error_handler(code, render_error)


def _register_cli(app: Flask) -> None:
    from app.cli import billing_cli, bonus_cli, calls_cli, mail_cli, seed_demo_command, stripe_cli

    app.cli.add_command(billing_cli)
    app.cli.add_command(stripe_cli)
    app.cli.add_command(bonus_cli)
    app.cli.add_command(mail_cli)
    app.cli.add_command(calls_cli)
    app.cli.add_command(seed_demo_command)
