"""The Cypher the sink runs, the same text for FalkorDB and Neo4j.

Only labels, relationship types, the neighbour depth and fixed numbers are written into
the text (Cypher cannot take them as parameters); each name is validated and
backtick-quoted by `properties.quote_name`. Every value travels as a parameter.

A write is a sequence of statements (see `sink.GraphSink.write`):

1. CLAIM, per chunk of records: the version rule decides, inside the statement, which
   records win; a winning record node is rewritten, marked `pending` with this
   write's `stamp` and the writer's tokens (`changed_by`, `touched_by`), keeps what it
   held before in `prev` (returned: the write's `Previous`) and the entities it lets go
   in `dirty`, and loses its MENTIONS edges and the relations it asserted. TOUCH: a
   node already holding the identical record or a newer one only gets `touched_by` (with a writer).
2. MENTION, per entity label: entity nodes merged by key, MENTIONS edges created; an
   edge carries the properties its record asserts and the record's assertion stamp `_at`.
3. ASSERT, per entity label, one row per entity: each property is set, with its hidden
   companion `_at_<name>`, only where this write's stamp is >= the companion's.
4. RELATE, per (source label, type, target label): one relationship per assertion.
5. COLLECT, per label: entity nodes left with no relationship at all are deleted.
6. OWNED, per label: the properties of released entities whose owner (by the uid in
   the companion) was a record of this write and no longer asserts them as stored.
7. REFRESH, per label: those properties are recomputed from the remaining MENTIONS
   edges (newest stamp wins; none: the property is removed), compare-and-set.
8. FINISH: `pending`, `prev` and `dirty` cleared (PURGE's nodes deleted).

Steps 2, 3 and 8 act only on record nodes that still carry this write's stamp, so a
newer write that claimed the record in between is never overwritten by a slower,
older one. A write that stops half-way leaves `pending = true`, which lets the same
write (a retry) claim the record again although its version and content are equal,
with the same `prev` (the write's stamp or writer token matches) and the `dirty`
entities still to clean up.

Three FalkorDB behaviours (4.16) shape the text:

- An update clause applies its changes after reading all its rows, so one statement
  never holds two rows that set the same entity (ASSERT and REFRESH have one row per
  entity).
- One update clause that removes two or more properties (sets them to null) removes
  the wrong ones, so every clause here removes at most one property: removals are
  separated by `WITH`, or applied one single-property map at a time in a FOREACH.
- A `WITH ... WHERE` after an update clause (SET, FOREACH, even across an aggregation)
  is moved before it, so the update only reaches the rows that pass the filter. No
  statement here filters after an update (but CLAIM right after the MERGE that binds
  its node, which the filter cannot move before): ASSERT and REFRESH return every row
  (the sink picks), and the identical record's `touched_by` is its own statement (TOUCH).

On Neo4j, every write runs in one transaction; `SET e.key = row.key` takes the entity
node's write lock before its companions are compared.
"""

from __future__ import annotations

from typing import Literal

from apex_sink_graph.plan import COMPANION_PREFIX, EDGE_STAMP, STAMP_UID_OFFSET
from apex_sink_graph.properties import MENTIONS, RECORD_LABEL, check_name, quote_name

_R = f"`{RECORD_LABEL}`"
_M = f"`{MENTIONS}`"
_AT = f"`{EDGE_STAMP}`"

#: How CLAIM and PURGE pick their record nodes: a write (the version rule), a restore
#: without writer (every key, versions ignored), a fenced restore (only nodes whose
#: `changed_by` and `touched_by` are `$fence`), an undo of this sink's own half-made
#: write of one record (only nodes still pending with the write stamp `$fence`).
Mode = Literal["write", "force", "fenced", "undo"]

#: What a record node holds, and what CLAIM sets from each row.
RECORD_FIELDS = (
    "source",
    "id",
    "kind",
    "version",
    "deleted",
    "title",
    "occurred_at",
    "content_hash",
    "record_json",
)
#: Never null in a claim row, so set in one clause (`record_json` is null for tombstones).
_NON_NULL_FIELDS = tuple(name for name in RECORD_FIELDS if name != "record_json")

_WINS = """(
       r.version IS NULL
    OR r.version < row.version
    OR (r.version = row.version AND (
           (NOT coalesce(r.deleted, false) AND (
                row.deleted
             OR coalesce(r.content_hash, '') <> row.content_hash
             OR coalesce(r.record_json, '') <> coalesce(row.record_json, '')))
        OR (coalesce(r.pending, false) AND r.deleted = row.deleted))))"""

