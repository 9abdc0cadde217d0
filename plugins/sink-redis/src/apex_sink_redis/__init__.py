"""Apex's Redis sink: a hot cache of the latest version of each record, plus the
saga's coordinator (record locks and the commit ledger)."""

from __future__ import annotations

from apex_sink_redis.settings import RedisSinkSettings
from apex_sink_redis.sink import RedisSink

__all__ = ["RedisSink", "RedisSinkSettings"]
