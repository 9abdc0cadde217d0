"""The Cypher the sink runs, the same text for FalkorDB and Neo4j.

Only labels, relationship types and the neighbour depth are written into the text
(Cypher cannot take them as parameters); each is validated and backtick-quoted by
`properties.quote_name`. Every value travels as a parameter.

A write is a sequence of statements (see `sink.GraphSink.write`):

1. CLAIM, per chunk of records: the version rule decides, inside the statement, which
   records win; a winning record node is rewritten, marked `pending` with this
   write's `stamp`, and loses its MENTIONS edges and the relations it asserted.
2. MENTION, per entity label: entity nodes merged by key, MENTIONS edges created.
3. RELATE, per (source label, type, target label): one relationship per assertion.
4. COLLECT, per label: entity nodes left with no relationship at all are deleted.
5. FINISH: `pending` cleared.

Steps 2, 3 and 5 act only on record nodes that still carry this write's stamp, so a
newer write that claimed the record in between is never overwritten by a slower,
older one. A write that stops half-way leaves `pending = true`, which lets the same
write (a retry) claim the record again although its version and content are equal.
"""

from __future__ import annotations

from apex_sink_graph.properties import MENTIONS, RECORD_LABEL, check_name, quote_name

_R = f"`{RECORD_LABEL}`"
_M = f"`{MENTIONS}`"

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

_WINS = """(
       $force
    OR r.version IS NULL
    OR r.version < row.version
    OR (r.version = row.version AND (
           (NOT coalesce(r.deleted, false) AND (
                row.deleted
             OR coalesce(r.content_hash, '') <> row.content_hash
             OR coalesce(r.record_json, '') <> coalesce(row.record_json, '')))
        OR (coalesce(r.pending, false) AND r.deleted = row.deleted))))"""

#: Relations asserted by `r` start at a node `r` MENTIONS (both ends of every asserted
#: relation are mentioned), so they are found by walking out of the record.
_DROP_ASSERTIONS = f"""
OPTIONAL MATCH (r)-[:{_M}]->()-[asserted]->()
WHERE asserted.source_uid = r.uid
WITH r, collect(DISTINCT asserted) AS assertions
FOREACH (a IN assertions | DELETE a)
WITH r
OPTIONAL MATCH (r)-[m:{_M}]->(e)
WITH r, collect(m) AS mentions, collect(DISTINCT e) AS entities
FOREACH (m IN mentions | DELETE m)"""

CLAIM = (
    f"""UNWIND $rows AS row
MERGE (r:{_R} {{uid: row.uid}})
WITH r, row
WHERE {_WINS}
SET """
    + ", ".join(f"r.{name} = row.{name}" for name in RECORD_FIELDS)
    + """, r.stamp = $stamp, r.pending = true
WITH r"""
    + _DROP_ASSERTIONS
    + """
RETURN r.uid AS uid, [n IN entities | [labels(n)[0], n.key]] AS released"""
)

PURGE = (
    f"""UNWIND $uids AS uid
MATCH (r:{_R} {{uid: uid}})
WITH r"""
    + _DROP_ASSERTIONS
    + """
DETACH DELETE r
RETURN [n IN entities | [labels(n)[0], n.key]] AS released"""
)

FINISH = f"""UNWIND $uids AS uid
MATCH (r:{_R} {{uid: uid}})
WHERE r.stamp = $stamp
SET r.pending = false"""

READ = f"""UNWIND $uids AS uid
MATCH (r:{_R} {{uid: uid}})
RETURN r.uid AS uid, r.source AS source, r.id AS id, r.kind AS kind, r.version AS version,
       r.deleted AS deleted, r.occurred_at AS occurred_at, r.record_json AS record_json"""


def mention(label: str) -> str:
    """Merge entity nodes of one label and link each to the record that mentions it."""
    return f"""UNWIND $rows AS row
MATCH (r:{_R} {{uid: row.uid}})
WHERE r.stamp = $stamp
MERGE (e:{quote_name(label)} {{key: row.key}})
SET e += row.props
MERGE (r)-[m:{_M}]->(e)
SET m.implicit = row.implicit"""


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