#: What the node held before this write, as strings: [state, kind, occurred_at, version,
#: record_json, content_hash], state "absent" (no node, or a half-made node with no
#: record_json that is not a tombstone), "tombstone" or "live". A node still pending
#: from this very write (a retry: same stamp or writer) keeps the `prev` it had.
_PREVIOUS = """CASE WHEN coalesce(r.pending, false) AND r.prev IS NOT NULL
                    AND (r.stamp = $stamp OR r.changed_by = $writer) THEN r.prev
     ELSE [CASE WHEN r.version IS NULL THEN 'absent'
                WHEN coalesce(r.deleted, false) THEN 'tombstone'
                WHEN r.record_json IS NULL THEN 'absent'
                ELSE 'live' END,
           coalesce(r.kind, ''), coalesce(r.occurred_at, ''), coalesce(toString(r.version), ''),
           coalesce(r.record_json, ''), coalesce(r.content_hash, '')] END"""

#: Entities a pending node still has to clean up (from a write that stopped half-way).
_DIRTY = "CASE WHEN coalesce(r.pending, false) THEN coalesce(r.dirty, []) ELSE [] END"

#: Relations asserted by `r` start at a node `r` MENTIONS (both ends of every asserted
#: relation are mentioned), so they are found by walking out of the record. The
#: entities it lets go are added to `r.dirty` ("Label:key"), returned as `released`.
_DROP_ASSERTIONS = f"""
OPTIONAL MATCH (r)-[:{_M}]->()-[asserted]->()
WHERE asserted.source_uid = r.uid
WITH r, collect(DISTINCT asserted) AS assertions
FOREACH (a IN assertions | DELETE a)
WITH r
OPTIONAL MATCH (r)-[m:{_M}]->(e)
WITH r, collect(m) AS mentions, collect(DISTINCT e) AS entities
FOREACH (m IN mentions | DELETE m)
SET r.dirty = r.dirty + [n IN entities | labels(n)[0] + ':' + n.key]"""

_FENCES = {
    "fenced": "r.changed_by = $fence AND r.touched_by = $fence",
    "undo": "r.stamp = $fence AND coalesce(r.pending, false)",
}


def claim(mode: Mode) -> str:
    """Rewrite the winning record nodes of `$rows` (see `Mode`) and drop their assertions.

    Parameters: `rows`, `stamp`, `writer` (the token set on winners, null for a restore),
    `fence`. Returns, per winner: `uid`, `previous` (see `_PREVIOUS`), `released`."""
    if mode == "write":
        head = f"""UNWIND $rows AS row
MERGE (r:{_R} {{uid: row.uid}})
WITH r, row
WHERE {_WINS}"""
    elif mode == "force":
        head = f"""UNWIND $rows AS row
MERGE (r:{_R} {{uid: row.uid}})
WITH r, row"""
    else:
        head = f"""UNWIND $rows AS row
MATCH (r:{_R} {{uid: row.uid}})
WHERE {_FENCES[mode]}
WITH r, row"""
    fields = ", ".join(f"r.{name} = row.{name}" for name in _NON_NULL_FIELDS)
    return f"""{head}
WITH r, row, {_PREVIOUS} AS previous, {_DIRTY} AS dirty
SET {fields}, r.stamp = $stamp, r.pending = true, r.prev = previous, r.dirty = dirty
WITH r, row SET r.record_json = row.record_json
WITH r SET r.changed_by = $writer
WITH r SET r.touched_by = $writer
WITH r{_DROP_ASSERTIONS}
RETURN r.uid AS uid, r.prev AS previous, r.dirty AS released"""


def purge(mode: Mode) -> str:
    """Empty the record nodes `$uids` (to be deleted by FINISH_PURGE): assertions and
    MENTIONS dropped, content cleared; a node left like this (a purge that stopped
    half-way) reads as absent and loses to any write. Returns `uid`, `released`."""
    where = f"\nWHERE {_FENCES[mode]}" if mode in _FENCES else ""
    return f"""UNWIND $uids AS uid
MATCH (r:{_R} {{uid: uid}}){where}
WITH r, {_DIRTY} AS dirty
SET r.stamp = $stamp, r.pending = true, r.deleted = false, r.title = '', r.dirty = dirty
WITH r SET r.record_json = null
WITH r SET r.version = null
WITH r{_DROP_ASSERTIONS}
RETURN r.uid AS uid, r.dirty AS released"""


