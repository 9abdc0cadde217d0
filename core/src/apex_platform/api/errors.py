"""Error responses: always JSON `{"error": …}` that says what was wrong."""

from __future__ import annotations

from typing import Any

from litestar import Response


def problem(status: int, message: str, **extra: Any) -> Response[dict[str, Any]]:
    headers = {}
    if "retry_after" in extra:
        headers["Retry-After"] = str(extra.pop("retry_after"))
    return Response({"error": message, **extra}, status_code=status, headers=headers)
