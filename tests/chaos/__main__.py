"""`python -m tests.chaos`: see `tests.chaos.run`."""

from __future__ import annotations

from tests.chaos.run import main

if __name__ == "__main__":
    raise SystemExit(main())