#: A write's rows that did not win (the graph holds them identically, or a newer
#: version): only `touched_by` changes — the write still counts as a writer of the key,
#: so an earlier writer's undo leaves it alone (see apex_platform.contracts.Sink).
#: Run after CLAIM (a node CLAIM just took is pending: it wins).
TOUCH = f"""UNWIND $rows AS row
MATCH (r:{_R} {{uid: row.uid}})
WHERE NOT {_WINS}
SET r.touched_by = $writer"""

FINISH = f"""UNWIND $uids AS uid
MATCH (r:{_R} {{uid: uid}})
WHERE r.stamp = $stamp
SET r.pending = false
WITH r SET r.prev = null
WITH r SET r.dirty = null"""

FINISH_PURGE = f"""UNWIND $uids AS uid
MATCH (r:{_R} {{uid: uid}})
WHERE r.stamp = $stamp
DETACH DELETE r"""

READ = f"""UNWIND $uids AS uid
MATCH (r:{_R} {{uid: uid}})
RETURN r.uid AS uid, r.source AS source, r.id AS id, r.kind AS kind, r.version AS version,
       r.deleted AS deleted, r.occurred_at AS occurred_at, r.record_json AS record_json,
       r.content_hash AS content_hash"""


def mention(label: str) -> str:
    """Merge entity nodes of one label and link each to the record that mentions it;
    the edge gets `row.edge`: `implicit`, `_at` and the properties the record asserts."""
    return f"""UNWIND $rows AS row
MATCH (r:{_R} {{uid: row.uid}})
WHERE r.stamp = $stamp
MERGE (e:{quote_name(label)} {{key: row.key}})
MERGE (r)-[m:{_M}]->(e)
SET m += row.edge"""


def assert_properties(label: str) -> str:
    """Set the properties this write asserts on entities of one label, one row per entity.

    A row: `key`, `names`, `props` (each name with its value and `_at_<name>` with the
    stamp of the record that asserts it), `uids` (those records). It is applied whole
    only if every record in `uids` still carries this write's stamp and no stored
    companion is newer than the row's; otherwise nothing is set and the row comes back
    with the `lost` uids and the `older` names, to be sent again without them (every
    row comes back; those with both lists empty were applied)."""
    entity = quote_name(label)
    return f"""UNWIND $rows AS row
UNWIND row.uids AS u
OPTIONAL MATCH (r:{_R} {{uid: u}})
WITH row, collect(CASE WHEN r.stamp = $stamp THEN u END) AS ours
MATCH (e:{entity} {{key: row.key}})
SET e.key = row.key
WITH e, row, [u IN row.uids WHERE NOT u IN ours] AS lost,
     [k IN row.names WHERE coalesce(e['{COMPANION_PREFIX}' + k], '') > row.props['{COMPANION_PREFIX}' + k]] AS older
FOREACH (x IN CASE WHEN size(lost) = 0 AND size(older) = 0 THEN [1] ELSE [] END | SET e += row.props)
RETURN row.key AS key, lost, older"""


def suffix(text: str, start: int) -> str:
    """Cypher for `text` from character `start` to its end, with the length explicit:
    FalkorDB's two-argument substring() now and then cuts a trailing multi-byte
    character short (seen on names read by keys(), e.g. U+FFFD in sanitised names, and
    on stamp values, e.g. a uid ending in "ü"), so no statement here uses that form."""
    return f"substring({text}, {start}, size({text}) - {start})"


#: The property a companion name `k` (`_at_<name>`) is for.
_OWNER_OF = suffix("k", len(COMPANION_PREFIX))


def owned(label: str) -> str:
    """For rows (`key`, `uid`): the properties of the entity whose companion names record
    `uid` as owner but which that record's MENTIONS edge does not assert with that stamp
    and value (any more): they need a REFRESH. Reads only the one edge, not all mentions."""
    return f"""UNWIND $rows AS row
MATCH (e:{quote_name(label)} {{key: row.key}})
OPTIONAL MATCH (:{_R} {{uid: row.uid}})-[m:{_M}]->(e)
WITH row, e, m
WITH row, [k IN keys(e) WHERE k STARTS WITH '{COMPANION_PREFIX}'
                            AND {suffix("e[k]", STAMP_UID_OFFSET)} = row.uid
                            AND (m IS NULL OR m.{_AT} <> e[k]
                                 OR NOT coalesce(m[{_OWNER_OF}] = e[{_OWNER_OF}], false))
           | {_OWNER_OF}] AS stale
WHERE size(stale) > 0
RETURN row.key AS key, stale"""


