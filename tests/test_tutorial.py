"""docs/writing-a-connector.md cannot rot: its commands are run, in order, in a fresh folder,
and the files it asks the reader to write are written, exactly as a reader would.

The tutorial marks each block with an HTML comment on the line before it:

- `<!-- tutorial: run; expect "TEXT" -->`: a shell block, run with bash in the folder the
  previous block ended in (so `cd` carries over); it must exit 0 and print TEXT if given;
- `<!-- tutorial: file PATH -->`: the block is the whole content of PATH (relative to that
  folder); the test writes it, and it must equal the finished example,
  examples/apex-connector-weather/PATH (`APEX_UPDATE_TUTORIAL=1` rewrites the blocks from it);
- `<!-- tutorial: not-run; why "REASON"; check "COMMAND" -->`: a shell block the test does not
  run (a server that runs until stopped, an upload); REASON says why, and COMMAND (a
  `--help`) must succeed, so the commands at least exist and parse.

Every ```bash block carries a mark. The reader's virtual environment is a venv the test
makes on top of the test environment (a `sitecustomize` adds its site-packages), so
`pip install -e .` goes into that venv and never into .nox/tests; what the environment
lacks (twine, the build backend) pip fetches as it would for the reader.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "writing-a-connector.md"
EXAMPLE = ROOT / "examples" / "apex-connector-weather"
TEST_BIN = Path(sys.executable).parent

_MARK = re.compile(r"^<!-- tutorial: (run|not-run|file)(.*?)-->\s*$")
_OPTION = re.compile(r'(\w+) "([^"]*)"')
_FENCE = re.compile(r"^(```+)(\w*)\s*$")

pytestmark = pytest.mark.timeout(900)


@dataclass(frozen=True)
class Block:
    """One fenced block of the tutorial and its mark (None: unmarked)."""

    line: int  # 1-based line of the opening fence
    language: str
    text: str
    mark: str | None
    argument: str = ""  # the path of a file block
    expect: str = ""
    why: str = ""
    check: str = ""

    @property
    def where(self) -> str:
        return f"{TUTORIAL.name}:{self.line}"


def blocks(source: str | None = None) -> list[Block]:
    lines = (TUTORIAL.read_text() if source is None else source).splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        start, ticks = i, fence.group(1)
        i += 1
        while i < len(lines) and lines[i] != ticks:
            i += 1
        text = "\n".join(lines[start + 1 : i]) + ("\n" if i > start + 1 else "")
        mark = _MARK.match(lines[start - 1]) if start else None
        if mark is None:
            found.append(Block(start + 1, fence.group(2), text, None))
        else:
            kind, rest = mark.group(1), mark.group(2)
            options = dict(_OPTION.findall(rest))
            argument = rest.strip() if kind == "file" else ""
            found.append(
                Block(
                    start + 1,
                    fence.group(2),
                    text,
                    kind,
                    argument,
                    options.get("expect", ""),
                    options.get("why", ""),
                    options.get("check", ""),
                )
            )
        i += 1
    return found


def test_every_shell_block_is_marked() -> None:
    """A command the reader is told to run is either run by this test or says why not."""
    unmarked = [b.where for b in blocks() if b.language in ("bash", "console", "sh", "shell") and b.mark is None]
    assert not unmarked, f"shell blocks without a <!-- tutorial: run|not-run --> mark: {unmarked}"
    marked = [b for b in blocks() if b.mark]
    assert all(b.language == "bash" for b in marked if b.mark != "file"), "run and not-run blocks are ```bash"
    assert len([b for b in marked if b.mark == "run"]) >= 8


def test_links_lead_somewhere() -> None:
    """Every relative link of the tutorial names a file or folder of the repository."""
    links = re.findall(r"\]\(([^)#\s]+)\)", TUTORIAL.read_text())
    relative = [link for link in links if "://" not in link]
    assert relative, "the tutorial links to nothing in the repository"
    missing = [link for link in relative if not (TUTORIAL.parent / link).exists()]
    assert not missing, f"{TUTORIAL.name} links to what does not exist: {missing}"


def test_file_blocks_are_the_finished_example() -> None:
    """What the tutorial asks the reader to write is what examples/apex-connector-weather holds,
    so the tutorial ends where the example is, and the example is tested as the tutorial's end."""
    source = TUTORIAL.read_text()
    files = [b for b in blocks(source) if b.mark == "file"]
    assert files, "the tutorial writes no file"
    if os.environ.get("APEX_UPDATE_TUTORIAL") == "1":
        TUTORIAL.write_text(_with_example_files(source))
        files = [b for b in blocks() if b.mark == "file"]
    stale = [f"{b.where} ({b.argument})" for b in files if (EXAMPLE / b.argument).read_text() != b.text]
    assert not stale, (
        f"these file blocks differ from examples/apex-connector-weather: {stale}; "
        "rewrite them from the example with APEX_UPDATE_TUTORIAL=1 pytest tests/test_tutorial.py"
    )
    written = {b.argument for b in files}
    for required in ("src/apex_connector_weather/connector.py", "src/apex_connector_weather/records.py"):
        assert required in written


