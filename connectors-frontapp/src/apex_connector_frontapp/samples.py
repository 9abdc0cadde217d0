"""Sample Front traffic for the demo and the tests: one shipper conversation, start to end.

A shipper asks the dispatch inbox about a delivery appointment for a load (PRO number);
a rule assigns it, the teammate tags it, leaves an internal comment, replies, and archives.
Shapes follow Front's application webhook envelope and its Event, Conversation, Message,
Comment, Teammate, Tag and Inbox objects. Every domain is under `.example`.

The constants are shared: treat them as read-only and call `events()` for copies.
"""

from __future__ import annotations

import copy
import json
import time
from typing import Any

from apex_connector_frontapp.signatures import application_signature

API = "https://apex-logistics.api.frontapp.com"
COMPANY_ID = "cmp_9f3e2"
CONVERSATION_ID = "cnv_a1b2c3d4"
INBOUND_MESSAGE_ID = "msg_1q2w3e4r"
OUTBOUND_MESSAGE_ID = "msg_5t6y7u8i"
COMMENT_ID = "com_9o8i7u"
LOAD_NUMBER = "4471823"
PRO_NUMBER = "0286-55431"
SUBJECT = f"Load {LOAD_NUMBER} / PRO {PRO_NUMBER} - delivery appointment Thursday?"
SHIPPER_EMAIL = "dana.whitfield@acmefoods.example"
DISPATCH_EMAIL = "dispatch@apex-logistics.example"


def _links(path: str) -> dict[str, Any]:
    return {"self": f"{API}/{path}"}


MARIA: dict[str, Any] = {
    "_links": _links("teammates/tea_4m2n"),
    "id": "tea_4m2n",
    "email": "maria.lopez@apex-logistics.example",
    "username": "mlopez",
    "first_name": "Maria",
    "last_name": "Lopez",
    "is_admin": False,
    "is_available": True,
    "is_blocked": False,
}
SAM: dict[str, Any] = {
    "_links": _links("teammates/tea_7p8q"),
    "id": "tea_7p8q",
    "email": "sam.carter@apex-logistics.example",
    "username": "scarter",
    "first_name": "Sam",
    "last_name": "Carter",
    "is_admin": True,
    "is_available": True,
    "is_blocked": False,
}
APPOINTMENT_TAG: dict[str, Any] = {
    "_links": _links("tags/tag_2b3c"),
    "id": "tag_2b3c",
    "name": "Appointment",
    "description": "Delivery or pickup appointment requests",
    "highlight": "blue",
    "is_private": False,
    "is_visible_in_conversation_lists": True,
    "created_at": 1704067200.0,
    "updated_at": 1704067200.0,
}
DISPATCH_INBOX: dict[str, Any] = {
    "_links": _links("inboxes/inb_5x3k2"),
    "id": "inb_5x3k2",
    "name": "Dispatch",
    "is_private": False,
    "is_public": True,
    "address": DISPATCH_EMAIL,
    "send_as": DISPATCH_EMAIL,
}
ASSIGNMENT_RULE: dict[str, Any] = {
    "_links": _links("rules/rul_3h4j"),
    "id": "rul_3h4j",
    "name": "Round-robin dispatch",
    "actions": ["Assign to teammates round-robin"],
    "is_private": False,
}
SHIPPER_RECIPIENT: dict[str, Any] = {
    "_links": {"related": {"contact": f"{API}/contacts/crd_6g7h8j"}},
    "name": "Dana Whitfield",
    # Front keeps the handle as written; the connector lower-cases it for the Contact key.
    "handle": "Dana.Whitfield@AcmeFoods.example",
    "role": "from",
}


def _conversation(status: str, assignee: dict[str, Any] | None, tags: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "_links": {
            "self": f"{API}/conversations/{CONVERSATION_ID}",
            "related": {
                "events": f"{API}/conversations/{CONVERSATION_ID}/events",
                "messages": f"{API}/conversations/{CONVERSATION_ID}/messages",
                "comments": f"{API}/conversations/{CONVERSATION_ID}/comments",
                "inboxes": f"{API}/conversations/{CONVERSATION_ID}/inboxes",
            },
        },
        "id": CONVERSATION_ID,
        "subject": SUBJECT,
        "status": status,
        "assignee": assignee,
        "recipient": SHIPPER_RECIPIENT,
        "tags": tags,
        "links": [],
        "custom_fields": {},
        "created_at": 1773151511.0,
        "is_private": False,
        "scheduled_reminders": [],
        "metadata": {},
    }


