"""Blueprint "staff": the staff pages under /admin (staff users only; customers get 404).
One module per area; each adds its views to this blueprint."""

from flask import Blueprint

bp = Blueprint("staff", __name__, url_prefix="/admin")

from staff import disputes, events, manage, money, payments, reconcile, reports, routes  # noqa: E402,F401 - their views join bp
