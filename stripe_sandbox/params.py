"""Stripe's form encoding (`metadata[topup_id]=5`, `expand[0]=payment_intent`) and typed reading."""

from __future__ import annotations

import re
from typing import Any, Iterable
from urllib.parse import parse_qsl

from .errors import invalid_param, invalid_request, missing_param, unknown_param

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


def parse_form(text: str) -> dict[str, Any]:
    """Nested dicts and lists from `a[b][0][c]=v` pairs."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(text or "", keep_blank_values=True):
        _insert(root, _split_key(key), value, key)
    return _listify(root)


def _split_key(key: str) -> list[str]:
    match = _KEY.match(key)
    if not match:
        raise invalid_request(f"Invalid parameter name: {key}", key)
    return [match.group(1)] + re.findall(r"\[([^\[\]]*)\]", match.group(2))


def _insert(root: dict, path: list[str], value: str, key: str) -> None:
    node = root
    for i, token in enumerate(path):
        if token == "":  # `expand[]` appends
            token = str(len(node))
        if i == len(path) - 1:
            if isinstance(node.get(token), dict):
                raise invalid_request(f"Invalid parameter: {key} is given as a value and a hash", key)
            node[token] = value
            return
        child = node.setdefault(token, {})
        if not isinstance(child, dict):
            raise invalid_request(f"Invalid parameter: {key} is given as a value and a hash", key)
        node = child


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {k: _listify(v) for k, v in node.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


class Params:
    """Reads one level of parameters, rejecting names it was not told about like Stripe does."""

    def __init__(self, data: dict[str, Any], allowed: Iterable[str], prefix: str = ""):
        self.data = data
        self.prefix = prefix
        allowed = set(allowed) | ({"expand"} if not prefix else set())
        for name in data:
            if name not in allowed:
                raise unknown_param(self.name(name))

    def name(self, key: str) -> str:
        return f"{self.prefix}[{key}]" if self.prefix else key

    def has(self, key: str) -> bool:
        return self.data.get(key) not in (None, "")

    def _scalar(self, key: str, required: bool) -> str | None:
        value = self.data.get(key)
        if isinstance(value, (dict, list)):
            raise invalid_param(self.name(key), f"Invalid string: {self.name(key)} must be a string.")
        if value in (None, ""):
            if required:
                raise missing_param(self.name(key))
            return None
        return value

    def text(self, key: str, required: bool = False, max_length: int = 5000) -> str | None:
        value = self._scalar(key, required)
        if value is not None and len(value) > max_length:
            raise invalid_param(self.name(key), f"Invalid string: {self.name(key)} must be at most "
                                f"{max_length} characters")
        return value

    def integer(self, key: str, required: bool = False, minimum: int | None = None) -> int | None:
        value = self._scalar(key, required)
        if value is None:
            return None
        if not re.fullmatch(r"-?\d+", value):
            raise invalid_param(self.name(key), f"Invalid integer: {value}", "parameter_invalid_integer")
        number = int(value)
        if minimum is not None and number < minimum:
            raise invalid_param(self.name(key), f"This value must be greater than or equal to {minimum}.",
                                "parameter_invalid_integer")
        return number

    def flag(self, key: str) -> bool:
        value = self._scalar(key, False)
        if value is None:
            return False
        if value not in ("true", "false"):
            raise invalid_param(self.name(key), f"Invalid boolean: {value}")
        return value == "true"

    def choice(self, key: str, choices: Iterable[str], required: bool = False) -> str | None:
        value = self._scalar(key, required)
        choices = list(choices)
        if value is not None and value not in choices:
            raise invalid_param(self.name(key), f"Invalid {self.name(key)}: must be one of "
                                f"{', '.join(choices)}")
        return value

    def nested(self, key: str, allowed: Iterable[str], required: bool = False) -> "Params | None":
        value = self.data.get(key)
        if value in (None, ""):
            if required:
                raise missing_param(self.name(key))
            return None
        if not isinstance(value, dict):
            raise invalid_param(self.name(key), f"Invalid object: {self.name(key)} must be a hash.")
        return Params(value, allowed, self.name(key))

    def array(self, key: str, required: bool = False) -> list[Any]:
        value = self.data.get(key)
        if value in (None, ""):
            if required:
                raise missing_param(self.name(key))
            return []
        if not isinstance(value, list):
            raise invalid_param(self.name(key), f"Invalid array: {self.name(key)} must be an array.")
        return value

    def metadata(self, key: str = "metadata") -> dict[str, str]:
        value = self.data.get(key)
        if value in (None, ""):
            return {}
        if not isinstance(value, dict):
            raise invalid_param(self.name(key), "Invalid object: metadata must be a hash.")
        if len(value) > 50:
            raise invalid_param(self.name(key), "Metadata can have at most 50 keys.")
        result = {}
        for meta_key, meta_value in value.items():
            if not isinstance(meta_value, str):
                raise invalid_param(f"{self.name(key)}[{meta_key}]", "Metadata values must be strings.")
            if len(meta_key) > 40 or len(meta_value) > 500:
                raise invalid_param(f"{self.name(key)}[{meta_key}]", "Metadata keys can be at most 40 "
                                    "characters and values at most 500 characters.")
            if meta_value != "":
                result[meta_key] = meta_value
        return result
