"""Architecture rules that a reading of the source can check."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Services never commit (nor end the transaction with a rollback): the entry point (view, API
# handler, job, CLI command) commits the unit of work.
NO_COMMIT_PATHS = ("core",)


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
    assert len(modules) >= 30 and all(module.is_file() for module in modules)  # the check reads them all
    offenders = [place for module in modules for place in _transaction_endings(module)]
    assert offenders == [], f"services call .commit() or .rollback(): {offenders}"


PROJECT_PACKAGES = ("app", "api", "core", "demo", "portal", "staff", "stripe_sandbox", "tests", "bench")


def _private_imports(module: Path) -> list[str]:
    """``from x import _name`` of another module (a module's own private names stay inside it)."""
    tree = ast.parse(module.read_text(encoding="utf-8"), filename=str(module))
    return [f"{module.relative_to(ROOT)}:{node.lineno} {alias.name}" for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module != "__future__"
            for alias in node.names if alias.name.startswith("_") and not alias.name.startswith("__")]


def test_no_module_imports_another_modules_private_names():
    modules = _modules(PROJECT_PACKAGES) + [ROOT / "wsgi.py", ROOT / "worker.py"]
    offenders = [place for module in modules for place in _private_imports(module)]
    assert offenders == [], f"private names imported: {offenders}"


def _balance_writes(module: Path) -> list[str]:
    """``.values(balance=...)`` / ``.values(reserved=...)``: statements that set a balance's figures."""
    tree = ast.parse(module.read_text(encoding="utf-8"), filename=str(module))
    return [f"{module.relative_to(ROOT)}:{node.lineno}" for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "values"
            and any(keyword.arg in ("balance", "reserved") for keyword in node.keywords)]


def test_only_the_ledger_sets_a_balance():
    inside = _modules(("core/ledger",))
    assert any(_balance_writes(module) for module in inside)  # the check sees the ledger's own writes
    outside = [module for module in _modules(("app", "api", "core", "demo", "portal", "staff")) if module not in inside]
    offenders = [place for module in outside for place in _balance_writes(module)]
    assert offenders == [], f"balance figures set outside core/ledger: {offenders}"


# Core's unit tests run on a plain SQLAlchemy session: no Flask, no shell, no app or client fixture.
SHELL_FIXTURES = ("app", "client")


def _is_shell_module(name: str) -> bool:
    top = name.split(".")[0]
    return top == "app" or top == "flask" or top.startswith("flask_")


def _shell_uses(tree: ast.AST) -> list[str]:
    """Imports of Flask or the shell (``app``), and functions that take the app or client fixture."""
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            uses += [f"{node.lineno} imports {alias.name}" for alias in node.names if _is_shell_module(alias.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and _is_shell_module(node.module or ""):
            uses.append(f"{node.lineno} imports {node.module}")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            parameters = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
            uses += [f"{node.lineno} {node.name}({argument.arg})" for argument in parameters
                     if argument.arg in SHELL_FIXTURES]
    return uses


def test_the_shell_check_finds_flask_the_app_and_their_fixtures():
    planted = ast.parse("import flask_login\nfrom app.extensions import db\nfrom flask import g\n"
                        "def test_page(client): pass\n@fixture\ndef company(app, session): pass\n")
    assert _shell_uses(planted) == ["1 imports flask_login", "2 imports app.extensions", "3 imports flask",
                                    "4 test_page(client)", "6 company(app)"]
    assert _shell_uses(ast.parse("from core.application import x\ndef test_it(session, apps): pass\n")) == []


def test_core_unit_tests_use_no_flask_no_app_and_no_app_or_client_fixture():
    modules = _modules(("tests/unit",))
    assert ROOT / "tests/unit/test_ledger.py" in modules and ROOT / "tests/unit/conftest.py" in modules
    offenders = [f"{module.relative_to(ROOT)}:{use}" for module in modules
                 for use in _shell_uses(ast.parse(module.read_text(encoding="utf-8"), filename=str(module)))]
    assert offenders == [], f"unit tests that reach for the Flask shell: {offenders}"
