"""An RQ worker in another process reaches the serving process's sandbox over HTTP."""

import threading

from werkzeug.serving import make_server

from core.payments.gateway import StripeGateway


def test_a_gateway_pointed_at_the_apps_sandbox_api_shares_its_state(app, sandbox):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        remote = StripeGateway("sk_test_sandbox", sandbox.webhook_secret, sandbox=True,
                               api_base=f"http://127.0.0.1:{server.server_port}/sandbox/stripe/api")
        customer_id = remote.create_customer(1, "remote-test", "Fern GmbH", "fern@example.com")
    finally:
        server.shutdown()
    local = app.extensions["stripe_gateway"]
    assert customer_id.startswith("cus_")
    assert local.list_payment_methods(customer_id) == []  # the in-process gateway knows the customer
