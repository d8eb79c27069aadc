"""API keys for the telephony platform: shown once, stored as a SHA-256 hash, revocable.

The functions that write leave committing to the caller."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.clock import utcnow
from core.schema import ApiKey

KEY_PREFIX = "pbk_"
LAST_USED_RESOLUTION = timedelta(minutes=1)  # write "last used" at most once a minute per key


class ApiKeyNotFound(Exception):
    pass


def _digest(key: str) -> str:
    """Keys are 256 random bits, so a plain SHA-256 is enough (no slow password hash needed)."""
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(session: Session, company_id: int, name: str, *, user_id: int | None = None,
                   key: str | None = None) -> tuple[ApiKey, str]:
    """A new key; returns the row and the key itself, which is never stored and shown only now."""
    key = key or KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(company_id=company_id, name=name.strip()[:100], prefix=key[:10], key_hash=_digest(key),
                 created_by_user_id=user_id)
    session.add(row)
    session.flush()
    return row, key


def authenticate_api_key(session: Session, key: str) -> ApiKey | None:
    """The active key matching ``key`` (or None); notes when it was last used (the caller commits)."""
    if not key or len(key) > 200:
        return None
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == _digest(key), ApiKey.revoked_at.is_(None)))
    if row is None:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        session.execute(update(ApiKey).where(ApiKey.id == row.id).values(last_used_at=now))
    return row


def company_api_keys(session: Session, company_id: int) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).where(ApiKey.company_id == company_id)
                                .order_by(ApiKey.revoked_at.is_not(None), ApiKey.created_at.desc())))


def revoke_api_key(session: Session, company_id: int, key_id: int) -> ApiKey:
    row = session.get(ApiKey, key_id)
    if row is None or row.company_id != company_id:
        raise ApiKeyNotFound(key_id)
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return row
