"""The README's command table is generated from the Typer app (apex_platform.cli_docs)
and fails here when it is stale, naming the command that rewrites it."""

from __future__ import annotations

from pathlib import Path

import typer

from apex_platform import cli_docs

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_command_table_is_generated_from_the_cli() -> None:
    behind = cli_docs.stale(README)
    assert not behind, f"README.md's command table is stale ({', '.join(behind)}): run `{cli_docs.REWRITE}`"


def test_every_command_of_the_app_has_a_row() -> None:
    text = README.read_text(encoding="utf-8")
    table = text[text.index(cli_docs.BEGIN) : text.index(cli_docs.END)]
    names = [d.name for d in cli_docs.commands()]
    assert {"plugins list", "worker", "sources start", "dlq replay", "inbox gc", "version"} <= set(names)
    for doc in cli_docs.commands():
        assert f"`{cli_docs._cell(doc.usage)}`" in table, doc.name


def test_a_new_or_changed_command_makes_the_table_stale(tmp_path: Path) -> None:
    """The check can fail: an app with one more command than the README names it."""
    from apex_platform.cli import app

    extra = typer.Typer()
    extra.registered_commands = list(app.registered_commands)
    extra.registered_groups = list(app.registered_groups)

    @extra.command("frobnicate")
    def frobnicate(as_json: bool = typer.Option(False, "--json", help="JSON")) -> None:
        """Frobnicate everything."""

    readme = tmp_path / "README.md"
    readme.write_text(README.read_text(encoding="utf-8"), encoding="utf-8")
    assert cli_docs.stale(readme, extra) == ["frobnicate"]
    assert cli_docs.main(["--check", str(readme)]) == 0  # the real app: up to date

    readme.write_text(readme.read_text().replace("Dead letters, oldest first.", "Dead letters."), encoding="utf-8")
    assert cli_docs.stale(readme) == ["dlq list"]
    assert cli_docs.main(["--check", str(readme)]) == 1
    assert cli_docs.main([str(readme)]) == 0  # rewrites it
    assert cli_docs.stale(readme) == []
    assert readme.read_text(encoding="utf-8") == README.read_text(encoding="utf-8")


def test_usage_lines_name_arguments_and_options() -> None:
    docs = {d.name: d for d in cli_docs.commands()}
    assert docs["sources start"].usage == (
        "apex-platform sources start NAME [--account ID] [--plugins all|a,b] [--json]"
    )
    assert docs["dlq replay"].usage.startswith("apex-platform dlq replay [LETTER_ID] [--all]")
    assert "PATHS..." in docs["ingest"].usage