def _event(webhook_type: str, event_type: str, event_id: str, emitted_at: float, **parts: Any) -> dict[str, Any]:
    payload = {"_links": _links(f"events/{event_id}"), "id": event_id, "type": event_type, "emitted_at": emitted_at}
    payload.update(parts)
    return {"type": webhook_type, "authorization": {"id": COMPANY_ID}, "payload": payload}


INBOUND_BODY_HTML = (
    "<div>Hi Dispatch,</div>"
    f"<div>Can we get a delivery appointment for <b>load {LOAD_NUMBER}</b> (PRO&nbsp;{PRO_NUMBER}) "
    "at our Columbus DC on Thursday, 8&ndash;10 AM?</div>"
    "<div>Receiving closes at 2 PM &amp; the consignee needs 24h notice.</div>"
    "<p>Thanks,<br>Dana Whitfield<br>Acme Foods Logistics</p>"
    "<style>p { margin: 0 }</style>"
)

INBOUND_RECEIVED = _event(
    "inbound_received",
    "inbound",
    "evt_3f9a1c2b",
    1773151512.345,
    conversation=_conversation("unassigned", None, []),
    source={"_meta": {"type": "inboxes"}, "data": [DISPATCH_INBOX]},
    target={
        "_meta": {"type": "message"},
        "data": {
            "_links": {
                "self": f"{API}/messages/{INBOUND_MESSAGE_ID}",
                "related": {"conversation": f"{API}/conversations/{CONVERSATION_ID}"},
            },
            "id": INBOUND_MESSAGE_ID,
            "type": "email",
            "is_inbound": True,
            "draft_mode": None,
            "error_type": None,
            "version": None,
            "created_at": 1773151510.0,
            "subject": SUBJECT,
            "blurb": f"Hi Dispatch, Can we get a delivery appointment for load {LOAD_NUMBER} (PRO {PRO_NUMBER})…",
            "author": None,
            "recipients": [
                SHIPPER_RECIPIENT,
                {
                    "_links": {"related": {"contact": None}},
                    "name": "Apex Dispatch",
                    "handle": DISPATCH_EMAIL,
                    "role": "to",
                },
            ],
            # No `text` here: the connector renders the HTML body itself.
            "body": INBOUND_BODY_HTML,
            "attachments": [
                {
                    "id": "fil_0a9s8d",
                    "filename": f"BOL-{LOAD_NUMBER}.pdf",
                    "url": f"{API}/download/fil_0a9s8d",
                    "content_type": "application/pdf",
                    "size": 48213,
                    "metadata": {"is_inline": False},
                }
            ],
            "metadata": {"headers": {"in_reply_to": None}},
        },
    },
)

ASSIGNEE_CHANGED = _event(
    "assignee_changed",
    "assign",
    "evt_3f9a1c7d",
    1773151600.12,
    conversation=_conversation("assigned", MARIA, []),
    source={"_meta": {"type": "rule"}, "data": ASSIGNMENT_RULE},
    target={"_meta": {"type": "teammate"}, "data": MARIA},
)

TAG_ADDED = _event(
    "tag_added",
    "tag",
    "evt_3f9a1c9e",
    1773151622.5,
    conversation=_conversation("assigned", MARIA, [APPOINTMENT_TAG]),
    source={"_meta": {"type": "teammate"}, "data": MARIA},
    target={"_meta": {"type": "tag"}, "data": APPOINTMENT_TAG},
)

NEW_COMMENT_ADDED = _event(
    "new_comment_added",
    "comment",
    "evt_3f9a1d0f",
    1773151755.0,
    conversation=_conversation("assigned", MARIA, [APPOINTMENT_TAG]),
    source={"_meta": {"type": "teammate"}, "data": MARIA},
    target={
        "_meta": {"type": "comment"},
        "data": {
            "_links": {
                "self": f"{API}/comments/{COMMENT_ID}",
                "related": {"conversation": f"{API}/conversations/{CONVERSATION_ID}"},
            },
            "id": COMMENT_ID,
            "author": MARIA,
            "body": f"@scarter Columbus DC confirmed Thu 09:00, appt #A-77812. Carrier ETA fits; PRO {PRO_NUMBER}.",
            "posted_at": 1773151755.0,
            "attachments": [],
            "is_pinned": False,
        },
    },
)

