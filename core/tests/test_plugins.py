"""Plugin loading: entry points, isolation of broken plugins, selection, misspelled hooks."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from apex_platform import hookimpl
from apex_platform.plugins import build_registry
from apex_platform.testing.sinks import MemorySink


def _fake_dist(root: Path, dist: str, modules: dict[str, str], entry_points: dict[str, str]) -> None:
    """Write an installed distribution (dist-info + modules) that importlib.metadata finds."""
    for name, source in modules.items():
        (root / f"{name}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    eps = "[apex.plugins]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(eps)


GOOD_SINK = """
    import apex_platform
    from apex_platform.testing.sinks import MemorySink

    @apex_platform.hookimpl
    def apex_register_sinks(register):
        register(MemorySink("fake-good"))
"""


def test_broken_plugin_is_reported_and_the_rest_load(plugin_dir: Path) -> None:
    _fake_dist(plugin_dir, "apex-fake-good", {"apexfake_good": GOOD_SINK}, {"fakegood": "apexfake_good"})
    _fake_dist(
        plugin_dir,
        "apex-fake-broken",
        {"apexfake_broken": "raise ImportError('needs libfoo, which is not installed')\n"},
        {"fakebroken": "apexfake_broken"},
    )
    registry = build_registry(["fakegood", "fakebroken"])
    assert "fake-good" in registry.sinks
    broken = [p for p in registry.plugins if p.name == "fakebroken"]
    assert broken
    assert broken[0].error
    assert "libfoo" in broken[0].error
    assert any("fakebroken" in p and "apex-fake-broken" in p and "libfoo" in p for p in registry.problems)
    good = next(p for p in registry.plugins if p.name == "fakegood")
    assert (good.distribution, good.version) == ("apex-fake-good", "1.2.3")
    assert registry.owner_of("sink", "fake-good") == good


def test_plugin_that_raises_in_its_hook_is_isolated(plugin_dir: Path) -> None:
    bad = """
        import apex_platform

        @apex_platform.hookimpl
        def apex_register_sinks(register):
            raise RuntimeError("boom at registration")
    """
    _fake_dist(plugin_dir, "apex-fake-good", {"apexfake_good": GOOD_SINK}, {"fakegood": "apexfake_good"})
    _fake_dist(plugin_dir, "apex-fake-raiser", {"apexfake_raiser": bad}, {"fakeraiser": "apexfake_raiser"})
    registry = build_registry("fakegood,fakeraiser")
    assert list(registry.sinks) == ["fake-good"]
    assert any("fakeraiser" in p and "boom at registration" in p for p in registry.problems)


def test_misspelled_hook_is_reported(plugin_dir: Path) -> None:
    typo = """
        import apex_platform

        @apex_platform.hookimpl
        def apex_register_sink(register):
            pass
    """
    _fake_dist(plugin_dir, "apex-fake-typo", {"apexfake_typo": typo}, {"faketypo": "apexfake_typo"})
    registry = build_registry("faketypo")
    assert any("apex_register_sink" in p for p in registry.problems), registry.problems


def test_selection_filters_and_names_missing_plugins(plugin_dir: Path) -> None:
    _fake_dist(plugin_dir, "apex-fake-good", {"apexfake_good": GOOD_SINK}, {"fakegood": "apexfake_good"})
    registry = build_registry("nosuchplugin")
    assert registry.sinks == {}
    assert any("nosuchplugin" in p and "not installed" in p for p in registry.problems)
    assert "fake-good" in build_registry("all").sinks


def test_duplicates_and_invalid_objects_are_refused() -> None:
    class Plugin:
        @hookimpl
        def apex_register_sinks(self, register):  # type: ignore[no-untyped-def]
            register(MemorySink("twice"))
            register(MemorySink("twice"))
            register(object())

    registry = build_registry([], modules=[Plugin()], use_entry_points=False)
    assert list(registry.sinks) == ["twice"]
    assert any("registered twice" in p for p in registry.problems)
    assert any("without a name" in p for p in registry.problems)


def test_plugin_modules_by_import_path(plugin_dir: Path) -> None:
    (plugin_dir / "apexfake_bypath.py").write_text(textwrap.dedent(GOOD_SINK))
    registry = build_registry([], extra_module_paths="apexfake_bypath, apexfake_missing", use_entry_points=False)
    assert "fake-good" in registry.sinks
    assert any("apexfake_missing" in p for p in registry.problems)


def test_every_hook_is_documented() -> None:
    """Each hook spec says who calls it and when (datasette's rule), and docs/plugins.md
    documents it with its argument names."""
    from apex_platform import hookspecs

    docs = (Path(__file__).parents[2] / "docs" / "plugins.md").read_text()
    hooks = [n for n in dir(hookspecs) if n.startswith("apex_")]
    assert hooks == ["apex_register_enrichers", "apex_register_sinks", "apex_register_sources"]
    for name in hooks:
        fn = getattr(hookspecs, name)
        assert fn.__doc__
        assert "Called" in fn.__doc__
        assert f"{name}(register)" in docs


def test_embedding_dimensions_must_agree_between_enrichers_and_sinks() -> None:
    """`EmbeddingProducer.dimension` against `EmbeddingStore.embedding_dim` (capabilities)."""
    from apex_platform.errors import SettingsError
    from apex_platform.runtime import Runtime

    class Embedder:
        name = "embeddings"
        dimension = 384

        async def enrich(self, records):  # type: ignore[no-untyped-def]
            return list(records)

    class Plugin:
        @hookimpl
        def apex_register_enrichers(self, register):  # type: ignore[no-untyped-def]
            register(Embedder())

        @hookimpl
        def apex_register_sinks(self, register):  # type: ignore[no-untyped-def]
            sink = MemorySink("vectors")
            sink.embedding_dim = 768  # type: ignore[attr-defined]
            register(sink)

    runtime = Runtime.build([], modules=[Plugin()], use_entry_points=False)
    with pytest.raises(SettingsError, match=r"enricher embeddings \(APEX_EMBEDDINGS_DIM\) = 384.*768"):
        runtime.check_embedding_dimensions()
    runtime.registry.sinks["vectors"].embedding_dim = 384  # type: ignore[attr-defined]
    runtime.check_embedding_dimensions()
