"""Entry point for gunicorn (`gunicorn wsgi:app`) and the Flask CLI (`flask --app wsgi ...`).

Without STRIPE_SECRET_KEY (the demo) the in-repo Stripe sandbox plays Stripe, in this one process.
"""

import os
from pathlib import Path

from app.factory import create_app

app = create_app()

if app.config["STRIPE_SANDBOX"]:
    from stripe_sandbox.install import install_sandbox, use_remote_sandbox

    if os.environ.get("STRIPE_SANDBOX_API"):  # an RQ worker next to `make run`: use that process's sandbox
        use_remote_sandbox(app, os.environ["STRIPE_SANDBOX_API"])
    else:
        install_sandbox(app, state_path=Path(app.instance_path) / "stripe-sandbox.json")