def refresh(label: str) -> str:
    """Recompute entity properties from the MENTIONS edges, compare-and-set, one row per entity.

    A row: `key`, `names`, `expect`, `sets`. For each name the statement finds the edge
    with the newest `_at` that asserts it and returns `seen`: per name
    `<content_hash of its record>|<_at>`, or '' when no edge asserts it. Only when
    `seen` equals `expect` are `sets` applied (single-property maps: value and
    companion, or nulls to remove both); every row comes back with `applied` and `seen`.
    Scans the entity's MENTIONS edges: it runs only for properties whose owner left."""
    entity = quote_name(label)
    return f"""UNWIND $rows AS row
MATCH (e:{entity} {{key: row.key}})
SET e.key = row.key
WITH e, row
OPTIONAL MATCH (e)<-[m:{_M}]-()
WITH e, row, collect(m) AS ms
WITH e, row, [k IN row.names | reduce(best = null, m IN ms |
         CASE WHEN m[k] IS NOT NULL AND (best IS NULL OR m.{_AT} > best.{_AT}) THEN m ELSE best END)] AS winners
WITH e, row, [w IN winners | CASE WHEN w IS NULL THEN '' ELSE startNode(w).content_hash + '|' + w.{_AT} END] AS seen
FOREACH (x IN CASE WHEN seen = row.expect THEN [1] ELSE [] END | FOREACH (p IN row.sets | SET e += p))
RETURN row.key AS key, seen = row.expect AS applied, seen"""


def relate(src_label: str, rel_type: str, dst_label: str) -> str:
    """One relationship per assertion, owned by the asserting record (`source_uid`)."""
    check_name(rel_type, "relation type")
    return f"""UNWIND $rows AS row
MATCH (r:{_R} {{uid: row.uid}})
WHERE r.stamp = $stamp
MERGE (a:{quote_name(src_label)} {{key: row.src}})
MERGE (b:{quote_name(dst_label)} {{key: row.dst}})
CREATE (a)-[x:{quote_name(rel_type)}]->(b)
SET x += row.props, x.source_uid = row.uid"""


def collect(label: str) -> str:
    """Delete the entity nodes of one label, among `$keys`, that no edge touches any more."""
    return f"""UNWIND $keys AS key
MATCH (e:{quote_name(label)} {{key: key}})
OPTIONAL MATCH (e)-[x]-()
WITH e, count(x) AS degree
WHERE degree = 0
DELETE e"""


def history(label: str) -> str:
    """The records that mention one entity, newest first."""
    return f"""MATCH (e:{quote_name(label)} {{key: $key}})<-[:{_M}]-(r:{_R})
RETURN r.record_json AS record_json
ORDER BY r.occurred_at DESC, r.version DESC, r.uid
LIMIT $limit"""


def relations(label: str) -> str:
    """The relations touching one entity, with the record that asserts each."""
    return f"""MATCH (e:{quote_name(label)} {{key: $key}})-[x]-(n)
WHERE type(x) <> '{MENTIONS}'
RETURN labels(startNode(x))[0] AS src_type, startNode(x).key AS src_key, type(x) AS type,
       labels(endNode(x))[0] AS dst_type, endNode(x).key AS dst_key, x.source_uid AS source_uid,
       properties(x) AS properties
ORDER BY type, src_type, src_key, dst_type, dst_key, source_uid"""


def neighbors(label: str, depth: int) -> str:
    """Entities within `depth` relations of one entity (MENTIONS edges are not followed)."""
    if not isinstance(depth, int) or isinstance(depth, bool) or not 1 <= depth <= 6:
        raise ValueError(f"depth must be an integer from 1 to 6, not {depth!r}")
    return f"""MATCH p = (e:{quote_name(label)} {{key: $key}})-[*1..{depth}]-(n)
WHERE n <> e AND none(x IN relationships(p) WHERE type(x) = '{MENTIONS}')
RETURN labels(n)[0] AS type, n.key AS key, properties(n) AS properties, min(length(p)) AS distance
ORDER BY distance, type, key
LIMIT $limit"""


def falkordb_index(label: str, prop: str) -> str:
    """FalkorDB range index on one property of one label (an error if it exists)."""
    check_name(prop, "property")
    return f"CREATE INDEX FOR (n:{quote_name(label)}) ON (n.{prop})"


def neo4j_constraint(label: str, prop: str) -> str:
    """Neo4j uniqueness constraint (with its index) on one property of one label, idempotent."""
    check_name(prop, "property")
    return f"CREATE CONSTRAINT IF NOT EXISTS FOR (n:{quote_name(label)}) REQUIRE n.{prop} IS UNIQUE"
