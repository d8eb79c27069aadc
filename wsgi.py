"""Entry point for gunicorn (`gunicorn wsgi:app`) and the Flask CLI (`flask --app wsgi ...`).

Without STRIPE_SECRET_KEY (the demo) the in-repo Stripe sandbox plays Stripe. Its state is one SQLite
file (STRIPE_SANDBOX_DB, default instance/stripe-sandbox.db), so gunicorn workers, RQ workers and CLI
commands all see the same Stripe.
"""

from app.factory import create_app

app = create_app()

if app.config["STRIPE_SANDBOX"]:
    from stripe_sandbox.install import install_sandbox

    install_sandbox(app)
