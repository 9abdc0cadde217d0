"""Building the plugin manager and the registry of sources, enrichers and sinks.

Every plugin, built-in or third-party, goes the same path: an entry point in the
`apex.plugins` group (or an import path in `APEX_PLUGIN_MODULES`), loaded in its own
``try`` so that one broken plugin is reported and skipped, never fatal.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any

import pluggy

from apex_platform import hookspecs
from apex_platform.contracts import Enricher, Sink, SourceConnector
from apex_platform.errors import PluginError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "apex.plugins"
PROJECT = "apex"


@dataclass(frozen=True)
class PluginInfo:
    """One loaded (or failed) plugin, as `plugins list` shows it."""

    name: str
    distribution: str | None
    version: str | None
    module: str
    error: str | None = None


@dataclass
class Registry:
    """What the installed plugins registered, keyed by name."""

    sources: dict[str, SourceConnector] = field(default_factory=dict)
    enrichers: dict[str, Enricher] = field(default_factory=dict)
    sinks: dict[str, Sink] = field(default_factory=dict)
    plugins: list[PluginInfo] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def source(self, name: str) -> SourceConnector:
        try:
            return self.sources[name]
        except KeyError:
            known = ", ".join(sorted(self.sources)) or "none"
            raise PluginError(f"unknown source {name!r} (installed: {known})") from None

    def owner_of(self, kind: str, name: str) -> PluginInfo | None:
        return self._owners.get((kind, name))

    _owners: dict[tuple[str, str], PluginInfo] = field(default_factory=dict, repr=False)


def _wanted(selection: str | Iterable[str]) -> set[str] | None:
    if isinstance(selection, str):
        names = {part.strip() for part in selection.split(",") if part.strip()}
    else:
        names = set(selection)
    return None if not names or "all" in names else names


def make_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def _entry_points() -> list[EntryPoint]:
    return sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def build_registry(
    selection: str | Iterable[str] = "all",
    *,
    modules: Iterable[ModuleType | object] = (),
    extra_module_paths: str | Iterable[str] = (),
    use_entry_points: bool = True,
) -> Registry:
    """Load plugins and collect what they register.

    `selection` filters entry points by name ("all" or "a,b"); `modules` are plugin
    objects registered explicitly (tests do this); `extra_module_paths` are import paths
    (from `APEX_PLUGIN_MODULES`) loaded like entry points.
    """
    pm = make_plugin_manager()
    registry = Registry()
    wanted = _wanted(selection)
    seen: set[str] = set()

    def add(name: str, plugin: object, dist: str | None, version: str | None, module: str) -> None:
        try:
            pm.register(plugin, name=name)
        except ValueError as exc:
            registry.problems.append(f"plugin {name!r} ({dist or module}) not registered: {exc}")
            return
        registry.plugins.append(PluginInfo(name, dist, version, module))
        seen.add(name)

    if use_entry_points:
        for ep in _entry_points():
            if wanted is not None and ep.name not in wanted:
                continue
            dist = ep.dist.name if ep.dist else None
            version = ep.dist.version if ep.dist else None
            try:
                plugin = ep.load()
            except Exception as exc:  # noqa: BLE001 - a broken plugin must never take the host down
                msg = f"failed to load plugin {ep.name!r} (distribution {dist or '?'}): {type(exc).__name__}: {exc}"
                log.error(msg)
                registry.problems.append(msg)
                registry.plugins.append(PluginInfo(ep.name, dist, version, ep.value, error=str(exc)))
                continue
            add(ep.name, plugin, dist, version, ep.value)

    paths = _wanted(extra_module_paths) if isinstance(extra_module_paths, str) else set(extra_module_paths)
    for path in sorted(paths or ()):
        try:
            plugin = importlib.import_module(path)
        except Exception as exc:  # noqa: BLE001 - same isolation as entry points
            msg = f"failed to load plugin module {path!r}: {type(exc).__name__}: {exc}"
            log.error(msg)
            registry.problems.append(msg)
            registry.plugins.append(PluginInfo(path, None, None, path, error=str(exc)))
            continue
        add(path, plugin, None, None, path)

    for plugin in modules:
        name = getattr(plugin, "__name__", None) or type(plugin).__name__
        add(name, plugin, None, None, name)

    if wanted is not None:
        for missing in sorted(wanted - seen):
            registry.problems.append(f"plugin {missing!r} was asked for but is not installed")

    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        registry.problems.append(f"plugin hook error: {exc}")
        log.error("plugin hook error: %s", exc)

    _collect(pm, registry)
    return registry


def _collect(pm: pluggy.PluginManager, registry: Registry) -> None:
    def registrar(kind: str, target: dict[str, Any], check: type) -> Any:
        def register(obj: Any) -> None:
            name = getattr(obj, "name", None)
            if not isinstance(name, str) or not name:
                registry.problems.append(f"a {kind} without a name was offered: {obj!r}")
                return
            if not isinstance(obj, check):
                registry.problems.append(f"{kind} {name!r} does not implement {check.__name__}")
                return
            if name in target:
                registry.problems.append(f"{kind} {name!r} registered twice; keeping the first")
                return
            target[name] = obj

        return register

    # Call each plugin's hook on its own so a plugin that raises is reported, not fatal.
    for hook_name, kind, target, check in (
        ("apex_register_sources", "source", registry.sources, SourceConnector),
        ("apex_register_enrichers", "enricher", registry.enrichers, Enricher),
        ("apex_register_sinks", "sink", registry.sinks, Sink),
    ):
        hook = getattr(pm.hook, hook_name)
        for impl in hook.get_hookimpls():  # registration order
            before = set(target)
            try:
                impl.function(*[registrar(kind, target, check) for _ in impl.argnames])
            except Exception as exc:  # noqa: BLE001 - a plugin raising in its hook is reported, not fatal
                msg = f"plugin {impl.plugin_name!r} failed in {hook_name}: {type(exc).__name__}: {exc}"
                log.error(msg)
                registry.problems.append(msg)
                continue
            info = next((p for p in registry.plugins if p.name == impl.plugin_name), None)
            if info is not None:
                for name in set(target) - before:
                    registry._owners[(kind, name)] = info
