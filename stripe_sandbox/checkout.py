"""The hosted checkout page, standing in for checkout.stripe.com. Plain HTML, no JavaScript.

Its one inline <style> carries the host app's CSP nonce when the host has one (Flask-Talisman's
``csp_nonce``): the page lives on the host's origin, under the host's Content-Security-Policy."""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING, Any

from . import sessions, testdata
from .payments import format_amount
from .sandbox import CHECKOUT_PATH

if TYPE_CHECKING:
    from flask import Blueprint

    from .sandbox import StripeSandbox

CHECKOUT_URL_PREFIX = CHECKOUT_PATH.rsplit("/", 1)[0]  # /sandbox/stripe


def create_checkout_blueprint(sb: "StripeSandbox", name: str = "stripe_sandbox_checkout") -> "Blueprint":
    """The hosted checkout page under /sandbox/stripe/checkout/<session id>.

    Its forms carry their own anti-forgery token, so the host app exempts the blueprint from
    its CSRF protection: `csrf.exempt(blueprint)` (Flask-WTF).
    """
    from flask import Blueprint, redirect, render_template_string, request

    blueprint = Blueprint(name, __name__, url_prefix=CHECKOUT_URL_PREFIX)

    def render(view: str, status: int = 200, **context: Any):
        return render_template_string(PAGE, view=view, **context), status

    def page_for(session: dict, error: str | None = None, selected: str | None = None,
                 card_number: str = "", iban: str = ""):
        context = _page_context(sb, session)
        context.update(error=error, card_number=card_number, iban=iban,
                       selected=selected or context["default_option"])
        if session["status"] == "complete":
            return render("complete", **context)
        if sessions.awaiting_authentication(sb, session):
            return render("authenticate", **context)
        return render("pay", **context)

    def open_session(session_id: str) -> dict | None:
        session = sb.store.get(session_id, "checkout.session")
        return session if session and session["status"] != "expired" else None

    @blueprint.get("/checkout/<session_id>")
    def show(session_id: str):
        with sb.transaction():
            session = open_session(session_id)
            if session is None:
                return render("missing", 404)
            return page_for(session)

    @blueprint.post("/checkout/<session_id>/pay")
    def pay(session_id: str):
        form = request.form
        with sb.transaction():
            session = open_session(session_id)
            if session is None:
                return render("missing", 404)
            if not _token_ok(sb, session_id, form.get("sandbox_token", "")):
                return render("forbidden", 403)
            if session["status"] != "open":
                return page_for(session)
            sb.private(session_id).pop("awaiting_authentication", None)
            option = form.get("option", "")
            kind, _, choice = option.partition(":")
            card_number, iban = form.get("card_number", ""), form.get("iban", "")
            if kind == "card" and "card" in session["payment_method_types"]:
                entered = card_number if choice == "other" else choice
                outcome = (sessions.pay_with_card(sb, session, entered) if entered.strip()
                           else sessions.PageOutcome("error", "Enter a card number."))
            elif kind == "sepa" and "sepa_debit" in session["payment_method_types"]:
                entered = iban if choice == "other" else choice
                outcome = (sessions.pay_with_iban(sb, session, entered) if entered.strip()
                           else sessions.PageOutcome("error", "Enter an IBAN."))
            else:
                outcome = sessions.PageOutcome("error", "Choose a payment method.")
            if outcome.kind == "error":
                return page_for(session, outcome.message, option, card_number, iban)
        return redirect(outcome.url or request.path.rsplit("/", 1)[0], 303)

    @blueprint.post("/checkout/<session_id>/authenticate")
    def authenticate(session_id: str):
        with sb.transaction():
            session = open_session(session_id)
            if session is None:
                return render("missing", 404)
            if not _token_ok(sb, session_id, request.form.get("sandbox_token", "")):
                return render("forbidden", 403)
            approved = request.form.get("action") == "complete"
            outcome = sessions.authenticate(sb, session, approved)
            if outcome.kind == "error":
                return page_for(session, outcome.message)
        return redirect(outcome.url, 303)

    @blueprint.get("/checkout/<session_id>/cancel")
    def cancel(session_id: str):
        with sb.transaction():
            session = open_session(session_id)
            if session is None or not session["cancel_url"]:
                return render("missing", 404)
            url = sessions.redirect_url(session["cancel_url"], session)
        return redirect(url, 303)

    return blueprint