OUTBOUND_SENT = _event(
    "outbound_sent",
    "outbound",
    "evt_3f9a1d6a",
    1773151950.777,
    conversation=_conversation("assigned", MARIA, [APPOINTMENT_TAG]),
    source={"_meta": {"type": "inboxes"}, "data": [DISPATCH_INBOX]},
    target={
        "_meta": {"type": "message"},
        "data": {
            "_links": {
                "self": f"{API}/messages/{OUTBOUND_MESSAGE_ID}",
                "related": {"conversation": f"{API}/conversations/{CONVERSATION_ID}"},
            },
            "id": OUTBOUND_MESSAGE_ID,
            "type": "email",
            "is_inbound": False,
            "draft_mode": None,
            "error_type": None,
            "created_at": 1773151950.0,
            "subject": f"Re: {SUBJECT}",
            "blurb": "Hi Dana, you're booked for Thursday 9:00 AM at Columbus DC…",
            "author": MARIA,
            "recipients": [
                {
                    "_links": {"related": {"contact": None}},
                    "name": "Apex Dispatch",
                    "handle": DISPATCH_EMAIL,
                    "role": "from",
                },
                {**SHIPPER_RECIPIENT, "role": "to"},
                {
                    "_links": {"related": {"contact": f"{API}/contacts/crd_1z2x3c"}},
                    "name": "Columbus Receiving",
                    "handle": "receiving.cmh@acmefoods.example",
                    "role": "cc",
                },
            ],
            "body": (
                "<p>Hi Dana,</p><p>You're booked for <b>Thursday 9:00 AM</b> at Columbus DC, "
                f"appointment #A-77812 for load {LOAD_NUMBER} (PRO {PRO_NUMBER}).</p><p>Maria</p>"
            ),
            "text": (
                "Hi Dana,\n\nYou're booked for Thursday 9:00 AM at Columbus DC, "
                f"appointment #A-77812 for load {LOAD_NUMBER} (PRO {PRO_NUMBER}).\n\nMaria"
            ),
            "attachments": [],
            "metadata": {"headers": {"in_reply_to": "<CAF1x9@mail.acmefoods.example>"}},
        },
    },
)

CONVERSATION_ARCHIVED = _event(
    "conversation_archived",
    "archive",
    "evt_3f9a1e21",
    1773152400.25,
    conversation=_conversation("archived", MARIA, [APPOINTMENT_TAG]),
    source={"_meta": {"type": "teammate"}, "data": MARIA},
    target=None,
)

#: What Front sends, with the X-Front-Challenge header, when the webhook is saved.
SYNC: dict[str, Any] = {"type": "sync", "authorization": {"id": COMPANY_ID}}

#: Every sample event by application webhook type, in the order they happen.
EVENTS: dict[str, dict[str, Any]] = {
    "inbound_received": INBOUND_RECEIVED,
    "assignee_changed": ASSIGNEE_CHANGED,
    "tag_added": TAG_ADDED,
    "new_comment_added": NEW_COMMENT_ADDED,
    "outbound_sent": OUTBOUND_SENT,
    "conversation_archived": CONVERSATION_ARCHIVED,
}


def events() -> list[dict[str, Any]]:
    """Deep copies of the sample events, in the order they happen."""
    return [copy.deepcopy(event) for event in EVENTS.values()]


def encode(event: dict[str, Any]) -> bytes:
    """A body as Front sends it: compact UTF-8 JSON."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign(body: bytes, secret: str, timestamp_ms: int | None = None) -> dict[str, str]:
    """The headers Front sends with `body` for an application webhook signed with `secret`."""
    timestamp = str(int(time.time() * 1000) if timestamp_ms is None else timestamp_ms)
    return {
        "X-Front-Signature": application_signature(body, secret, timestamp),
        "X-Front-Request-Timestamp": timestamp,
        "Content-Type": "application/json",
    }
