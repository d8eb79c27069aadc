"""The audit trail of staff actions: who, what, on which object, before/after, why, when, from where."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.clock import utcnow
from core.schema import AuditRecord


@dataclass(frozen=True)
class Actor:
    """The staff member acting, as plain values (views build it from the logged-in user)."""

    user_id: int | None
    email: str
    ip_address: str | None = None


def record_action(session: Session, actor: Actor, action: str, *, target_type: str, target_id: str | int,
                  company_id: int | None = None, before: dict[str, Any] | None = None,
                  after: dict[str, Any] | None = None, reason: str = "", outcome: str = "done",
                  request_key: str | None = None) -> AuditRecord:
    """Add an audit record to the caller's transaction (the caller commits with the change itself)."""
    row = AuditRecord(
        actor_user_id=actor.user_id, actor_email=actor.email, action=action, target_type=target_type,
        target_id=str(target_id), company_id=company_id, before=before, after=after, reason=reason,
        ip_address=actor.ip_address, outcome=outcome, request_key=request_key, created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return row


def record_denied(session: Session, actor: Actor, action: str, *, target_type: str, target_id: str | int,
                  company_id: int | None = None) -> None:
    """A staff member tried something their role does not allow. The caller commits the record as a unit
    of work of its own (nothing of the refused action in it), although the request then fails."""
    record_action(session, actor, action, target_type=target_type, target_id=target_id, company_id=company_id,
                  outcome="denied")


def company_audit_trail(session: Session, company_id: int, limit: int = 100) -> list[AuditRecord]:
    return audit_trail(session, company_id=company_id, limit=limit)


def audit_trail(session: Session, *, company_id: int | None = None, action: str | None = None,
                before_id: int | None = None, limit: int = 100) -> list[AuditRecord]:
    """Newest first; ``before_id`` pages back (ids grow with time: records are only ever appended)."""
    query = select(AuditRecord)
    if company_id is not None:
        query = query.where(AuditRecord.company_id == company_id)
    if action:
        query = query.where(AuditRecord.action.startswith(action))
    if before_id is not None:
        query = query.where(AuditRecord.id < before_id)
    return list(session.scalars(query.order_by(AuditRecord.id.desc()).limit(limit)))
