"""The connector scaffold in templates/connector/ stays a working plugin: it loads through
the plugin machinery and its own tests pass against the current core."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TEMPLATE = Path(__file__).parents[1] / "templates" / "connector"


def test_template_loads_as_a_plugin_and_its_tests_pass() -> None:
    sys.path.insert(0, str(TEMPLATE / "src"))
    try:
        from apex_platform.plugins import build_registry

        registry = build_registry([], extra_module_paths="apex_connector_example.plugin", use_entry_points=False)
        assert registry.problems == []
        assert registry.sources["example"].mode == "webhook"
    finally:
        sys.path.remove(str(TEMPLATE / "src"))
    out = subprocess.run(
        [sys.executable, "-m", "pytest", str(TEMPLATE / "tests"), "-q", "-p", "no:cacheprovider"],
        env={
            "PYTHONPATH": str(TEMPLATE / "src"),
            "APEX_PYTEST_HARD_EXIT": "0",
            "PATH": "/usr/bin:/bin",
            # the session's payload guard log: a violation in the child fails this session too
            **{k: v for k, v in os.environ.items() if k == "APEX_PAYLOAD_GUARD_FILE"},
        },
        capture_output=True,
        text=True,
        timeout=120,
        cwd=TEMPLATE,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert " passed" in out.stdout
