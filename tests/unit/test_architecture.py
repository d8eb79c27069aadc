"""Architecture rules that a reading of the source can check."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Services never commit (nor end the transaction with a rollback): the entry point (view, API
# handler, job, CLI command) commits the unit of work. Checked where the rule is kept so far; widen
# to ("core",) as the other packages (calls, ledger) follow.
NO_COMMIT_PATHS = ("core/accounts", "core/backoffice", "core/calls/api_keys.py", "core/payments", "core/documents",
                   "core/notifications")


def _modules(paths: tuple[str, ...]) -> list[Path]:
    found: list[Path] = []
    for name in paths:
        path = ROOT / name
        found.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return found


def _transaction_endings(module: Path) -> list[str]:
    tree = ast.parse(module.read_text(encoding="utf-8"), filename=str(module))
    return [f"{module.relative_to(ROOT)}:{node.lineno}" for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("commit", "rollback")]


def test_services_leave_committing_to_the_entry_point():
    modules = _modules(NO_COMMIT_PATHS)
    assert len(modules) >= len(NO_COMMIT_PATHS) and all(module.is_file() for module in modules)
    offenders = [place for module in modules for place in _transaction_endings(module)]
    assert offenders == [], f"services call .commit() or .rollback(): {offenders}"
