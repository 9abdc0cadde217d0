"""A `stack.json` that commands and sinks believe, for tests that stand in for `apex-platform dev`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from apex_platform.stack.trust import process_record


def write_stack_file(home: Path, **sections: Any) -> Path:
    """Write `home/stack.json` with `sections` (e.g. `redis={"url": ...}`) naming this test
    process as the running stack, mode 0600: what `read_stack` believes."""
    home.mkdir(parents=True, exist_ok=True)
    record = process_record()
    doc = {"home": str(home), **sections, "pid": record["pid"], "process": record}
    path = home / "stack.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(doc))
    os.chmod(path, 0o600)
    return path
