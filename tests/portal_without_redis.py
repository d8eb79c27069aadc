"""The portal as wsgi.py builds it, in a process of its own whose REDIS_URL points where nothing listens
(run by tests/web/test_redis_down.py). It logs a customer in, opens pages, tops up and pays, then sends
wrong passwords for a second account; it prints what each request answered, as JSON.

    python -m tests.portal_without_redis <email> <other email>
"""

import json
import sys

from tests.helpers import log_in
from tests.stripe_helpers import path_of, top_up
from wsgi import app


def main(email: str, other_email: str) -> dict:
    client = app.test_client()
    answers = {"login": log_in(client, email).status_code,
               "billing": client.get("/business/billing").status_code,
               "transactions": client.get("/business/billing/transactions").status_code}
    _, paid = top_up(client, "100")
    answers["paid"] = paid.status_code
    answers["success_page"] = client.get(path_of(paid.headers["Location"])).status_code
    app.extensions["stripe_sandbox"].wait_for_deliveries(timeout=30)
    stranger = app.test_client()
    answers["wrong_passwords"] = [log_in(stranger, other_email, "wrong-password").status_code for _ in range(6)]
    return answers


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:3])))
