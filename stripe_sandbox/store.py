"""The sandbox's state: Stripe objects by id, data only the sandbox sees, ids and persistence."""

from __future__ import annotations

import json
import os
import secrets
import string
from pathlib import Path
from typing import Any

_ALPHABET = string.ascii_letters + string.digits


def random_token(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_id(prefix: str, length: int = 24) -> str:
    """An id like Stripe's: `pi_3PgafyB7WZ01zgkW...`."""
    return f"{prefix}_{random_token(length)}"


def new_checkout_session_id() -> str:
    return "cs_test_a1" + random_token(56)


class Store:
    """Plain data, no locking: the sandbox holds its lock around every use."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}  # id -> Stripe object, unexpanded, in creation order
        self.private: dict[str, dict[str, Any]] = {}  # id -> what Stripe keeps to itself (card number, ...)
        self.idempotency: dict[str, dict[str, Any]] = {}  # Idempotency-Key -> saved response
        self.deliveries: dict[str, dict[str, Any]] = {}  # event id -> webhook delivery status
        self.settlements: list[dict[str, Any]] = []  # SEPA payments waiting for their outcome
        self.meta: dict[str, Any] = {"page_secret": random_token(32)}
        self.dirty = False

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.objects[obj["id"]] = obj
        self.dirty = True
        return obj

    def get(self, object_id: str, object_type: str | None = None) -> dict[str, Any] | None:
        obj = self.objects.get(object_id)
        if obj is None or (object_type and obj.get("object") != object_type):
            return None
        return obj

    def private_of(self, object_id: str) -> dict[str, Any]:
        self.dirty = True
        return self.private.setdefault(object_id, {})

    def of_type(self, object_type: str) -> list[dict[str, Any]]:
        """Objects of one type, newest first (as Stripe lists them)."""
        return [o for o in reversed(self.objects.values()) if o.get("object") == object_type]

    # persistence

    _FIELDS = ("objects", "private", "idempotency", "deliveries", "settlements", "meta")

    def save(self, path: Path) -> None:
        data = {name: getattr(self, name) for name in self._FIELDS}
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, path)
        self.dirty = False

    @classmethod
    def load(cls, path: Path) -> "Store":
        store = cls()
        data = json.loads(path.read_text(encoding="utf-8"))
        for name in cls._FIELDS:
            if name in data:
                setattr(store, name, data[name])
        return store
