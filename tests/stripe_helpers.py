"""Helpers for paying through the sandbox's hosted checkout page with the Flask test client."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from tests.helpers import csrf_token_from

CARD_OK = "card:4242424242424242"
CARD_DECLINED = "card:4000000000009995"
CARD_3DS = "card:4000002500003155"
IBAN_OK = "sepa:DE89370400440532013000"
IBAN_FAILS = "sepa:DE62370400440532013001"


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def start_topup(client, amount: str, save: bool = False, **extra):
    token = csrf_token_from(client.get("/business/billing/topup").text)
    data = {"amount": amount, "csrf_token": token, **extra}
    if save:
        data["save_payment_method"] = "y"
    return client.post("/business/billing/topup", data=data)


def checkout_session_id(checkout_url: str) -> str:
    return checkout_url.rstrip("/").rsplit("/", 1)[-1]


def pay(client, checkout_url: str, option: str = CARD_OK):
    """Press Pay on the hosted checkout page; returns the page's answer (303 to the success URL when paid)."""
    path = path_of(checkout_url)
    html = client.get(path).get_data(as_text=True)
    token = re.search(r'name="sandbox_token" value="([^"]+)"', html).group(1)
    return client.post(f"{path}/pay", data={"sandbox_token": token, "option": option})


def authenticate(client, checkout_url: str, action: str = "complete"):
    path = path_of(checkout_url)
    html = client.get(path).get_data(as_text=True)
    token = re.search(r'name="sandbox_token" value="([^"]+)"', html).group(1)
    return client.post(f"{path}/authenticate", data={"sandbox_token": token, "action": action})


def top_up(client, amount: str, option: str = CARD_OK, save: bool = False):
    """Start a top-up and pay it; returns (checkout URL, the hosted page's answer)."""
    started = start_topup(client, amount, save=save)
    assert started.status_code == 303, started.text
    checkout_url = started.headers["Location"]
    return checkout_url, pay(client, checkout_url, option)