def test_the_example_is_where_the_tutorial_ends() -> None:
    """examples/apex-connector-weather is exactly what a reader has at the end: what
    `apex-platform new connector weather --mode poll` generates, less what the tutorial
    removes, with the files it writes. A change of the templates that the tutorial does not
    follow fails here, naming the files."""
    from apex_platform.scaffold import Mode, render

    steps = blocks()
    removed = {
        arg
        for b in steps
        if b.mark == "run"
        for line in b.text.splitlines()
        if line.startswith("rm ")
        for arg in shlex.split(line)[1:]
        if not arg.startswith("-")
    }
    expected = {path: text for path, text in render("connector", "weather", Mode.poll).items() if path not in removed}
    expected.update({b.argument: b.text for b in steps if b.mark == "file"})
    skip = ("__pycache__", ".pytest_cache", ".egg-info", "dist", "build")
    actual = {
        str(path.relative_to(EXAMPLE)): path.read_text()
        for path in EXAMPLE.rglob("*")
        if path.is_file()
        and not any(part.endswith(skip) or part.startswith(".") for part in path.relative_to(EXAMPLE).parts)
    }
    assert sorted(actual) == sorted(expected), (
        f"only in the example: {sorted(set(actual) - set(expected))}; "
        f"only at the tutorial's end: {sorted(set(expected) - set(actual))}"
    )
    differ = sorted(path for path in expected if actual[path] != expected[path])
    assert not differ, f"the example and the tutorial's end differ in {differ}"


def _with_example_files(source: str) -> str:
    lines = source.splitlines(keepends=True)
    for block in reversed([b for b in blocks(source) if b.mark == "file"]):
        start = block.line  # index of the first content line
        end = start + len(block.text.splitlines())
        lines[start:end] = [(EXAMPLE / block.argument).read_text()]
    return "".join(lines)


# -- the reader's environment ------------------------------------------------------------


