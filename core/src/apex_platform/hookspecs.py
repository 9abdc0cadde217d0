"""Hook specifications of the `apex` pluggy project.

Each hook hands the plugin a `register` callback, so the host keeps control of names,
duplicates and validation (the shape simonw/llm uses). Hooks are called once, when the
plugin manager is built, by `apex_platform.plugins.build_registry`, through pluggy (so
`tryfirst`, `trylast` and wrappers are honoured); results are not combined because hooks
return nothing: every call to `register` adds one object.
Hook implementations must not do I/O: connect in `Sink.open`, not at registration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from collections.abc import Callable

    from apex_platform.contracts import Enricher, Sink, SourceConnector

hookspec = pluggy.HookspecMarker("apex")
hookimpl = pluggy.HookimplMarker("apex")

#: The version of this contract (these hooks, `contracts` and `capabilities`). A plugin
#: module says which versions it supports with a module attribute, a version range:
#: ``apex_plugin_api = ">=1,<2"``; the loader refuses it when this version is outside.
#: The minor number grows when something optional is added, the major one when a plugin
#: written for the previous major version could break.
PLUGIN_API_VERSION = "1.0"


@hookspec
def apex_register_sources(register: Callable[[SourceConnector], None]) -> None:
    """Register source connectors.

    Called by the host once per plugin manager, in API, worker and CLI processes.
    Call ``register(connector)`` for each `SourceConnector`; its `name` must be unique
    across all installed plugins (a duplicate is reported and the second one skipped).
    No I/O; reading settings from the environment is fine.
    """


@hookspec
def apex_register_enrichers(register: Callable[[Enricher], None]) -> None:
    """Register enrichers.

    Called once per plugin manager. Enrichers run in registration order, plugin
    load order being the sorted entry-point names. No I/O at registration.
    """


@hookspec
def apex_register_sinks(register: Callable[[Sink], None]) -> None:
    """Register sinks (stores).

    Called once per plugin manager. The saga writes every registered sink in each
    batch. `Sink.open` is called later by the worker; no I/O at registration.
    """
