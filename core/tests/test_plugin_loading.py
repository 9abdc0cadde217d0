"""Plugin loading keeps its promise: one isolation boundary per plugin (import, API check,
registration), hooks called through pluggy (wrappers, tryfirst, trylast), the plugin API
version checked at load."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import apex_platform
from apex_platform import PLUGIN_API_VERSION, hookimpl
from apex_platform.plugins import build_registry
from apex_platform.testing.sinks import MemorySink


def _fake_dist(root: Path, dist: str, module: str, source: str, entry_point: str) -> None:
    """An installed distribution (dist-info + one module) that importlib.metadata finds."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-2.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 2.0.1\n")
    (info / "entry_points.txt").write_text(f"[apex.plugins]\n{entry_point} = {module}\n")


GOOD = """
    import apex_platform
    from apex_platform.testing.sinks import MemorySink

    apex_plugin_api = ">=1,<2"

    @apex_platform.hookimpl
    def apex_register_sinks(register):
        register(MemorySink("good"))
"""


def test_an_argument_the_spec_lacks_is_reported_not_fatal(plugin_dir: Path) -> None:
    """pm.register raises PluginValidationError for such an implementation: it used to
    escape the loader (which caught only ValueError) and take the host down."""
    extra_arg = """
        import apex_platform
        from apex_platform.testing.sinks import MemorySink

        @apex_platform.hookimpl
        def apex_register_sinks(register, settings):
            register(MemorySink("never"))
    """
    _fake_dist(plugin_dir, "apex-load-good", "apexload_good", GOOD, "loadgood")
    _fake_dist(plugin_dir, "apex-load-extra", "apexload_extra", extra_arg, "loadextra")
    registry = build_registry("loadextra,loadgood")
    assert list(registry.sinks) == ["good"]
    problem = next(p for p in registry.problems if "loadextra" in p)
    assert "apex-load-extra 2.0.1" in problem
    assert "PluginValidationError" in problem
    assert "settings" in problem
    failed = next(p for p in registry.plugins if p.name == "loadextra")
    assert failed.error
    assert "PluginValidationError" in failed.error
    assert next(p for p in registry.plugins if p.name == "loadgood").error is None


def test_a_plugin_object_with_an_extra_argument_is_refused_too() -> None:
    class Extra:
        @hookimpl
        def apex_register_sources(self, register: Any, cursor: Any) -> None:
            raise AssertionError("never called")

    class Good:
        @hookimpl
        def apex_register_sinks(self, register: Any) -> None:
            register(MemorySink("kept"))

    registry = build_registry([], modules=[Extra(), Good()], use_entry_points=False)
    assert list(registry.sinks) == ["kept"]
    assert any("'Extra'" in p and "cursor" in p for p in registry.problems), registry.problems


def test_a_wrapper_wraps_every_plugin_of_the_hook() -> None:
    """wrapper=True used to register nothing (each impl.function was called directly)."""
    seen: list[str] = []

    class Wrapper:
        @hookimpl(wrapper=True)
        def apex_register_sinks(self, register: Any) -> Any:
            seen.append("before")
            register(MemorySink("from-wrapper"))
            result = yield
            seen.append("after")
            return result

    class Plain:
        @hookimpl
        def apex_register_sinks(self, register: Any) -> None:
            seen.append("plain")
            register(MemorySink("plain"))

    registry = build_registry([], modules=[Wrapper(), Plain()], use_entry_points=False)
    assert seen == ["before", "plain", "after"]
    assert list(registry.sinks) == ["from-wrapper", "plain"]
    assert registry.owner_of("sink", "from-wrapper").name == "Wrapper"  # type: ignore[union-attr]
    assert registry.owner_of("sink", "plain").name == "Plain"  # type: ignore[union-attr]
    assert registry.problems == []


