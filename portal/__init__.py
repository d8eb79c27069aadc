"""Blueprint "portal": the customer pages under /business (thin views: parse, call core, commit, render).
One module per area; each adds its views to this blueprint."""

from flask import Blueprint

bp = Blueprint("portal", __name__, url_prefix="/business")

from portal import auto_topup, documents, payments, routes, settings, usage  # noqa: E402,F401 - their views join bp
