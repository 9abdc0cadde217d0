"""Drain partitions: which drain loop of a source takes an inbox row.

With `APEX_TEMPORAL_DRAIN_PARTITIONS=P` (P > 1) a webhook or push source has P drain
loops, `apex:drain:{source}:{k}of{P}`, and loop k takes only the pending rows whose event
id hashes to k: the first 32 bits of the MD5 of the event id as the inbox stores it, mod
P. The same function is computed by PostgreSQL (`sql_partition`, for `Inbox.pending`)
and here (for the API's answer, which names the loop that will drain the delivery), so
a row belongs to exactly one loop, whichever process asks. Ordering between partitions
does not matter: every store keeps the version rule (newest wins, whatever the order).
P = 1 is one loop per source, `apex:drain:{source}`, and no filter at all.
"""

from __future__ import annotations

import hashlib

#: the most drain loops per source (the setting's bound)
MAX_PARTITIONS = 64


def partition_of(event_id: str, partitions: int) -> int:
    """The partition (0 … partitions-1) of the inbox row of `event_id`."""
    if partitions <= 1:
        return 0
    from apex_platform.inbox import pg_text  # the event id as the inbox stores it

    digest = hashlib.md5(pg_text(event_id).encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[:4], "big") % partitions


def sql_partition(column: str, partitions: int) -> str:
    """`partition_of` as a PostgreSQL expression over the text column `column`. `partitions`
    is written as a literal (an int, checked) so an index on the expression can serve it."""
    if not isinstance(partitions, int) or not 1 <= partitions <= MAX_PARTITIONS:
        raise ValueError(f"drain partitions must be an int from 1 to {MAX_PARTITIONS}, not {partitions!r}")
    return f"((('x' || left(md5({column}), 8))::bit(32)::bigint) % {partitions})"