def test_tryfirst_and_trylast_order_the_calls() -> None:
    """Registration order is load order, unless a plugin asks otherwise: the first to
    register a name keeps it, so the order decides who wins."""
    order: list[str] = []

    def plugin(label: str, *, tryfirst: bool = False, trylast: bool = False) -> object:
        class Plugin:
            __name__ = label

            @hookimpl(tryfirst=tryfirst, trylast=trylast)
            def apex_register_sinks(self, register: Any) -> None:
                order.append(label)
                register(MemorySink("contested"))

        return Plugin()

    registry = build_registry(
        [],
        modules=[plugin("last", trylast=True), plugin("plain"), plugin("first", tryfirst=True)],
        use_entry_points=False,
    )
    assert order == ["first", "plain", "last"]
    assert registry.owner_of("sink", "contested").name == "first"  # type: ignore[union-attr]
    assert sum("registered twice" in p for p in registry.problems) == 2


def test_a_raising_plugin_is_skipped_and_the_others_still_register() -> None:
    """pluggy stops a hook call at the first implementation that raises; the loader
    reports that plugin, drops what it registered and calls the hook again without it."""

    class Early:
        @hookimpl(tryfirst=True)
        def apex_register_sinks(self, register: Any) -> None:
            register(MemorySink("half-done"))
            raise RuntimeError("boom in the middle")

    class Late:
        @hookimpl(trylast=True)
        def apex_register_sinks(self, register: Any) -> None:
            register(MemorySink("late"))

    class Fine:
        @hookimpl
        def apex_register_sinks(self, register: Any) -> None:
            register(MemorySink("fine"))

    registry = build_registry([], modules=[Late(), Early(), Fine()], use_entry_points=False)
    assert sorted(registry.sinks) == ["fine", "late"]
    assert registry.problems == ["plugin 'Early' failed in apex_register_sinks: RuntimeError: boom in the middle"]


def test_a_wrapper_that_raises_is_blamed_not_its_neighbours() -> None:
    class Breaking:
        @hookimpl(wrapper=True)
        def apex_register_sources(self, register: Any) -> Any:
            yield
            raise ValueError("wrapper failed after the others")

    class Fine:
        @hookimpl
        def apex_register_sinks(self, register: Any) -> None:
            register(MemorySink("fine"))

        @hookimpl
        def apex_register_sources(self, register: Any) -> None:
            pass

    registry = build_registry([], modules=[Breaking(), Fine()], use_entry_points=False)
    assert list(registry.sinks) == ["fine"]
    assert registry.problems == [
        "plugin 'Breaking' failed in apex_register_sources: ValueError: wrapper failed after the others"
    ]


def test_a_wrapper_that_never_yields_is_reported() -> None:
    """pluggy itself raises here (no plugin frame to blame): each plugin is then called alone."""

    class NoYield:
        @hookimpl(wrapper=True)
        def apex_register_sinks(self, register: Any) -> Any:
            if False:  # pragma: no cover - a generator that returns before its yield
                yield
            return None

    class Fine:
        @hookimpl
        def apex_register_sinks(self, register: Any) -> None:
            register(MemorySink("fine"))

    registry = build_registry([], modules=[NoYield(), Fine()], use_entry_points=False)
    assert list(registry.sinks) == ["fine"]
    assert len(registry.problems) == 1
    assert registry.problems[0].startswith("plugin 'NoYield' failed in apex_register_sinks")


def test_the_plugin_api_version_is_checked_at_load(plugin_dir: Path) -> None:
    too_new = GOOD.replace('">=1,<2"', '">=2,<3"').replace("good", "future")
    garbled = GOOD.replace('">=1,<2"', '"version one"').replace("good", "garbled")
    _fake_dist(plugin_dir, "apex-load-good", "apexload_good", GOOD, "loadgood")
    _fake_dist(plugin_dir, "apex-load-future", "apexload_future", too_new, "loadfuture")
    _fake_dist(plugin_dir, "apex-load-garbled", "apexload_garbled", garbled, "loadgarbled")
    registry = build_registry("loadgood,loadfuture,loadgarbled")
    assert list(registry.sinks) == ["good"]
    assert next(p for p in registry.plugins if p.name == "loadgood").api == ">=1,<2"

    future = next(p for p in registry.problems if "loadfuture" in p)
    assert "apex-load-future 2.0.1" in future
    assert "supports plugin API >=2,<3" in future
    assert f"apex-platform {apex_platform.__version__} provides plugin API {PLUGIN_API_VERSION}" in future
    assert next(p for p in registry.plugins if p.name == "loadfuture").error

    assert any("loadgarbled" in p and "'version one'" in p and "not a version range" in p for p in registry.problems)


