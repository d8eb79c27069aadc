"""Start-up stays light: every `flask` command, gunicorn worker and RQ work-horse imports `wsgi`, so a
library that only some paths need is imported where it is used, not at start-up (issue 14)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Each costs ~0.1–1 s of CPU to import; only PDFs, calls to Stripe and a Redis queue need them.
HEAVY_ON_DEMAND = ("weasyprint", "fontTools", "pydyf", "pypdf", "stripe", "redis", "rq")


def _modules_after(code: str, instance_path: Path) -> set[str]:
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    env.update(INSTANCE_PATH=str(instance_path), STRIPE_SANDBOX="1")  # the demo: the sandbox is installed
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120, check=True)
    return set(json.loads(result.stdout.splitlines()[-1]))


def test_importing_wsgi_with_the_sandbox_imports_no_heavy_library(tmp_path):
    loaded = _modules_after("import wsgi", tmp_path)
    assert "stripe_sandbox" in loaded  # the probe really built the demo app
    assert sorted(name for name in HEAVY_ON_DEMAND if name in loaded) == []


def test_stripe_is_imported_once_the_gateway_calls_stripe(tmp_path):
    """The probe sees a lazily imported library: the first call through the gateway brings stripe."""
    loaded = _modules_after("import wsgi\nwsgi.app.extensions['stripe_gateway'].list_events_created(0)", tmp_path)
    assert "stripe" in loaded
