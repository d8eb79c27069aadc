"""Bonus rules: the single best applicable rule gives extra credit on a top-up."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, or_, select
from sqlalchemy.orm import Session

from core.schema import BonusRule, Topup, TopupStatus
from core.money import divide_half_up

BASIS_POINTS = 10_000


@dataclass(frozen=True)
class Bonus:
    rule_id: int | None
    rule_name: str
    amount: int  # units; 0 when no rule applies


NO_BONUS = Bonus(None, "", 0)


def bonus_of_rule(rule: BonusRule, topup_amount: int) -> int:
    """The bonus a rule gives; a percentage is rounded half-up once, to the ledger's precision."""
    if rule.percent_basis_points:
        return divide_half_up(topup_amount * rule.percent_basis_points, BASIS_POINTS)
    return rule.fixed_amount or 0


def best_bonus(session: Session, company_id: int, topup_amount: int, at: datetime,
               exclude_topup_id: int | None = None) -> Bonus:
    """The largest bonus any active rule valid at ``at`` gives for this amount and company."""
    rules = session.scalars(
        select(BonusRule).where(
            BonusRule.active.is_(True),
            BonusRule.min_amount <= topup_amount,
            or_(BonusRule.valid_from.is_(None), BonusRule.valid_from <= at),
            or_(BonusRule.valid_until.is_(None), BonusRule.valid_until > at),
        )
    ).all()
    if any(rule.first_topup_only for rule in rules) and _has_credited_topup(session, company_id, exclude_topup_id):
        rules = [rule for rule in rules if not rule.first_topup_only]
    best = max(rules, key=lambda rule: (bonus_of_rule(rule, topup_amount), -rule.id), default=None)
    if best is None or bonus_of_rule(best, topup_amount) <= 0:
        return NO_BONUS
    return Bonus(best.id, best.name, bonus_of_rule(best, topup_amount))


def _has_credited_topup(session: Session, company_id: int, exclude_topup_id: int | None) -> bool:
    condition = (Topup.company_id == company_id) & (Topup.status == TopupStatus.CREDITED.value)
    if exclude_topup_id is not None:
        condition &= Topup.id != exclude_topup_id
    return session.scalar(select(exists().where(condition)))


def create_rule(session: Session, name: str, min_amount: int, *, percent_basis_points: int | None = None,
                fixed_amount: int | None = None, valid_from: datetime | None = None,
                valid_until: datetime | None = None, first_topup_only: bool = False) -> BonusRule:
    if (percent_basis_points is None) == (fixed_amount is None):
        raise ValueError("a rule has either a percentage or a fixed amount")
    rule = BonusRule(name=name, min_amount=min_amount, percent_basis_points=percent_basis_points,
                     fixed_amount=fixed_amount, valid_from=valid_from, valid_until=valid_until,
                     first_topup_only=first_topup_only)
    session.add(rule)
    session.flush()
    return rule