def test_a_plugin_that_declares_no_api_range_is_loaded() -> None:
    class Undeclared:
        @hookimpl
        def apex_register_sinks(self, register: Any) -> None:
            register(MemorySink("undeclared"))

    registry = build_registry([], modules=[Undeclared()], use_entry_points=False)
    assert list(registry.sinks) == ["undeclared"]
    assert registry.plugins[0].api is None


def test_every_first_party_plugin_declares_the_current_api() -> None:
    registry = build_registry("all")
    first_party = [p for p in registry.plugins if (p.distribution or "").startswith("apex-")]
    assert first_party, "the first-party plugins are installed in the test environment"
    for info in first_party:
        assert info.error is None, info
        assert info.api is not None, f"{info.distribution} ({info.module}) declares no apex_plugin_api"


def test_plugins_list_json_shows_the_api_and_the_problems(plugin_dir: Path) -> None:
    from apex_platform.api.controllers import plugins_document
    from apex_platform.runtime import Runtime

    too_new = GOOD.replace('">=1,<2"', '">=2"').replace("good", "future")
    _fake_dist(plugin_dir, "apex-load-good", "apexload_good", GOOD, "loadgood")
    _fake_dist(plugin_dir, "apex-load-future", "apexload_future", too_new, "loadfuture")
    doc = plugins_document(Runtime.build("loadgood,loadfuture"))
    plugins = {p["name"]: p for p in doc["plugins"]}
    assert plugins["loadgood"]["api"] == ">=1,<2"
    assert set(plugins["loadgood"]) >= {"name", "distribution", "version", "module", "error"}
    assert any("loadfuture" in p and "plugin API" in p for p in doc["problems"])


def test_plain_implementations_run_in_load_order(plugin_dir: Path) -> None:
    """pluggy calls the last registered plugin first; the loader registers in reverse so
    that hooks run in load order (sorted entry-point names, then import paths, then
    explicit modules), which is the order enrichers run in and who keeps a contested name."""
    for name in ("b", "a", "c"):
        source = f"""
            import apex_platform
            from apex_platform.testing.sinks import MemorySink

            @apex_platform.hookimpl
            def apex_register_sinks(register):
                register(MemorySink("{name}"))
                register(MemorySink("contested"))
        """
        _fake_dist(plugin_dir, f"apex-load-{name}", f"apexload_order_{name}", source, f"order{name}")

    class Explicit:
        @hookimpl
        def apex_register_sinks(self, register: Any) -> None:
            register(MemorySink("explicit"))

    registry = build_registry("orderb,ordera,orderc", modules=[Explicit()])
    assert list(registry.sinks) == ["a", "contested", "b", "c", "explicit"]
    assert registry.owner_of("sink", "contested").name == "ordera"  # type: ignore[union-attr]
    assert [p.name for p in registry.plugins] == ["ordera", "orderb", "orderc", "Explicit"]


def test_instances_of_one_class_are_told_apart() -> None:
    """Two plugin objects of one class share their hook's code: ownership and blame follow
    the instance, not the code."""

    class Configurable:
        def __init__(self, label: str, fail: bool = False) -> None:
            self.__name__ = label
            self.fail = fail

        @hookimpl
        def apex_register_sinks(self, register: Any) -> None:
            register(MemorySink(f"sink-{self.__name__}"))
            if self.fail:
                raise RuntimeError(f"{self.__name__} broke")

    registry = build_registry(
        [], modules=[Configurable("one"), Configurable("two", fail=True), Configurable("three")], use_entry_points=False
    )
    assert list(registry.sinks) == ["sink-one", "sink-three"]
    assert registry.owner_of("sink", "sink-one").name == "one"  # type: ignore[union-attr]
    assert registry.owner_of("sink", "sink-three").name == "three"  # type: ignore[union-attr]
    assert registry.problems == ["plugin 'two' failed in apex_register_sinks: RuntimeError: two broke"]
