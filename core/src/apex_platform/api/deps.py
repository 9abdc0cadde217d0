"""Dependencies the handlers receive (Litestar DI)."""

from __future__ import annotations

from litestar.di import NamedDependency

from apex_platform.runtime import Runtime

#: the process's assembled platform, provided by `create_app`
RuntimeDep = NamedDependency[Runtime]
