"""Front events to Apex records: a pure function of the delivery, no I/O, no clock.

Every event gives a ``frontapp.event`` record; the conversation it concerns gives a
``frontapp.conversation`` record; a message or comment target gives a ``frontapp.message``
or ``frontapp.comment`` record. Every version is the event's ``emitted_at`` in integer
microseconds, so a redelivered event yields byte-identical records.

Front's payloads vary by event type, and previews (rule webhooks) carry only ids, so every
field below ``payload.id`` and ``payload.emitted_at`` is optional: a field with the wrong type
is ignored, never an error.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from apex_connector_frontapp.envelope import EPOCH, Delivery, microseconds
from apex_connector_frontapp.html_text import clean_text, html_to_text
from apex_platform.models import Entity, Record, Relation

SOURCE = "frontapp"
KIND_EVENT = "frontapp.event"
KIND_CONVERSATION = "frontapp.conversation"
KIND_MESSAGE = "frontapp.message"
KIND_COMMENT = "frontapp.comment"

# The edge refuses bodies over 1 MiB (APEX_MAX_BODY_BYTES), so a real message is never cut;
# this bounds what a larger configured limit could put into one record's text.
MAX_TEXT_CHARS = 1_000_000
_MAX_TITLE_CHARS = 500
_MAX_ATTRIBUTE_CHARS = 2_000
_MAX_KEY_CHARS = 512  # Entity.key and Record.id limit
_MAX_LIST_ITEMS = 200
_EXCERPT_CHARS = 2_000

# Front event types (payload.type) and application webhook types (envelope type) whose
# target is a message or a comment, for payloads whose target lacks `_meta`.
_MESSAGE_TYPES = frozenset(
    {
        "inbound",
        "outbound",
        "out_reply",
        "forward",
        "sending_error",
        "message_bounce_error",
        "inbound_received",
        "outbound_sent",
        "outbound_reply_sent",
        "message_delivery_failed",
    }
)
_COMMENT_TYPES = frozenset({"comment", "mention", "new_comment_added"})
_ASSIGN_TYPES = frozenset({"assign", "unassign", "assignee_changed"})
_ID_PREFIX_KIND = {"msg_": "message", "com_": "comment", "tea_": "teammate", "tag_": "tag", "top_": "link"}

_DESCRIPTIONS = {
    "inbound_received": "Inbound message received",
    "inbound": "Inbound message received",
    "outbound_sent": "Outbound message sent",
    "outbound": "Outbound message sent",
    "out_reply": "Reply sent",
    "forward": "Message forwarded",
    "message_delivery_failed": "Message delivery failed",
    "sending_error": "Message delivery failed",
    "message_bounce_error": "Message bounced",
    "assignee_changed": "Assignee changed",
    "assign": "Conversation assigned",
    "unassign": "Conversation unassigned",
    "tag_added": "Tag added",
    "tag": "Tag added",
    "tag_removed": "Tag removed",
    "untag": "Tag removed",
    "conversation_archived": "Conversation archived",
    "archive": "Conversation archived",
    "conversation_reopened": "Conversation reopened",
    "reopen": "Conversation reopened",
    "conversation_deleted": "Conversation deleted",
    "trash": "Conversation deleted",
    "conversation_restored": "Conversation restored",
    "restore": "Conversation restored",
    "conversation_moved": "Conversation moved",
    "move": "Conversation moved",
    "conversation_snoozed": "Conversation snoozed",
    "conversation_snooze_expired": "Snooze expired",
    "reminder": "Conversation reopened by a reminder",
    "new_comment_added": "Comment added",
    "comment": "Comment added",
    "mention": "Teammate mentioned",
    "link_added": "Link added",
    "link_removed": "Link removed",
}


# -- reading loosely typed JSON ------------------------------------------------------------


def _dict(container: object, key: str) -> dict[str, Any] | None:
    if not isinstance(container, dict):
        return None
    value = container.get(key)
    return value if isinstance(value, dict) else None


def _dicts(value: object) -> list[dict[str, Any]]:
    """The objects of a list (other items skipped); a single object counts as a list of one."""
    if isinstance(value, dict):
        return [value]
    if not isinstance(value, list):
        return []
    return [item for item in value[:_MAX_LIST_ITEMS] if isinstance(item, dict)]


def _text(container: object, key: str, limit: int = _MAX_ATTRIBUTE_CHARS) -> str | None:
    """A cleaned, non-empty string field, cut to `limit` characters."""
    if not isinstance(container, dict):
        return None
    value = container.get(key)
    if not isinstance(value, str):
        return None
    return _clip(clean_text(value), limit) or None


def _key_text(container: object, key: str) -> str | None:
    """A cleaned string used as an entity key: never clipped, since clipping could merge two keys."""
    if not isinstance(container, dict):
        return None
    value = container.get(key)
    if not isinstance(value, str) or len(value) > _MAX_KEY_CHARS * 2:
        return None
    text = clean_text(value)
    return text if 0 < len(text) <= _MAX_KEY_CHARS else None


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _ident(container: object, key: str = "id") -> str | None:
    """A Front id (cnv_…, msg_…, tea_…): used verbatim, or None when it cannot be a key."""
    if not isinstance(container, dict):
        return None
    value = container.get(key)
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value or len(value) > _MAX_KEY_CHARS or not value.isprintable() or " " in value:
        return None
    return value


def _bool(container: object, key: str) -> bool | None:
    if not isinstance(container, dict):
        return None
    value = container.get(key)
    return value if isinstance(value, bool) else None


def _time(container: object, key: str) -> datetime | None:
    if not isinstance(container, dict):
        return None
    us = microseconds(container.get(key))
    return None if us is None else EPOCH + timedelta(microseconds=us)


def _meta_type(wrapper: dict[str, Any] | None) -> str | None:
    return _text(_dict(wrapper, "_meta"), "type", 64)


# -- entities and relations ----------------------------------------------------------------


class _Graph:
    """Entities (merged by type and key) and relations (deduplicated) of one record."""

    def __init__(self) -> None:
        self._entities: dict[tuple[str, str], dict[str, Any]] = {}
        self._relations: dict[tuple[str, str, str], dict[str, Any]] = {}

    def entity(self, type_: str, key: str | None, **properties: Any) -> str | None:
        """Add an entity and return its `Type:key` reference; None when the key is unusable."""
        if key is None:
            return None
        key = key.strip()
        if not key or len(key) > _MAX_KEY_CHARS:
            return None
        props = self._entities.setdefault((type_, key), {})
        for name, value in properties.items():
            if value is not None and value != "" and value != []:
                props.setdefault(name, value)
        return f"{type_}:{key}"

    def relate(self, src: str | None, type_: str, dst: str | None, **properties: Any) -> None:
        if src is None or dst is None or src == dst:
            return
        self._relations.setdefault((src, type_, dst), {k: v for k, v in properties.items() if v is not None})

    def merge(self, other: _Graph) -> None:
        for (type_, key), props in other._entities.items():
            self.entity(type_, key, **props)
        for (src, type_, dst), props in other._relations.items():
            self.relate(src, type_, dst, **props)

    def entities(self) -> tuple[Entity, ...]:
        return tuple(Entity(type=t, key=k, properties=p) for (t, k), p in self._entities.items())

    def relations(self) -> tuple[Relation, ...]:
        return tuple(Relation(src=s, type=t, dst=d, properties=p) for (s, t, d), p in self._relations.items())


def _teammate(graph: _Graph, obj: object) -> tuple[str | None, str | None]:
    """Add a Teammate; return its reference and a readable name."""
    if not isinstance(obj, dict):
        return None, None
    email = _key_text(obj, "email")
    email = email.lower() if email else None
    first, last = _text(obj, "first_name", 200), _text(obj, "last_name", 200)
    name = " ".join(part for part in (first, last) if part) or _text(obj, "username", 200)
    ref = graph.entity("Teammate", _ident(obj) or email, name=name, email=email)
    label = f"{name} <{email}>" if name and email else name or email or (ref.split(":", 1)[1] if ref else None)
    return ref, label


def _contact(graph: _Graph, recipient: dict[str, Any]) -> tuple[str | None, str | None]:
    """Add a Contact keyed by the lower-cased handle (email, phone …) of a recipient."""
    handle = _key_text(recipient, "handle")
    if handle is None:
        return None, None
    handle = handle.lower()
    name = _text(recipient, "name", 200)
    ref = graph.entity("Contact", handle, name=name, handle=handle)
    return ref, f"{name} <{handle}>" if name else handle


def _tag(graph: _Graph, obj: dict[str, Any]) -> tuple[str | None, str | None]:
    name = _key_text(obj, "name")
    return graph.entity("Tag", _ident(obj) or name, name=name), name


def _inbox(graph: _Graph, obj: dict[str, Any]) -> tuple[str | None, str | None]:
    name = _text(obj, "name", 200)
    ident = _ident(obj)
    type_ = "Channel" if ident and ident.startswith("cha_") else "Inbox"
    return graph.entity(type_, ident, name=name, address=_text(obj, "address", 320)), name or ident


# -- the parts of an event -----------------------------------------------------------------


class _Conversation:
    """The conversation snapshot carried by an event."""

    def __init__(self, obj: dict[str, Any] | None) -> None:
        self.graph = _Graph()
        self.id = _ident(obj)
        self.subject = _text(obj, "subject", _MAX_TITLE_CHARS)
        self.status = _text(obj, "status", 64)
        self.status_category = _text(obj, "status_category", 64)
        self.created_at = _time(obj, "created_at")
        self.is_private = _bool(obj, "is_private")
        self.ref = self.graph.entity("Conversation", self.id, subject=self.subject)
        assignee = obj.get("assignee") if obj else None
        self.assignee_ref, self.assignee_label = _teammate(self.graph, assignee)
        self.assignee_id = _ident(assignee)
        self.graph.relate(self.ref, "ASSIGNED_TO", self.assignee_ref)
        self.tags: list[str] = []
        self.tag_ids: list[str] = []
        for tag in _dicts(obj.get("tags") if obj else None):
            ref, name = _tag(self.graph, tag)
            self.graph.relate(self.ref, "TAGGED", ref)
            if name:
                self.tags.append(name)
            if tag_id := _ident(tag):
                self.tag_ids.append(tag_id)
        recipient = _dict(obj, "recipient")
        self.contact_ref, self.contact_label = _contact(self.graph, recipient) if recipient else (None, None)
        self.contact_handle = self.contact_ref.split(":", 1)[1] if self.contact_ref else None
        self.graph.relate(self.ref, "WITH_CONTACT", self.contact_ref)

    def attributes(self) -> dict[str, Any]:
        return {
            "conversation_id": self.id,
            "subject": self.subject,
            "status": self.status,
            "status_category": self.status_category,
            "assignee_id": self.assignee_id,
            "assignee": self.assignee_label,
            "tags": self.tags,
            "tag_ids": self.tag_ids,
            "contact": self.contact_handle,
            "is_private": self.is_private,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }

    def summary(self) -> str:
        parts = [f"status {self.status or 'unknown'}", f"assignee {self.assignee_label or 'none'}"]
        if self.tags:
            parts.append("tags " + ", ".join(self.tags))
        if self.contact_label:
            parts.append(f"contact {self.contact_label}")
        return "; ".join(parts)


class _Message:
    def __init__(self, obj: dict[str, Any], conversation: _Conversation, delivery: Delivery) -> None:
        self.graph = _Graph()
        self.id = _ident(obj)
        self.subject = _text(obj, "subject", _MAX_TITLE_CHARS) or conversation.subject
        self.type = _text(obj, "type", 64)
        self.ref = self.graph.entity("Message", self.id, subject=self.subject, message_type=self.type)
        conv_ref = self.graph.entity("Conversation", conversation.id, subject=conversation.subject)
        self.graph.relate(self.ref, "PART_OF", conv_ref)
        self.blurb = _text(obj, "blurb", 1_000)
        self.created_at = _time(obj, "created_at")
        inbound = _bool(obj, "is_inbound")
        if inbound is None:
            inbound = (delivery.event_type or delivery.webhook_type or "").startswith("inbound")
        self.is_inbound = inbound
        self.text = self._body(obj)

        self.author_ref, self.author_label = _teammate(self.graph, obj.get("author"))
        self.graph.relate(self.ref, "AUTHORED_BY", self.author_ref)
        self.sender: str | None = None
        self.recipients: dict[str, list[str]] = {}
        for recipient in _dicts(obj.get("recipients")):
            role = (_text(recipient, "role", 32) or "to").lower()
            ref, label = _contact(self.graph, recipient)
            if ref is None or label is None:
                continue
            if role == "from":
                self.sender = self.sender or label
                self.graph.relate(ref, "SENT", self.ref)
            elif role in ("to", "cc", "bcc"):
                self.recipients.setdefault(role, []).append(label)
                self.graph.relate(self.ref, "SENT_TO", ref, role=role)
        self.attachments = [
            name for name in (_text(a, "filename", 300) for a in _dicts(obj.get("attachments"))) if name
        ]
        self.error_type = _text(obj, "error_type", 200)

    @staticmethod
    def _body(obj: dict[str, Any]) -> str:
        # Front's `text` is its own plain rendering; `body` is HTML; previews have a blurb only.
        text = obj.get("text")
        if isinstance(text, str) and text.strip():
            return _clip(clean_text(text), MAX_TEXT_CHARS)
        body = obj.get("body")
        if isinstance(body, str) and body.strip():
            # Cut before parsing too: the parser's cost grows with the input.
            return _clip(html_to_text(body[: MAX_TEXT_CHARS * 4]), MAX_TEXT_CHARS)
        return _text(obj, "blurb", MAX_TEXT_CHARS) or ""

    def headline(self) -> str:
        parts = []
        if self.sender:
            parts.append(f"From: {self.sender}")
        for role in ("to", "cc", "bcc"):
            if self.recipients.get(role):
                parts.append(f"{role.capitalize()}: {', '.join(self.recipients[role])}")
        if self.author_label and not self.is_inbound:
            parts.append(f"Author: {self.author_label}")
        return "\n".join(parts)


class _Comment:
    def __init__(self, obj: dict[str, Any], conversation: _Conversation, actor: object) -> None:
        self.graph = _Graph()
        self.id = _ident(obj)
        self.ref = self.graph.entity("Comment", self.id)
        conv_ref = self.graph.entity("Conversation", conversation.id, subject=conversation.subject)
        self.graph.relate(self.ref, "PART_OF", conv_ref)
        # The comment's author, or the teammate the event names as its source.
        author = obj.get("author") if isinstance(obj.get("author"), dict) else actor
        self.author_ref, self.author_label = _teammate(self.graph, author)
        self.author_id = _ident(author)
        self.graph.relate(self.ref, "AUTHORED_BY", self.author_ref)
        body = obj.get("body")
        self.text = _clip(clean_text(body), MAX_TEXT_CHARS) if isinstance(body, str) else ""
        self.posted_at = _time(obj, "posted_at")
        self.is_pinned = _bool(obj, "is_pinned")


def _target_kind(delivery: Delivery, meta: str | None, data: object) -> str | None:
    if meta:
        return meta
    ident = _ident(data) if isinstance(data, dict) else None
    if ident:
        for prefix, kind in _ID_PREFIX_KIND.items():
            if ident.startswith(prefix):
                return kind
    types = {delivery.event_type, delivery.webhook_type}
    if types & _MESSAGE_TYPES:
        return "message"
    if types & _COMMENT_TYPES:
        return "comment"
    return None


def _actor(
    graph: _Graph, source: dict[str, Any] | None, conversation_ref: str | None
) -> tuple[str | None, str | None, str | None]:
    """Who or what caused the event: (source type, source id, readable label)."""
    meta = _meta_type(source)
    data = source.get("data") if source else None
    if meta == "teammate" or (meta is None and (_ident(data) or "").startswith("tea_")):
        _, label = _teammate(graph, data)
        return meta or "teammate", _ident(data), label
    if meta in ("inboxes", "inbox", "channel", "channels"):
        labels = []
        for box in _dicts(data):
            ref, label = _inbox(graph, box)
            # The inbox a message arrived in or left from is the conversation's inbox.
            graph.relate(conversation_ref, "IN_INBOX", ref)
            if label:
                labels.append(label)
        ids = [i for i in (_ident(box) for box in _dicts(data)) if i]
        return meta, ",".join(ids) or None, ("inbox " + ", ".join(labels)) if labels else None
    if meta == "rule" and isinstance(data, dict):
        name = _text(data, "name", 200)
        graph.entity("Rule", _ident(data), name=name)
        return meta, _ident(data), f"rule {name}" if name else "a rule"
    if isinstance(data, dict):
        return meta, _ident(data), meta
    return meta, None, meta


def _prune(attributes: dict[str, Any]) -> dict[str, Any]:
    """Drop empty values so absent fields stay absent rather than null."""
    return {k: v for k, v in attributes.items() if v is not None and v != [] and v != ""}


def _first_line(delivery: Delivery, conversation: _Conversation) -> str:
    label = delivery.label
    what = _DESCRIPTIONS.get(label) or _DESCRIPTIONS.get(delivery.event_type or "") or label.replace("_", " ")
    what = what[:1].upper() + what[1:]
    if not conversation.id:
        return f"{what}."
    subject = f"“{conversation.subject}” " if conversation.subject else ""
    if what.startswith("Conversation "):
        return f"{what}: {subject}({conversation.id})."
    return f"{what} in conversation {subject}({conversation.id})."


def build_records(delivery: Delivery) -> list[Record]:
    """All records of one Front event: event, conversation, then message or comment."""
    event = delivery.event
    version = delivery.emitted_us
    occurred_at = delivery.occurred_at

    conversation = _Conversation(_dict(event, "conversation"))
    event_graph = _Graph()
    event_graph.merge(conversation.graph)

    source = _dict(event, "source")
    source_type, source_id, actor_label = _actor(event_graph, source, conversation.ref)
    actor_data = source.get("data") if source else None

    target = _dict(event, "target")
    target_data = target.get("data") if target else None
    target_kind = _target_kind(delivery, _meta_type(target), target_data)

    lines = [_first_line(delivery, conversation)]
    if actor_label:
        lines.append(f"By: {actor_label}")
    attributes: dict[str, Any] = {
        "event_type": delivery.label,
        "front_event_type": delivery.event_type,
        "webhook_type": delivery.webhook_type,
        "company_id": delivery.company_id,
        "emitted_at": occurred_at.isoformat(),
        "source_type": source_type,
        "source_id": source_id,
        "target_type": target_kind,
    }
    extra: list[Record] = []

    if target_kind == "message" and isinstance(target_data, dict) and _ident(target_data):
        message = _Message(target_data, conversation, delivery)
        event_graph.merge(message.graph)
        attributes.update(message_id=message.id, target_id=message.id)
        if head := message.headline():
            lines.append(head)
        if message.text:
            lines.append("")
            lines.append(_clip(message.text, _EXCERPT_CHARS))
            lines.append("")
        extra.append(_message_record(message, conversation, delivery))
    elif target_kind in ("comment", "mention") and isinstance(target_data, dict) and _ident(target_data):
        comment = _Comment(target_data, conversation, actor_data)
        event_graph.merge(comment.graph)
        attributes.update(comment_id=comment.id, target_id=comment.id)
        lines.append(f"Comment by {comment.author_label or 'a teammate'}: {_clip(comment.text, _EXCERPT_CHARS)}")
        extra.append(_comment_record(comment, conversation, delivery))
    elif target_kind == "teammate" and isinstance(target_data, dict):
        ref, label = _teammate(event_graph, target_data)
        event_graph.relate(conversation.ref, "ASSIGNED_TO", ref)
        attributes["target_id"] = _ident(target_data)
        lines.append(f"Assigned to: {label or 'a teammate'}")
    elif target_kind == "tag" and isinstance(target_data, dict):
        ref, name = _tag(event_graph, target_data)
        attributes.update(target_id=_ident(target_data), tag=name)
        removed = {delivery.event_type, delivery.webhook_type} & {"untag", "tag_removed"}
        if not removed:
            event_graph.relate(conversation.ref, "TAGGED", ref)
        lines.append(f"Tag {'removed' if removed else 'added'}: {name or _ident(target_data) or '?'}")
    elif target_kind == "link" and isinstance(target_data, dict):
        name = _text(target_data, "name", 200)
        url = _text(target_data, "external_url", 1_000)
        ref = event_graph.entity("Link", _ident(target_data), name=name, external_url=url)
        event_graph.relate(conversation.ref, "LINKED_TO", ref)
        attributes.update(target_id=_ident(target_data), link=name or url)
        lines.append(f"Link: {name or url or _ident(target_data) or '?'}")
    elif target_kind in ("inboxes", "inbox") and target_data is not None:
        names = []
        for box in _dicts(target_data):
            ref, name = _inbox(event_graph, box)
            event_graph.relate(conversation.ref, "IN_INBOX", ref)
            if name:
                names.append(name)
        attributes["target_id"] = ",".join(i for i in (_ident(b) for b in _dicts(target_data)) if i) or None
        if names:
            lines.append(f"Moved to: {', '.join(names)}")
    elif {delivery.event_type, delivery.webhook_type} & _ASSIGN_TYPES and conversation.assignee_ref is None:
        lines.append("Unassigned")

    if conversation.id:
        lines.append(f"Conversation: {conversation.summary()}")
        extra.insert(0, _conversation_record(conversation, delivery))
    attributes.update({k: v for k, v in conversation.attributes().items() if k not in attributes})

    title = delivery.label
    if conversation.subject:
        title = f"{delivery.label}: {conversation.subject}"
    records = [
        Record(
            source=SOURCE,
            kind=KIND_EVENT,
            id=delivery.event_id,
            version=version,
            occurred_at=occurred_at,
            title=_clip(title, _MAX_TITLE_CHARS),
            text=_clip("\n".join(line for line in _tidy(lines)), MAX_TEXT_CHARS),
            attributes=_prune(attributes),
            entities=event_graph.entities(),
            relations=event_graph.relations(),
        )
    ]
    # A payload that reuses one id for two things must not make two records with one key.
    seen = {delivery.event_id}
    for record in extra:
        if record.id not in seen:
            seen.add(record.id)
            records.append(record)
    return records


def _tidy(lines: Iterable[str]) -> list[str]:
    """Drop empty lines at the ends and doubled blank lines in between."""
    out: list[str] = []
    for line in lines:
        if line == "" and (not out or out[-1] == ""):
            continue
        out.append(line)
    while out and out[-1] == "":
        out.pop()
    return out


def _conversation_record(conversation: _Conversation, delivery: Delivery) -> Record:
    assert conversation.id is not None
    subject = conversation.subject or conversation.id
    return Record(
        source=SOURCE,
        kind=KIND_CONVERSATION,
        id=conversation.id,
        version=delivery.emitted_us,
        occurred_at=delivery.occurred_at,
        title=subject,
        text=f"Conversation “{subject}”: {conversation.summary()}.",
        attributes=_prune(
            {**conversation.attributes(), "last_event_id": delivery.event_id, "last_event_type": delivery.label}
        ),
        entities=conversation.graph.entities(),
        relations=conversation.graph.relations(),
    )


def _message_record(message: _Message, conversation: _Conversation, delivery: Delivery) -> Record:
    assert message.id is not None
    head = message.headline()
    return Record(
        source=SOURCE,
        kind=KIND_MESSAGE,
        id=message.id,
        version=delivery.emitted_us,
        occurred_at=message.created_at or delivery.occurred_at,
        title=message.subject or "",
        text=message.text or head,
        attributes=_prune(
            {
                "conversation_id": conversation.id,
                "message_type": message.type,
                "direction": "inbound" if message.is_inbound else "outbound",
                "from": message.sender,
                "to": message.recipients.get("to", []),
                "cc": message.recipients.get("cc", []),
                "bcc": message.recipients.get("bcc", []),
                "author": message.author_label,
                "blurb": message.blurb,
                "attachments": message.attachments,
                "error_type": message.error_type,
                "event_id": delivery.event_id,
                "event_type": delivery.label,
            }
        ),
        entities=message.graph.entities(),
        relations=message.graph.relations(),
    )


def _comment_record(comment: _Comment, conversation: _Conversation, delivery: Delivery) -> Record:
    assert comment.id is not None
    return Record(
        source=SOURCE,
        kind=KIND_COMMENT,
        id=comment.id,
        version=delivery.emitted_us,
        occurred_at=comment.posted_at or delivery.occurred_at,
        title=f"Comment on: {conversation.subject}" if conversation.subject else "Comment",
        text=comment.text,
        attributes=_prune(
            {
                "conversation_id": conversation.id,
                "author_id": comment.author_id,
                "author": comment.author_label,
                "is_pinned": comment.is_pinned,
                "event_id": delivery.event_id,
                "event_type": delivery.label,
            }
        ),
        entities=comment.graph.entities(),
        relations=comment.graph.relations(),
    )
