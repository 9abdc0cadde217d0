"""Settings of the Turvo connector, read from `APEX_TURVO_*` environment variables.

Turvo's API reference and webhook schema are behind a tenant login, so every shape the
connector assumes (where the entity type and id sit in a webhook body, which API path
serves which entity) is a setting with a default taken from public integrations.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

from apex_platform.settings import Credential, Secrets, apex_config

DEFAULT_ENTITY_PATHS = (
    "shipment=/shipments/{id},order=/orders/{id},carrier=/carriers/{id},"
    "customer=/customers/{id},location=/locations/{id}"
)
DEFAULT_LIST_PATHS = (
    "shipment=/shipments/list,order=/orders/list,carrier=/carriers/list,"
    "customer=/customers/list,location=/locations/list"
)


def split_list(value: str) -> list[str]:
    """A comma-separated setting as a list of non-empty, stripped items."""
    return [item.strip() for item in value.split(",") if item.strip()]


class TurvoSettings(BaseSettings):
    model_config = apex_config("APEX_TURVO_")

    # -- webhooks ---------------------------------------------------------------------------
    webhook_token: Secrets | None = Field(
        default=None,
        description=(
            "The token you generated for the webhook profile in Turvo's admin console; several, comma-separated "
            "or a JSON array, during a rotation (any one is accepted). Unset: every delivery is rejected with 401."
        ),
    )
    webhook_header: str = Field(
        default="Authorization",
        min_length=1,
        description="Header that carries the token; its value may be 'Bearer <token>' or the raw token",
    )
    entity_type_path: str = Field(
        default="entityType,entity_type,objectType,entity.type,eventName,type",
        description=(
            "Comma-separated JSON paths tried in order for the entity type; the value is normalised "
            "(SHIPMENT_STATUS_UPDATE: shipment, Carriers: carrier, account: customer)"
        ),
    )
    entity_id_path: str = Field(
        default="entityId,entity_id,objectId,eventPayload.id,data.id,entity.id,shipmentId,id",
        description="Comma-separated JSON paths tried in order for the entity id",
    )
    delivery_id_path: str = Field(
        default="eventId,event_id,deliveryId,webhookEventId,messageId",
        description="Comma-separated JSON paths of a per-delivery id, used as the event id when present",
    )
    event_time_path: str = Field(
        default="eventTime,timestamp,occurredAt,eventPayload.updated,eventPayload.lastUpdatedOn,updatedAt",
        description="Comma-separated JSON paths of the webhook's event time",
    )
    event_time_max_skew_seconds: float = Field(
        default=300.0,
        ge=0,
        le=86_400,
        description=(
            "A webhook event time later than its receipt by more than this is ignored (the receipt time "
            "is used): a version in the future would outrank every real update"
        ),
    )

    # -- API --------------------------------------------------------------------------------
    base_url: str = Field(default="https://publicapi.turvo.com/v1", description="Turvo public API base URL")
    api_key: Credential | None = Field(default=None, description="x-api-key sent on every call")
    client_id: str | None = Field(default=None, description="OAuth client id (Turvo issues e.g. 'publicapi')")
    client_secret: Credential | None = Field(default=None, description="OAuth client secret")
    username: str | None = Field(default=None, description="Turvo API user (password grant)")
    password: Credential | None = Field(default=None, description="Password of the API user")
    scope: str = Field(default="read+trust+write", description="OAuth scope asked for")
    user_type: str = Field(default="business", description="The 'type' field of the token request")
    entity_paths: str = Field(
        default=DEFAULT_ENTITY_PATHS,
        description="Comma-separated 'type=/path/{id}' pairs: the API path that serves each entity type",
    )
    not_found: Literal["unresolved", "tombstone_confirmed", "tombstone", "keep_webhook", "fail"] = Field(
        default="unresolved",
        description=(
            "What a 404 means when nothing says the entity was deleted (neither the webhook's event "
            "nor the entity's own deleted flag): 'unresolved' (a turvo.unresolved record; the entity "
            "stays in every store), 'tombstone_confirmed' (a tombstone once the entity is still 404 after "
            "the re-reads and another entity of its collection was read through the same path), "
            "'tombstone' (any 404 deletes), 'keep_webhook' or 'fail'"
        ),
    )
    delete_event_path: str = Field(
        default="eventName,eventType,event,action,operation,changeType",
        description="Comma-separated JSON paths, in the webhook, of the event's name or action",
    )
    delete_event_pattern: str = Field(
        default=r"(?i)^(?:[a-z]+[_. -])?(?:delete|deleted|removed)$",
        description=(
            "A regular expression: an event name or action matching it says the entity was deleted "
            "(SHIPMENT_DELETE, ORDER_DELETED, action=DELETE); a sub-object's (SHIPMENT_STOP_DELETED) does not"
        ),
    )
    deleted_path: str = Field(
        default="deleted,isDeleted",
        description="Comma-separated paths, in the fetched entity, of a soft-delete flag (true: a tombstone)",
    )
    deleted_statuses: str = Field(
        default="",
        description=(
            "Comma-separated status values (status.code.value or key) that make a tombstone of the fetched "
            "entity; empty by default: a cancelled shipment is kept, with its status"
        ),
    )
    not_found_retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Re-reads of an entity that answered 404 before the 404 is believed (a change read too early)",
    )
    not_found_retry_seconds: float = Field(default=2.0, ge=0, le=60, description="Wait before each re-read")
    not_found_park_seconds: float = Field(
        default=3600.0,
        ge=0,
        description=(
            "While the path a 404 came from cannot be proven (no other entity of the collection can be read "
            "through it: a wrong base URL or path, a missing permission), the delivery waits and is retried "
            "for up to this long after its receipt; then it is recorded as turvo.unresolved"
        ),
    )
    list_paths: str = Field(
        default=DEFAULT_LIST_PATHS,
        description="Comma-separated 'type=/path' pairs: the list endpoint of each entity type",
    )
    updated_path: str = Field(
        default="updated,lastUpdatedOn,updatedDate,lastModifiedDate,modifiedDate,updatedAt,updated_at",
        description="Comma-separated paths, in the fetched entity, of its last-update time (the record version)",
    )
    # -- reconciliation ---------------------------------------------------------------------
    reconcile_accounts: str = Field(
        default="",
        description=(
            "Comma-separated entity types whose list endpoint is reconciled against the webhooks "
            "('shipment,order'); empty (off) by default"
        ),
    )
    reconcile_interval_seconds: float = Field(default=300.0, gt=0, description="Seconds between two passes")
    reconcile_overlap_seconds: float = Field(
        default=900.0,
        ge=0,
        description="Each pass re-lists this far behind the end of the last one (the listing is eventually consistent)",
    )
    reconcile_lookback_seconds: float = Field(
        default=86_400.0, gt=0, description="How far back the very first pass lists"
    )
    reconcile_page_size: int = Field(default=100, ge=2, le=500, description="pageSize of each list call")
    reconcile_min_window_seconds: float = Field(
        default=1.0,
        gt=0,
        description="The narrowest time window a pass splits a full page into before paging it by offset",
    )
    list_updated_filter: str = Field(
        default="updated",
        min_length=1,
        description="The list endpoints' last-update filter: '<name>[gte]' and '<name>[lte]' are sent",
    )
    timeout_seconds: float = Field(default=20.0, gt=0, le=300, description="Timeout of one HTTP call to the Turvo API")
    http_retries: int = Field(default=2, ge=0, le=10, description="Quick in-call retries of 5xx and network errors")
    rate_limit_backoff_seconds: float = Field(
        default=30.0, gt=0, description="Wait after a 429 that has no Retry-After header"
    )
    auth_backoff_seconds: float = Field(
        default=300.0,
        gt=0,
        description="Wait before retrying after Turvo refused the credentials (fix them meanwhile: nothing is lost)",
    )
    token_refresh_margin_seconds: float = Field(
        default=60.0, ge=0, description="Refresh the access token this long before it expires"
    )

    @field_validator("delete_event_pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return value

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    def entity_path_map(self) -> dict[str, str]:
        """`entity_paths` as {type: path template}; a malformed pair is ignored."""
        pairs: dict[str, str] = {}
        for item in split_list(self.entity_paths):
            kind, sep, path = item.partition("=")
            if sep and kind.strip() and "{id}" in path:
                pairs[kind.strip().lower()] = "/" + path.strip().lstrip("/")
        return pairs

    def list_path_map(self) -> dict[str, str]:
        """`list_paths` as {type: path}; a malformed pair is ignored."""
        pairs: dict[str, str] = {}
        for item in split_list(self.list_paths):
            kind, sep, path = item.partition("=")
            if sep and kind.strip() and path.strip():
                pairs[kind.strip().lower()] = "/" + path.strip().lstrip("/")
        return pairs

    def reconcile_account_names(self) -> list[str]:
        return list(dict.fromkeys(a.strip().lower() for a in self.reconcile_accounts.split(",") if a.strip()))
