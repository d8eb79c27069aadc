"""Signing events like Stripe does, and delivering them to the application."""

from __future__ import annotations

import queue
import threading
import time
import urllib.error
import urllib.request
from typing import Callable

DEV_WEBHOOK_SECRET = "whsec_stripe_sandbox_development_only"

Deliver = Callable[[str, str], object]
"""`deliver(payload, signature_header)`; raising or returning False means not delivered."""


def signature_header(payload: str, secret: str, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header for `payload`, signed now unless `timestamp` is given."""
    if timestamp is None:
        timestamp = int(time.time())
    import stripe  # on the first event: at start-up the import would cost every process ~0.3 s of CPU

    return stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp)


class DeliveryFailed(Exception):
    pass


class HTTPDeliverer:
    """POSTs each event to `url`, as Stripe does to a webhook endpoint, retrying a few times.

    The sandbox calls it from one background thread (`background = True`), in event order.
    Only the standard library is used, and no proxy: the endpoint is expected on loopback.
    """

    background = True

    def __init__(self, url: str, attempts: int = 4, timeout: float = 10.0, backoff: float = 0.5):
        self.url = url
        self.attempts = attempts
        self.timeout = timeout
        self.backoff = backoff
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def __call__(self, payload: str, signature: str) -> None:
        problem = ""
        for attempt in range(self.attempts):
            try:
                status = self._post(payload, signature)
                if 200 <= status < 300:
                    return
                problem = f"HTTP {status}"
            except OSError as exc:  # URLError and timeouts are OSErrors
                problem = str(exc)
            if attempt + 1 < self.attempts:
                time.sleep(self.backoff * 2**attempt)
        raise DeliveryFailed(f"{self.url}: {problem}")

    def _post(self, payload: str, signature: str) -> int:
        request = urllib.request.Request(
            self.url,
            data=payload.encode("utf-8"),
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "Stripe-Signature": signature,
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks) stripe-sandbox",
            },
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code


class DeliveryWorker:
    """One daemon thread that hands queued event ids, in order, to `deliver_one`."""

    def __init__(self, deliver_one: Callable[[str], None]):
        self._deliver_one = deliver_one
        self._queue: queue.Queue[str] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="stripe-sandbox-webhooks", daemon=True)
        self._thread.start()

    def submit(self, event_id: str) -> None:
        self._queue.put(event_id)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every submitted event has been handled; False on timeout."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def _run(self) -> None:
        while True:
            event_id = self._queue.get()
            try:
                self._deliver_one(event_id)
            except Exception:  # a failed delivery is recorded by deliver_one; keep the thread alive
                pass
            finally:
                self._queue.task_done()
