"""Building the plugin manager and the registry of sources, enrichers and sinks.

Every plugin, built-in or third-party, goes the same path: an entry point in the
`apex.plugins` group (or an import path in `APEX_PLUGIN_MODULES`) is imported, its plugin
API range checked and it is registered with pluggy inside one ``try``, so that a plugin
that fails to import, supports another plugin API or does not match the hook specs
(`PluginValidationError`) is reported and skipped, never fatal. Hooks are then called
through pluggy itself, so `tryfirst`, `trylast` and wrappers work as pluggy documents;
a plugin that raises inside a hook is reported and that hook is called again without it.
"""

from __future__ import annotations

import importlib
import logging
import sys
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from types import CodeType, FrameType, ModuleType
from typing import Any

import pluggy
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from apex_platform import hookspecs
from apex_platform.contracts import Enricher, Sink, SourceConnector
from apex_platform.errors import PluginError
from apex_platform.hookspecs import PLUGIN_API_VERSION

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "apex.plugins"
PROJECT = "apex"
#: the module attribute in which a plugin declares the plugin API versions it supports
API_ATTRIBUTE = "apex_plugin_api"


@dataclass(frozen=True)
class PluginInfo:
    """One loaded (or failed) plugin, as `plugins list` shows it."""

    name: str
    distribution: str | None
    version: str | None
    module: str
    error: str | None = None
    #: the plugin API range the plugin declares (`apex_plugin_api`), None if it declares none
    api: str | None = None


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


#: name, how to load it, distribution, version, module path
_Candidate = tuple[str, Callable[[], object], str | None, str | None, str]


def _label(name: str, dist: str | None, version: str | None, module: str) -> str:
    where = f"distribution {dist} {version or ''}".rstrip() if dist else f"module {module}"
    return f"plugin {name!r} ({where})"


def check_plugin_api(plugin: object, label: str) -> str | None:
    """The plugin's declared API range, or `PluginError` naming both versions when this
    core's `PLUGIN_API_VERSION` is outside it. A plugin that declares nothing is taken
    as written for the current API."""
    declared = getattr(plugin, API_ATTRIBUTE, None)
    if declared is None:
        return None
    provided = f"apex-platform {_core_version()} provides plugin API {PLUGIN_API_VERSION}"
    try:
        spec = SpecifierSet(declared) if isinstance(declared, str) else None
    except InvalidSpecifier:
        spec = None
    if spec is None:
        raise PluginError(
            f"{label} declares {API_ATTRIBUTE} = {declared!r}, which is not a version range "
            f"such as '>=1,<2' ({provided})"
        )
    if not spec.contains(Version(PLUGIN_API_VERSION), prereleases=True):
        raise PluginError(
            f"{label} supports plugin API {declared}, but {provided}: install a release of the "
            f"plugin made for plugin API {PLUGIN_API_VERSION}, or an apex-platform it supports"
        )
    return str(declared)


def _core_version() -> str:
    from apex_platform import __version__

    return __version__