@dataclass(frozen=True)
class Reader:
    """A virtual environment on top of the test environment, and the environment variables
    a shell in it has (its bin first on PATH, no APEX_ setting of the developer's)."""

    venv: Path
    env: dict[str, str]

    def shell(self, script: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory) -> Reader:
    venv = tmp_path_factory.mktemp("reader") / ".venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
    site = Path(
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    # the test environment's packages (apex-platform editable among them) after the venv's own
    (site / "sitecustomize.py").write_text(f"import site\nsite.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    for tool in ("apex-platform", "pytest"):
        # their console scripts live in the test environment; run them with the venv's python
        shim = venv / "bin" / tool
        shim.write_text(f'#!/bin/sh\nexec "{venv / "bin" / "python"}" "{TEST_BIN / tool}" "$@"\n')
        shim.chmod(0o755)
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if Path(p) != TEST_BIN]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APEX_", "PYTEST_")) and k != "PYTHONPATH"}
    env.update(
        PATH=os.pathsep.join([str(venv / "bin"), *path]),
        VIRTUAL_ENV=str(venv),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
    )
    return Reader(venv, env)


def test_the_reader_environment_is_not_the_test_environment(reader: Reader, tmp_path: Path) -> None:
    done = reader.shell('python -c "import sys; print(sys.prefix)"; command -v pip', tmp_path)
    assert done.returncode == 0, done.stderr
    prefix, pip = done.stdout.split()
    assert Path(prefix) == reader.venv
    assert Path(pip).parent == reader.venv / "bin"


# -- the commands ------------------------------------------------------------------------

#: what a failure of the tutorial most likely means, by what its output says
_MISSING = {
    "No such command 'new'": "`apex-platform new` is missing (core/src/apex_platform/scaffold.py, engineer C's part)",
    "unrecognized arguments: --apex-conformance": (
        "`pytest --apex-conformance NAME` is missing (core/src/apex_platform/testing/conformance_plugin.py, "
        "engineer D's part)"
    ),
}


def _not_run() -> list[Block]:
    return [b for b in blocks() if b.mark == "not-run"]


@pytest.mark.parametrize("block", _not_run(), ids=lambda b: b.check or b.where)
def test_commands_not_run_say_why_and_exist(block: Block, reader: Reader, tmp_path: Path) -> None:
    """Each command the test does not run names its reason, and its `--help` works."""
    assert block.why, f'{block.where}: a not-run block needs why "..."'
    assert block.check, f'{block.where}: a not-run block needs check "... --help"'
    program = block.check.split()[0]
    assert any(program in line for line in block.text.splitlines()), f"{block.where}: check another command"
    print(f"not run ({block.where}): {block.text.strip()!r}\n  why: {block.why}\n  checked: {block.check}")
    if program == "twine":  # the reader installs it in the tutorial; here it may not be yet
        installed = reader.shell("pip install --quiet twine", tmp_path)
        assert installed.returncode == 0, installed.stderr[-2000:]
    done = reader.shell(block.check, tmp_path)
    assert done.returncode == 0, f"{block.where}: {block.check} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"


def test_the_tutorial_runs_from_start_to_finish(reader: Reader, tmp_path: Path) -> None:
    """Every run block in order (each in the folder the last one ended in) and every file
    block written where the reader is; each command exits 0 and prints what is expected."""
    cwd = tmp_path
    state = tmp_path / ".cwd"
    steps = [b for b in blocks() if b.mark in ("run", "file")]
    for block in steps:
        if block.mark == "file":
            target = cwd / block.argument
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.text)
            continue
        started = time.monotonic()
        done = reader.shell(f"{block.text}\npwd > {shlex.quote(str(state))}\n", cwd)
        print(f"{block.where}: {block.text.strip()!r} exited {done.returncode} ({time.monotonic() - started:.1f} s)")
        output = done.stdout + done.stderr
        if done.returncode != 0:
            hints = [hint for needle, hint in _MISSING.items() if needle in output]
            pytest.fail(
                f"{block.where}: {block.text.strip()!r} exited {done.returncode}"
                + (f" — {'; '.join(hints)}" if hints else "")
                + f"\n--- output (end) ---\n{output[-6000:]}",
                pytrace=False,
            )
        assert block.expect in output, (
            f"{block.where}: {block.text.strip()!r} did not print {block.expect!r}:\n{output[-4000:]}"
        )
        cwd = Path(state.read_text().strip())
    project = tmp_path / "apex-connector-weather"
    assert (project / "dist" / "apex_connector_weather-0.1.0-py3-none-any.whl").is_file()
    assert not (project / "src" / "apex_connector_weather" / "client.py").exists()