def _token(sb: "StripeSandbox", session_id: str) -> str:
    key = sb.store.meta["page_secret"].encode("utf-8")
    return hmac.new(key, session_id.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def _token_ok(sb: "StripeSandbox", session_id: str, token: str) -> bool:
    return hmac.compare_digest(_token(sb, session_id), token)


def _page_context(sb: "StripeSandbox", session: dict) -> dict[str, Any]:
    setup = session["mode"] == "setup"
    currency = session["currency"] or "eur"
    methods = session["payment_method_types"]
    cards = [{"value": f"card:{n}", "display": testdata.group4(n), "label": testdata.TEST_CARDS[n].label}
             for n in testdata.HOSTED_PAGE_CARDS] if "card" in methods else []
    ibans = [{"value": f"sepa:{i.iban}", "display": testdata.group4(i.iban), "label": i.label}
             for i in testdata.TEST_IBANS.values()] if "sepa_debit" in methods else []
    pending_pm = sb.private(session["id"]).get("awaiting_authentication")
    pm = sb.store.get(pending_pm or "", "payment_method")
    base = f"{CHECKOUT_PATH}/{session['id']}"
    return {
        "setup": setup,
        "amount": None if setup else format_amount(session["amount_total"], currency),
        "description": sessions.description(sb, session),
        "line_items": [
            {"name": item["name"], "quantity": item["quantity"],
             "amount": format_amount(item["unit_amount"] * item["quantity"], item["currency"])}
            for item in sessions.line_items(sb, session)
        ],
        "email": sessions.email_for(sb, session),
        "cards": cards,
        "ibans": ibans,
        "default_option": (cards or ibans)[0]["value"],
        "card_allowed": bool(cards),
        "sepa_allowed": bool(ibans),
        "pending_card_last4": pm["card"]["last4"] if pm and pm.get("card") else None,
        "processing": session["payment_status"] == "unpaid",
        "settle_delay": sb.settle_delay_seconds,
        "token": _token(sb, session["id"]),
        "pay_url": f"{base}/pay",
        "authenticate_url": f"{base}/authenticate",
        "cancel_link": f"{base}/cancel" if session["cancel_url"] else None,
        "success_url": sessions.redirect_url(session["success_url"], session),
    }


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{% if view == 'missing' %}Checkout not available{% elif setup %}Save a payment method{% else %}Pay {{ amount }}{% endif %} · Stripe sandbox</title>
<style{% if csp_nonce is defined %} nonce="{{ csp_nonce() }}"{% endif %}>
  * { box-sizing: border-box; }
  body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
         color: #1a1f36; background: #f6f8fa; }
  .banner { background: #ffd44d; color: #3d2e00; text-align: center; padding: .5rem 1rem;
            font-weight: 600; border-bottom: 1px solid #e0b400; }
  main { max-width: 30rem; margin: 2rem auto; padding: 1.5rem 1.75rem; background: #fff;
         border: 1px solid #e3e8ee; border-radius: 8px; }
  h1 { font-size: 1.9rem; margin: .25rem 0; }
  .muted { color: #5e6a7d; font-size: .9rem; }
  table { width: 100%; border-collapse: collapse; margin: 1rem 0; font-size: .95rem; }
  td { padding: .3rem 0; border-bottom: 1px solid #eef1f4; }
  td.num { text-align: right; white-space: nowrap; }
  fieldset { border: 1px solid #e3e8ee; border-radius: 6px; margin: 1rem 0; padding: .5rem 1rem 1rem; }
  legend { font-weight: 600; padding: 0 .25rem; }
  label.option { display: flex; gap: .6rem; align-items: baseline; padding: .35rem 0; cursor: pointer; }
  .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; }
  .hint { color: #5e6a7d; font-size: .85rem; }
  input[type=text] { width: 100%; padding: .5rem .6rem; border: 1px solid #c9d1da; border-radius: 5px;
                     font: inherit; margin-top: .25rem; }
  button { font: inherit; font-weight: 600; border: 0; border-radius: 6px; padding: .7rem 1rem;
           cursor: pointer; background: #635bff; color: #fff; width: 100%; margin-top: .5rem; }
  button.secondary { background: #fff; color: #1a1f36; border: 1px solid #c9d1da; }
  button:focus-visible, a:focus-visible, input:focus-visible { outline: 3px solid #ffb400; outline-offset: 2px; }
  .error { background: #fff0f0; border: 1px solid #f5b5b5; color: #8a1111; border-radius: 6px;
           padding: .6rem .8rem; margin: 1rem 0; }
  .ok { background: #effaf3; border: 1px solid #a7e0bc; color: #0c5a2b; border-radius: 6px;
        padding: .6rem .8rem; margin: 1rem 0; }
  .actions { margin-top: 1rem; text-align: center; }
  a { color: #4b45c6; }
</style>
</head>
<body>
<div class="banner" role="note">Stripe sandbox — test mode. No real payment is made.</div>
<main>
{% if view == 'missing' %}
  <h1>Checkout not available</h1>
  <p>This checkout session does not exist or has expired.</p>
{% elif view == 'forbidden' %}
  <h1>Form expired</h1>
  <p>This form is no longer valid. Go back and reload the page.</p>
{% elif view == 'complete' %}
  {% if setup %}
    <h1>Payment method saved</h1>
  {% elif processing %}
    <h1>Payment submitted</h1>
    <p class="ok">Your SEPA Direct Debit of {{ amount }} is being processed{% if settle_delay is not none %}
      (in this sandbox: about {{ settle_delay|round|int }} seconds){% endif %}.</p>
  {% else %}
    <h1>Payment complete</h1>
    <p class="ok">{{ amount }} paid.</p>
  {% endif %}
  <p class="actions"><a href="{{ success_url }}">Return to the merchant</a></p>
{% elif view == 'authenticate' %}
  <p class="muted">3D Secure test page</p>
  <h1>Authenticate {% if setup %}your card{% else %}{{ amount }}{% endif %}</h1>
  <p>Your bank asks you to confirm {% if setup %}saving the card{% else %}this payment{% endif %}
     {%- if pending_card_last4 %} with the card ending in {{ pending_card_last4 }}{% endif %}.</p>
  {% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
  <form method="post" action="{{ authenticate_url }}">
    <input type="hidden" name="sandbox_token" value="{{ token }}">
    <button type="submit" name="action" value="complete">Complete authentication</button>
    <button type="submit" name="action" value="fail" class="secondary">Fail authentication</button>
  </form>
{% else %}
  {% if setup %}
    <p class="muted">Save a payment method</p>
    <h1>Save a payment method</h1>
    <p>Nothing is charged now{% if email %}; the method is saved for {{ email }}{% endif %}.</p>
  {% else %}
    <p class="muted">Pay</p>
    <h1>{{ amount }}</h1>
    <p>{{ description }}</p>
    {% if line_items|length > 1 or line_items[0].quantity > 1 %}
    <table>
      {% for item in line_items %}
      <tr><td>{{ item.name }}{% if item.quantity > 1 %} × {{ item.quantity }}{% endif %}</td>
          <td class="num">{{ item.amount }}</td></tr>
      {% endfor %}
      <tr><td><strong>Total</strong></td><td class="num"><strong>{{ amount }}</strong></td></tr>
    </table>
    {% endif %}
    {% if email %}<p class="muted">Paying as {{ email }}</p>{% endif %}
  {% endif %}
  {% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
  <form method="post" action="{{ pay_url }}">
    <input type="hidden" name="sandbox_token" value="{{ token }}">
    {% if card_allowed %}
    <fieldset>
      <legend>Card</legend>
      {% for card in cards %}
      <label class="option"><input type="radio" name="option" value="{{ card.value }}"
        {%- if selected == card.value %} checked{% endif %}>
        <span><span class="mono">{{ card.display }}</span> <span class="hint">{{ card.label }}</span></span></label>
      {% endfor %}
      <label class="option"><input type="radio" name="option" value="card:other"
        {%- if selected == 'card:other' %} checked{% endif %}> <span>Another card number</span></label>
      <input type="text" name="card_number" inputmode="numeric" autocomplete="off"
             placeholder="4242 4242 4242 4242" aria-label="Card number" value="{{ card_number }}">
    </fieldset>
    {% endif %}
    {% if sepa_allowed %}
    <fieldset>
      <legend>SEPA Direct Debit</legend>
      {% for entry in ibans %}
      <label class="option"><input type="radio" name="option" value="{{ entry.value }}"
        {%- if selected == entry.value %} checked{% endif %}>
        <span><span class="mono">{{ entry.display }}</span> <span class="hint">{{ entry.label }}</span></span></label>
      {% endfor %}
      <label class="option"><input type="radio" name="option" value="sepa:other"
        {%- if selected == 'sepa:other' %} checked{% endif %}> <span>Another IBAN</span></label>
      <input type="text" name="iban" autocomplete="off" placeholder="DE89 3704 0044 0532 0130 00"
             aria-label="IBAN" value="{{ iban }}">
      <p class="hint">By paying with SEPA Direct Debit you authorise the merchant to debit your
        account (a mandate). In this sandbox nothing is debited.</p>
    </fieldset>
    {% endif %}
    <button type="submit">{% if setup %}Save{% else %}Pay {{ amount }}{% endif %}</button>
  </form>
  {% if cancel_link %}<p class="actions"><a href="{{ cancel_link }}">Cancel and return to the merchant</a></p>{% endif %}
{% endif %}
</main>
</body>
</html>
"""