def _unknown_hooks(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    """Hook implementations of `plugin` that match no spec (pluggy's `check_pending`, for
    one plugin, so each misspelling is reported with its plugin)."""
    unknown = []
    for caller in pm.get_hookcallers(plugin) or []:
        if caller.has_spec():
            continue
        if any(impl.plugin is plugin and not impl.optionalhook for impl in caller.get_hookimpls()):
            unknown.append(caller.name)
    return sorted(unknown)


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
    hooks = sorted(n for n in dir(hookspecs) if n.startswith("apex_"))

    def admit(candidate: _Candidate) -> tuple[PluginInfo, list[str]]:
        """Import, check and register one plugin: all of it or none of it."""
        name, load, dist, version, module = candidate
        label = _label(name, dist, version, module)
        try:
            plugin = load()
            api = check_plugin_api(plugin, label)
            pm.register(plugin, name=name)
        except Exception as exc:  # noqa: BLE001 - a broken plugin must never take the host down
            if pm.has_plugin(name) and name not in seen:
                pm.unregister(name=name)
            msg = f"failed to load {label}: {type(exc).__name__}: {exc}"
            log.error(msg)
            return PluginInfo(name, dist, version, module, error=f"{type(exc).__name__}: {exc}"), [msg]
        seen.add(name)
        problems = []
        for hook in _unknown_hooks(pm, plugin):
            msg = f"{label} implements unknown hook {hook!r} (misspelled? the hooks are {', '.join(hooks)})"
            log.error(msg)
            problems.append(msg)
        return PluginInfo(name, dist, version, module, api=api), problems

    candidates: list[_Candidate] = []
    if use_entry_points:
        for ep in _entry_points():
            if wanted is not None and ep.name not in wanted:
                continue
            dist = ep.dist.name if ep.dist else None
            version = ep.dist.version if ep.dist else None
            candidates.append((ep.name, ep.load, dist, version, ep.value))

    paths = _wanted(extra_module_paths) if isinstance(extra_module_paths, str) else set(extra_module_paths)
    for path in sorted(paths or ()):
        candidates.append((path, lambda path=path: importlib.import_module(path), None, None, path))  # type: ignore[misc]

    for plugin in modules:
        name = getattr(plugin, "__name__", None) or type(plugin).__name__
        candidates.append((name, lambda plugin=plugin: plugin, None, None, name))  # type: ignore[misc]

    # pluggy calls the plugin registered last first: registering in reverse makes hooks run
    # in load order (the order enrichers run in, and the first to claim a name keeps it)
    outcomes: dict[int, tuple[PluginInfo, list[str]]] = {}
    first: dict[str, int] = {}
    for index, candidate in enumerate(candidates):
        name, _, dist, version, module = candidate
        if name in first:
            msg = f"{_label(name, dist, version, module)} not registered: the name is taken by an earlier plugin"
            outcomes[index] = (PluginInfo(name, dist, version, module, error=msg), [msg])
        else:
            first[name] = index
    for index in sorted(first.values(), reverse=True):
        outcomes[index] = admit(candidates[index])
    for index in range(len(candidates)):
        info, problems = outcomes[index]
        registry.plugins.append(info)
        registry.problems += problems

    if wanted is not None:
        for missing in sorted(wanted - seen):
            registry.problems.append(f"plugin {missing!r} was asked for but is not installed")

    _collect(pm, registry)
    return registry


def _code(function: object) -> CodeType | None:
    code = getattr(function, "__code__", None)
    return code if isinstance(code, CodeType) else None


#: code object of a hook implementation -> the plugins (name, object) whose implementation it is
_Codes = dict[CodeType, list[tuple[str, object]]]


def _codes(hook: pluggy.HookCaller) -> _Codes:
    codes: _Codes = {}
    for impl in hook.get_hookimpls():
        if (code := _code(impl.function)) is not None:
            codes.setdefault(code, []).append((impl.plugin_name, impl.plugin))
    return codes


def _innermost_plugin(frames: Iterable[FrameType], codes: _Codes) -> str | None:
    """The plugin whose hook implementation is the innermost of `frames` (outermost first).
    Instances of one class share their methods' code: `self` tells them apart; None when
    nothing does."""
    found = None
    for frame in frames:
        entries = codes.get(frame.f_code)
        if not entries:
            continue
        if len(entries) > 1:
            me = frame.f_locals.get("self")
            entries = [entry for entry in entries if entry[1] is me]
        found = entries[0][0] if len(entries) == 1 else None
    return found


def _call_hook(pm: pluggy.PluginManager, registry: Registry, hook_name: str) -> list[tuple[str | None, Any]]:
    """Call one hook through pluggy; what was registered, with the plugin that did it.

    pluggy stops a hook call at the first implementation that raises. That plugin is
    found in the traceback, reported, and the hook is called again without it (hooks only
    register, so calling again is harmless); whatever the failed call registered is
    dropped. When no implementation can be blamed (pluggy refused a wrapper that does not
    yield, say), each plugin's implementations are called on their own instead.
    """
    hook: pluggy.HookCaller = getattr(pm.hook, hook_name)
    codes = _codes(hook)
    excluded: set[object] = set()
    while True:
        offers = _Offers(codes)
        caller = pm.subset_hook_caller(hook_name, excluded) if excluded else hook
        try:
            caller(register=offers)
            return offers.offered
        except Exception as exc:  # noqa: BLE001 - a plugin raising in its hook is reported, not fatal
            frames = [frame for frame, _ in traceback.walk_tb(exc.__traceback__)]
            culprit = _innermost_plugin(frames, codes)
            if culprit is None or pm.get_plugin(culprit) in excluded:
                return _call_each(pm, registry, hook_name, excluded)
            _report_hook_failure(registry, culprit, hook_name, exc)
            excluded.add(pm.get_plugin(culprit))


class _Offers:
    """The `register` callback of one hook call: keeps each object with the plugin whose
    hook implementation is on the stack (the host stays in control of names and checks)."""

    def __init__(self, codes: _Codes, plugin: str | None = None) -> None:
        self.codes = codes
        self.plugin = plugin
        self.offered: list[tuple[str | None, Any]] = []

    def __call__(self, obj: Any) -> None:
        owner = self.plugin
        if owner is None:
            frames: list[FrameType] = []
            frame: FrameType | None = sys._getframe(1)
            while frame is not None:
                frames.append(frame)
                frame = frame.f_back
            owner = _innermost_plugin(reversed(frames), self.codes)
        self.offered.append((owner, obj))


def _call_each(
    pm: pluggy.PluginManager, registry: Registry, hook_name: str, excluded: set[object]
) -> list[tuple[str | None, Any]]:
    hook: pluggy.HookCaller = getattr(pm.hook, hook_name)
    plugins = {impl.plugin_name: impl.plugin for impl in reversed(hook.get_hookimpls())}  # call order
    offered: list[tuple[str | None, Any]] = []
    for name, plugin in plugins.items():
        if plugin in excluded:
            continue
        mine = _Offers({}, plugin=name)
        others = [p for p in plugins.values() if p is not plugin]
        try:
            pm.subset_hook_caller(hook_name, others)(register=mine)
        except Exception as exc:  # noqa: BLE001 - as above
            _report_hook_failure(registry, name, hook_name, exc)
            continue
        offered += mine.offered
    return offered


def _report_hook_failure(registry: Registry, plugin: str, hook_name: str, exc: Exception) -> None:
    msg = f"plugin {plugin!r} failed in {hook_name}: {type(exc).__name__}: {exc}"
    log.error(msg)
    registry.problems.append(msg)


def _collect(pm: pluggy.PluginManager, registry: Registry) -> None:
    kinds: list[tuple[str, str, dict[str, Any], type]] = [
        ("apex_register_sources", "source", registry.sources, SourceConnector),
        ("apex_register_enrichers", "enricher", registry.enrichers, Enricher),
        ("apex_register_sinks", "sink", registry.sinks, Sink),
    ]
    for hook_name, kind, target, check in kinds:
        for plugin_name, obj in _call_hook(pm, registry, hook_name):
            name = getattr(obj, "name", None)
            if not isinstance(name, str) or not name:
                registry.problems.append(f"a {kind} without a name was offered: {obj!r}")
                continue
            if not isinstance(obj, check):
                registry.problems.append(f"{kind} {name!r} does not implement {check.__name__}")
                continue
            if name in target:
                registry.problems.append(f"{kind} {name!r} registered twice; keeping the first")
                continue
            target[name] = obj
            info = next((p for p in registry.plugins if p.name == plugin_name), None)
            if info is not None:
                registry._owners[(kind, name)] = info
