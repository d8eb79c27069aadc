"""A company's saved payment methods (kept at Stripe) and the one chosen for automatic top-ups.

Nothing here commits: each function is one unit of work that asks Stripe first and writes after,
and the caller commits it."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from sqlalchemy import update
from sqlalchemy.orm import Session

from core.schema import Company, PrepaidBalance
from core.payments.gateway import PaymentMethod, StripeGateway
from core.payments.topups import ReturnUrls, remember_customer, stripe_customer


class PaymentMethodNotFound(Exception):
    pass


def company_payment_methods(session: Session, gateway: StripeGateway, company_id: int) -> list[PaymentMethod]:
    company = session.get(Company, company_id)
    if not company.stripe_customer_id:
        return []
    return gateway.list_payment_methods(company.stripe_customer_id)


def _owned_method(session: Session, gateway: StripeGateway, company_id: int, method_id: str) -> PaymentMethod:
    """The method, if it belongs to this company's Stripe customer; anything else is not found."""
    company = session.get(Company, company_id)
    if not company.stripe_customer_id or not method_id.startswith("pm_"):
        raise PaymentMethodNotFound(method_id)
    for method in gateway.list_payment_methods(company.stripe_customer_id):
        if method.id == method_id:
            return method
    raise PaymentMethodNotFound(method_id)


def remove_payment_method(session: Session, gateway: StripeGateway, company_id: int, method_id: str) -> None:
    """Detach the method at Stripe; if automatic top-ups used it, they stop (no method, no charge)."""
    _owned_method(session, gateway, company_id, method_id)
    gateway.detach_payment_method(method_id)
    session.execute(
        update(PrepaidBalance)
        .where(PrepaidBalance.company_id == company_id, PrepaidBalance.auto_topup_payment_method_id == method_id)
        .values(auto_topup_payment_method_id=None, auto_topup_enabled=False)
    )


def choose_auto_topup_method(session: Session, gateway: StripeGateway, company_id: int, method_id: str) -> None:
    _owned_method(session, gateway, company_id, method_id)
    session.execute(
        update(PrepaidBalance).where(PrepaidBalance.company_id == company_id)
        .values(auto_topup_payment_method_id=method_id)
    )


def start_adding_method(session: Session, gateway: StripeGateway, company_id: int, payment_method_types: list[str],
                        locale: str, return_urls: Callable[[int], ReturnUrls]) -> str:
    """A Checkout Session in setup mode; returns the URL where the customer enters the method. A new
    Stripe customer is stored after both Stripe calls; the caller commits."""
    customer_id = stripe_customer(session, gateway, company_id)
    urls = return_urls(company_id)
    checkout = gateway.create_setup_checkout(
        company_id=company_id, request_key=f"{company_id}-{secrets.token_hex(8)}", customer_id=customer_id,
        payment_method_types=payment_method_types, success_url=urls.success, cancel_url=urls.cancel, locale=locale,
    )
    remember_customer(session, company_id, customer_id)
    return checkout.url or ""
