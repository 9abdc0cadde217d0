"""Which synonym a combined field reads does not depend on the process's hash seed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from apex_enricher_entities.attributes import FIRST_NAME_FIELDS, STATE_FIELDS, FieldNames

SCRIPT = """
import json, sys
from apex_platform.models import Record
from apex_enricher_entities.enricher import EntityEnricher
from datetime import UTC, datetime
record = Record(
    source="crm", id="c-1", kind="contact", version=1, occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
    attributes=json.loads(sys.argv[1]),
)
out = EntityEnricher().enrich_one(record)
print(json.dumps(sorted(e.key for e in out.entities if e.type == 'Person')))
"""

ATTRIBUTES = {
    "contact": {
        "given_name": "Anna",
        "first_name": "Ann",
        "surname": "Garcia",
        "last_name": "Lopez",
        "email": "ann@example.com",
    }
}


def test_field_names_iterate_in_declared_order() -> None:
    assert list(FIRST_NAME_FIELDS) == ["firstname", "givenname"]
    assert next(iter(STATE_FIELDS)) == "state"
    names = FieldNames(("b", "a", "c", "a"))
    assert list(names) == ["b", "a", "c"]
    assert "a" in names
    assert len(names) == 3


def test_the_same_person_under_every_hash_seed() -> None:
    seen = set()
    for seed in range(8):
        env = {**os.environ, "PYTHONHASHSEED": str(seed)}
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, json.dumps(ATTRIBUTES)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        seen.add(done.stdout.strip())
    assert len(seen) == 1, seen
    assert "Ann Lopez" in next(iter(seen)), seen
