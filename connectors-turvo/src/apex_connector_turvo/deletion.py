"""What counts as evidence that a Turvo entity was deleted.

A 404 alone is not: a wrong base URL or entity path, or an API user that lacks a
permission on one entity, answers 404 just the same, and a tombstone deletes the entity
from every store. So deletion needs positive evidence:

- the webhook says so: its event name or action (``APEX_TURVO_DELETE_EVENT_PATH``) matches
  ``APEX_TURVO_DELETE_EVENT_PATTERN`` (``SHIPMENT_DELETE``, ``ORDER_DELETED``,
  ``action: DELETE``) and the API no longer returns the entity;
- the fetched entity says so: a soft-delete flag (``APEX_TURVO_DELETED_PATH``, Turvo marks
  removed stops and carrier orders ``deleted: true``) or a status listed in
  ``APEX_TURVO_DELETED_STATUSES``;
- or, only where ``APEX_TURVO_NOT_FOUND=tombstone_confirmed`` allows it, a 404 that stays
  after the re-reads while another entity of the same collection is read through the same
  path (proving base URL, path and permissions for the collection).

Anything else is *unresolved*: the entity stays in every store and the delivery becomes a
``turvo.unresolved`` record that says what was tried.
"""

from __future__ import annotations

import re
from typing import Any

from apex_connector_turvo.settings import TurvoSettings, split_list
from apex_connector_turvo.webhook import dig


def webhook_says_deleted(webhook: Any, settings: TurvoSettings) -> str | None:
    """The evidence, as words (``eventName SHIPMENT_DELETE``), when the webhook announces a deletion."""
    pattern = re.compile(settings.delete_event_pattern)
    for path in split_list(settings.delete_event_path):
        value = dig(webhook, path)
        if isinstance(value, str) and pattern.search(value.strip()):
            return f"{path} {value.strip()}"
    return None


def entity_says_deleted(entity: dict[str, Any], settings: TurvoSettings) -> str | None:
    """The evidence when the fetched entity is soft-deleted or in a status configured as deleted."""
    for path in split_list(settings.deleted_path):
        if dig(entity, path) is True:
            return f"the entity's {path} is true"
    statuses = {s.lower() for s in split_list(settings.deleted_statuses)}
    if statuses:
        code = dig(entity, "status.code")
        values = [code.get("key"), code.get("value")] if isinstance(code, dict) else [code]
        for value in values:
            if isinstance(value, str | int) and str(value).strip().lower() in statuses:
                return f"the entity's status is {value} (APEX_TURVO_DELETED_STATUSES)"
    return None


def list_items(doc: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The objects of a Turvo list answer: ``{"Status": "SUCCESS", "details": {"pagination": …,
    "shipments": [...]}}`` (public integrations show ``shipments`` and ``Shipments``); the
    first list of objects under ``details``. None when the answer holds no list at all."""
    details = doc.get("details")
    if isinstance(details, list):
        return [item for item in details if isinstance(item, dict)]
    if not isinstance(details, dict):
        return None
    for key, value in details.items():
        if key != "pagination" and isinstance(value, list):
            return [item for item in value if isinstance(item, dict)]
    return None
