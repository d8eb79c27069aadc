"""Demo data: two companies, their users, staff, and three months of history through the ledger.

Demo credentials are for the embedded demo only and are listed in the README.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.accounts.users import create_company, create_user
from core.calls.api_keys import create_api_key
from core.payments.bonuses import best_bonus, create_rule
from core.calls.rating import charge_call, rate_call
from core.clock import utcnow
from core.ledger.postings import Reference, post_entry
from core.schema import Company, EntryType, Role, Topup, TopupStatus
from core.money import UNITS_PER_CENT, eur

HISTORY_DAYS = 90
DEMO_API_KEY = "demo-calls-key"


@dataclass(frozen=True)
class DemoCompany:
    name: str
    street: str
    postal_code: str
    city: str
    vat_id: str
    language: str
    users: tuple[tuple[str, str, Role, str], ...]  # email, password, role, name
    calls_per_day: tuple[int, int]
    topup_amount: int
    seed: int
    api_key: str | None = None
    phone_number: str = "+49 30 1234567"


DEMO_COMPANIES = (
    DemoCompany(
        name="Muster Telefonie GmbH", street="Musterstraße 1", postal_code="10115", city="Berlin",
        vat_id="DE123456789", language="de",
        users=(
            ("demo@example.com", "demo-password", Role.COMPANY_ADMIN, "Maria Muster"),
            ("member@example.com", "member-password", Role.COMPANY_MEMBER, "Max Mitglied"),
        ),
        calls_per_day=(12, 40), topup_amount=eur("250"), seed=20261, api_key=DEMO_API_KEY,
    ),
    DemoCompany(
        name="Nordlicht Logistik AG", street="Hafenstraße 12", postal_code="20457", city="Hamburg",
        vat_id="DE987654321", language="en",
        users=(("nordlicht@example.com", "nordlicht-password", Role.COMPANY_ADMIN, "Nora Nord"),),
        calls_per_day=(4, 15), topup_amount=eur("100"), seed=20262, phone_number="+49 40 7654321",
    ),
)
DEMO_BONUS_RULES = (
    ("Bonus 5 % ab 250 €", eur("250"), 500),
    ("Bonus 10 % ab 500 €", eur("500"), 1000),
)
DEMO_STAFF = (
    ("staff@example.com", "staff-password", Role.STAFF_ADMIN, "Sam Staff"),
    ("support@example.com", "support-password", Role.STAFF_SUPPORT, "Sue Support"),
)


def seed_demo(session: Session, now: datetime | None = None) -> bool:
    """Create the demo data unless it exists. Returns whether anything was created."""
    if session.scalar(select(Company.id).where(Company.name == DEMO_COMPANIES[0].name)) is not None:
        return False
    now = now or utcnow()
    for name, min_amount, basis_points in DEMO_BONUS_RULES:
        create_rule(session, name, min_amount, percent_basis_points=basis_points)
    for email, password, role, name in DEMO_STAFF:
        create_user(session, email, password, role, name=name, locale="de")
    for demo in DEMO_COMPANIES:
        _seed_company(session, demo, now)
    session.commit()
    return True


def _seed_company(session: Session, demo: DemoCompany, now: datetime) -> None:
    start = now - timedelta(days=HISTORY_DAYS)
    company = create_company(
        session, demo.name, street=demo.street, postal_code=demo.postal_code, city=demo.city,
        vat_id=demo.vat_id, language=demo.language, created_at=start - timedelta(days=1),
    )
    for email, password, role, name in demo.users:
        create_user(session, email, password, role, company=company, name=name)
    if demo.api_key:
        create_api_key(session, company.id, "Telefonanlage (Demo)", key=demo.api_key)
    _seed_history(session, company.id, demo, start, now)


def _seed_history(session: Session, company_id: int, demo: DemoCompany, start: datetime, now: datetime) -> None:
    rng = random.Random(demo.seed)
    balance = 0
    topups = 0
    for moment, kind in _timeline(rng, demo, start, now):
        if kind == "call":
            duration = _call_duration(rng)
            charge = rate_call(duration, eur("0.42"), 1).amount
            if balance - charge < eur("30"):
                topups += 1
                balance += _seed_topup(session, company_id, demo.topup_amount * 2, topups, moment)
            call_id = f"demo-{demo.seed}-{moment:%Y%m%d%H%M%S}-{rng.randrange(10**6):06d}"
            to_number = _phone_number(rng)
            charge_call(session, company_id, call_id, started_at=moment - timedelta(seconds=duration),
                        ended_at=moment, duration_seconds=duration, posted_at=moment,
                        from_number=demo.phone_number, to_number=to_number,
                        description=f"{to_number} · {duration // 60}:{duration % 60:02d}")
            balance -= charge
        else:
            topups += 1
            balance += _seed_topup(session, company_id, demo.topup_amount, topups, moment)


def _seed_topup(session: Session, company_id: int, amount: int, number: int, moment: datetime) -> int:
    """A credited card top-up as Checkout would have left it, with the bonus the rules give."""
    moment -= timedelta(seconds=1)
    topup = Topup(company_id=company_id, kind="checkout", amount=amount, status=TopupStatus.CREDITED.value,
                  payment_method_type="card", stripe_payment_intent_id=f"pi_demo_{company_id}_{number}",
                  charged_cents=amount // UNITS_PER_CENT,
                  created_at=moment, updated_at=moment, credited_at=moment)
    session.add(topup)
    session.flush()
    reference = Reference("topup", str(topup.id))
    post_entry(session, company_id, EntryType.TOPUP, amount, description=f"Stripe checkout #{topup.id}",
               reference=reference, actor="stripe", created_at=moment)
    bonus = best_bonus(session, company_id, amount, moment, exclude_topup_id=topup.id)
    if bonus.amount:
        topup.bonus_amount, topup.bonus_rule_id = bonus.amount, bonus.rule_id
        post_entry(session, company_id, EntryType.BONUS, bonus.amount, description=bonus.rule_name,
                   reference=reference, actor="stripe", created_at=moment)
    return amount + bonus.amount


def _timeline(rng: random.Random, demo: DemoCompany, start: datetime, now: datetime):
    """Calls on working hours of every day, a top-up roughly every two weeks, in time order."""
    events = [(start + timedelta(hours=9), "topup")]
    for day in range(HISTORY_DAYS):
        date = start + timedelta(days=day)
        workday = date.weekday() < 5
        low, high = demo.calls_per_day
        count = rng.randint(low, high) if workday else rng.randint(0, low // 3)
        for _ in range(count):
            moment = date.replace(hour=7, minute=0, second=0, microsecond=0) + timedelta(
                seconds=rng.randrange(11 * 3600)
            )
            if moment < now:
                events.append((moment, "call"))
        if day % 14 == 13:
            events.append((date.replace(hour=8, minute=30, second=0, microsecond=0), "topup"))
    events.sort()
    return events


def _call_duration(rng: random.Random) -> int:
    """Mostly short business calls, some long ones, a few that never connected (0 s)."""
    if rng.random() < 0.05:
        return 0
    return max(1, min(int(rng.lognormvariate(4.5, 0.9)), 3 * 3600))


def _phone_number(rng: random.Random) -> str:
    area = rng.choice(["30", "40", "89", "69", "221", "711"])
    return f"+49 {area} {rng.randrange(1000000, 9999999)}"
