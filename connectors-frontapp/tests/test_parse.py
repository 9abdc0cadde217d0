"""parse(): the records, entities and relations of each sample event, and defensive parsing."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from apex_connector_frontapp import FrontConnector, samples
from apex_platform.errors import PayloadError
from apex_platform.models import InboundEvent, Record

RecordsOf = Callable[[str], dict[str, Record]]
Deliver = Callable[[dict[str, Any]], InboundEvent]

CONV = "Conversation:cnv_a1b2c3d4"
DANA = "Contact:dana.whitfield@acmefoods.example"
DISPATCH = "Contact:dispatch@apex-logistics.example"
MARIA = "Teammate:tea_4m2n"
TAG = "Tag:tag_2b3c"
SUBJECT = samples.SUBJECT


def refs(record: Record) -> set[str]:
    return {entity.ref for entity in record.entities}


def edges(record: Record) -> set[tuple[str, str, str]]:
    return {(r.src, r.type, r.dst) for r in record.relations}


def entity(record: Record, ref: str) -> dict[str, Any]:
    return next(e.properties for e in record.entities if e.ref == ref)


def test_inbound_received(records_of: RecordsOf) -> None:
    records = records_of("inbound_received")
    assert list(records) == ["frontapp.event", "frontapp.conversation", "frontapp.message"]

    event = records["frontapp.event"]
    assert event.source == "frontapp"
    assert event.id == "evt_3f9a1c2b"
    assert event.version == 1773151512345000
    assert event.occurred_at == datetime(2026, 3, 10, 14, 5, 12, 345000, tzinfo=UTC)
    assert event.title == f"inbound_received: {SUBJECT}"
    assert event.text.startswith(f"Inbound message received in conversation “{SUBJECT}” (cnv_a1b2c3d4).")
    assert "By: inbox Dispatch" in event.text
    assert "From: Dana Whitfield <dana.whitfield@acmefoods.example>" in event.text
    assert "load 4471823 (PRO 0286-55431)" in event.text
    assert event.attributes["event_type"] == "inbound_received"
    assert event.attributes["front_event_type"] == "inbound"
    assert event.attributes["company_id"] == "cmp_9f3e2"
    assert event.attributes["conversation_id"] == "cnv_a1b2c3d4"
    assert event.attributes["message_id"] == "msg_1q2w3e4r"
    assert event.attributes["status"] == "unassigned"
    assert event.attributes["source_type"] == "inboxes"
    assert event.attributes["source_id"] == "inb_5x3k2"
    assert "assignee_id" not in event.attributes  # unassigned: absent, not null
    assert refs(event) == {CONV, DANA, DISPATCH, "Inbox:inb_5x3k2", "Message:msg_1q2w3e4r"}
    assert (CONV, "IN_INBOX", "Inbox:inb_5x3k2") in edges(event)

    conversation = records["frontapp.conversation"]
    assert conversation.id == "cnv_a1b2c3d4"
    assert conversation.version == event.version
    assert conversation.title == SUBJECT
    assert conversation.attributes["status"] == "unassigned"
    assert conversation.attributes["contact"] == "dana.whitfield@acmefoods.example"
    assert conversation.attributes["last_event_id"] == "evt_3f9a1c2b"
    assert edges(conversation) == {(CONV, "WITH_CONTACT", DANA)}

    message = records["frontapp.message"]
    assert message.id == "msg_1q2w3e4r"
    assert message.version == event.version
    assert message.occurred_at == datetime(2026, 3, 10, 14, 5, 10, tzinfo=UTC)  # the message's created_at
    assert message.title == SUBJECT
    assert message.text == (
        "Hi Dispatch,\n\n"
        "Can we get a delivery appointment for load 4471823 (PRO 0286-55431) at our Columbus DC "
        "on Thursday, 8\u201310 AM?\n\n"
        "Receiving closes at 2 PM & the consignee needs 24h notice.\n\n"
        "Thanks,\nDana Whitfield\nAcme Foods Logistics"
    )
    assert "<" not in message.text
    assert "margin" not in message.text  # <style> content dropped
    assert message.attributes["direction"] == "inbound"
    assert message.attributes["from"] == "Dana Whitfield <dana.whitfield@acmefoods.example>"
    assert message.attributes["to"] == ["Apex Dispatch <dispatch@apex-logistics.example>"]
    assert message.attributes["attachments"] == ["BOL-4471823.pdf"]
    assert message.attributes["conversation_id"] == "cnv_a1b2c3d4"
    assert edges(message) == {
        ("Message:msg_1q2w3e4r", "PART_OF", CONV),
        (DANA, "SENT", "Message:msg_1q2w3e4r"),
        ("Message:msg_1q2w3e4r", "SENT_TO", DISPATCH),
    }
    assert entity(message, DANA) == {"name": "Dana Whitfield", "handle": "dana.whitfield@acmefoods.example"}
    sent_to = next(r for r in message.relations if r.type == "SENT_TO")
    assert sent_to.properties == {"role": "to"}


def test_assignee_changed(records_of: RecordsOf) -> None:
    records = records_of("assignee_changed")
    assert list(records) == ["frontapp.event", "frontapp.conversation"]
    event = records["frontapp.event"]
    assert event.id == "evt_3f9a1c7d"
    assert event.version == 1773151600120000
    assert event.title == f"assignee_changed: {SUBJECT}"
    assert "By: rule Round-robin dispatch" in event.text
    assert "Assigned to: Maria Lopez <maria.lopez@apex-logistics.example>" in event.text
    assert event.attributes["target_type"] == "teammate"
    assert event.attributes["target_id"] == "tea_4m2n"
    assert event.attributes["source_type"] == "rule"
    assert refs(event) == {CONV, MARIA, DANA, "Rule:rul_3h4j"}
    assert (CONV, "ASSIGNED_TO", MARIA) in edges(event)
    assert entity(event, MARIA) == {"name": "Maria Lopez", "email": "maria.lopez@apex-logistics.example"}

    conversation = records["frontapp.conversation"]
    assert conversation.attributes["status"] == "assigned"
    assert conversation.attributes["assignee_id"] == "tea_4m2n"
    assert conversation.attributes["assignee"] == "Maria Lopez <maria.lopez@apex-logistics.example>"
    assert edges(conversation) == {(CONV, "ASSIGNED_TO", MARIA), (CONV, "WITH_CONTACT", DANA)}


def test_tag_added(records_of: RecordsOf) -> None:
    records = records_of("tag_added")
    assert list(records) == ["frontapp.event", "frontapp.conversation"]
    event = records["frontapp.event"]
    assert event.version == 1773151622500000
    assert "Tag added: Appointment" in event.text
    assert "By: Maria Lopez <maria.lopez@apex-logistics.example>" in event.text
    assert event.attributes["tag"] == "Appointment"
    assert (CONV, "TAGGED", TAG) in edges(event)
    assert entity(event, TAG) == {"name": "Appointment"}
    conversation = records["frontapp.conversation"]
    assert conversation.attributes["tags"] == ["Appointment"]
    assert conversation.attributes["tag_ids"] == ["tag_2b3c"]
    assert (CONV, "TAGGED", TAG) in edges(conversation)


def test_new_comment_added(records_of: RecordsOf) -> None:
    records = records_of("new_comment_added")
    assert list(records) == ["frontapp.event", "frontapp.conversation", "frontapp.comment"]
    comment = records["frontapp.comment"]
    assert comment.id == "com_9o8i7u"
    assert comment.version == 1773151755000000
    assert comment.title == f"Comment on: {SUBJECT}"
    assert comment.text == "@scarter Columbus DC confirmed Thu 09:00, appt #A-77812. Carrier ETA fits; PRO 0286-55431."
    assert comment.attributes["author_id"] == "tea_4m2n"
    assert comment.attributes["conversation_id"] == "cnv_a1b2c3d4"
    assert edges(comment) == {("Comment:com_9o8i7u", "PART_OF", CONV), ("Comment:com_9o8i7u", "AUTHORED_BY", MARIA)}
    event = records["frontapp.event"]
    assert event.attributes["comment_id"] == "com_9o8i7u"
    assert "Comment by Maria Lopez" in event.text


def test_outbound_sent(records_of: RecordsOf) -> None:
    records = records_of("outbound_sent")
    assert list(records) == ["frontapp.event", "frontapp.conversation", "frontapp.message"]
    message = records["frontapp.message"]
    assert message.id == "msg_5t6y7u8i"
    assert message.version == 1773151950777000
    assert message.title == f"Re: {SUBJECT}"
    # Front's own plain text wins over the HTML body when present.
    assert message.text == (
        "Hi Dana,\n\nYou're booked for Thursday 9:00 AM at Columbus DC, appointment #A-77812 "
        "for load 4471823 (PRO 0286-55431).\n\nMaria"
    )
    assert message.attributes["direction"] == "outbound"
    assert message.attributes["author"] == "Maria Lopez <maria.lopez@apex-logistics.example>"
    assert message.attributes["cc"] == ["Columbus Receiving <receiving.cmh@acmefoods.example>"]
    msg = "Message:msg_5t6y7u8i"
    assert edges(message) == {
        (msg, "PART_OF", CONV),
        (msg, "AUTHORED_BY", MARIA),
        (DISPATCH, "SENT", msg),
        (msg, "SENT_TO", DANA),
        (msg, "SENT_TO", "Contact:receiving.cmh@acmefoods.example"),
    }


def test_conversation_archived(records_of: RecordsOf) -> None:
    records = records_of("conversation_archived")
    assert list(records) == ["frontapp.event", "frontapp.conversation"]
    event = records["frontapp.event"]
    assert event.title == f"conversation_archived: {SUBJECT}"
    assert event.text.startswith(f"Conversation archived: “{SUBJECT}” (cnv_a1b2c3d4).")
    assert "target_type" not in event.attributes
    conversation = records["frontapp.conversation"]
    assert conversation.version == 1773152400250000
    assert conversation.attributes["status"] == "archived"
    assert conversation.text == (
        f"Conversation “{SUBJECT}”: status archived; assignee Maria Lopez <maria.lopez@apex-logistics.example>; "
        "tags Appointment; contact Dana Whitfield <dana.whitfield@acmefoods.example>."
    )


def test_conversation_versions_follow_the_event_order(connector: FrontConnector, deliver: Deliver) -> None:
    versions = [
        next(r.version for r in connector.parse(deliver(event)) if r.kind == "frontapp.conversation")
        for event in samples.events()
    ]
    assert versions == sorted(versions)
    assert len(set(versions)) == len(versions)


# -- idempotency ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(samples.EVENTS))
def test_same_event_twice_gives_equal_records(connector: FrontConnector, name: str) -> None:
    def once(received_at: datetime) -> list[Record]:
        event = InboundEvent(
            source="frontapp", event_id="x", received_at=received_at, payload=copy.deepcopy(samples.EVENTS[name])
        )
        return connector.parse(event)

    # Received at different times (Front's retry): identical records, identical keys.
    first = once(datetime(2026, 3, 10, 14, 5, 13, tzinfo=UTC))
    second = once(datetime(2026, 3, 11, 9, 0, 0, tzinfo=UTC))
    assert first == second
    assert [r.idempotency_key for r in first] == [r.idempotency_key for r in second]


def test_version_comes_from_emitted_at_only(connector: FrontConnector, deliver: Deliver) -> None:
    later = copy.deepcopy(samples.INBOUND_RECEIVED)
    later["payload"]["emitted_at"] = 1773151512.346
    a = connector.parse(deliver(samples.INBOUND_RECEIVED))
    b = connector.parse(deliver(later))
    assert [r.version for r in b] == [v + 1000 for v in (r.version for r in a)]


def test_records_round_trip_through_json(records_of: RecordsOf) -> None:
    for name in samples.EVENTS:
        for record in records_of(name).values():
            assert Record.model_validate_json(record.model_dump_json()) == record


# -- defensive parsing ------------------------------------------------------------------------


def test_unknown_event_type_still_gives_the_event_record(connector: FrontConnector, deliver: Deliver) -> None:
    doc = {
        "type": "ticket_status_updated",
        "authorization": {"id": "cmp_9f3e2"},
        "payload": {"id": "evt_new1", "type": "something_new", "emitted_at": 1773151600.5, "future": {"x": 1}},
    }
    records = connector.parse(deliver(doc))
    assert len(records) == 1
    (event,) = records
    assert event.kind == "frontapp.event"
    assert event.id == "evt_new1"
    assert event.version == 1773151600500000
    assert event.title == "ticket_status_updated"
    assert event.text == "Ticket status updated."
    assert event.attributes == {
        "event_type": "ticket_status_updated",
        "front_event_type": "something_new",
        "webhook_type": "ticket_status_updated",
        "company_id": "cmp_9f3e2",
        "emitted_at": "2026-03-10T14:06:40.500000+00:00",
    }
    assert event.entities == ()


def test_minimal_bare_event(connector: FrontConnector, deliver: Deliver) -> None:
    (event,) = connector.parse(deliver({"id": "evt_1", "emitted_at": 0}))
    assert event.title == "unknown"
    assert event.version == 0
    assert event.occurred_at == datetime(1970, 1, 1, tzinfo=UTC)


def test_rule_webhook_preview(connector: FrontConnector, deliver: Deliver) -> None:
    # A preview: ids and links only, no bodies, no recipients.
    preview = {
        "_links": {"self": "https://x.api.frontapp.com/events/evt_9"},
        "id": "evt_9",
        "type": "inbound",
        "emitted_at": 1773151512.0,
        "conversation": {"id": "cnv_9", "_links": {"self": "https://x/conversations/cnv_9"}},
        "target": {
            "_meta": {"type": "message"},
            "data": {"id": "msg_9", "_links": {"self": "https://x/messages/msg_9"}},
        },
    }
    records = connector.parse(deliver(preview))
    assert [(r.kind, r.id) for r in records] == [
        ("frontapp.event", "evt_9"),
        ("frontapp.conversation", "cnv_9"),
        ("frontapp.message", "msg_9"),
    ]
    message = records[2]
    assert message.text == ""
    assert message.attributes["direction"] == "inbound"
    assert edges(message) == {("Message:msg_9", "PART_OF", "Conversation:cnv_9")}


def test_null_and_wrongly_typed_parts_are_ignored(connector: FrontConnector, deliver: Deliver) -> None:
    doc = copy.deepcopy(samples.INBOUND_RECEIVED)
    payload = doc["payload"]
    payload["source"] = None
    payload["conversation"]["tags"] = "not a list"
    payload["conversation"]["assignee"] = ["nope"]
    payload["conversation"]["recipient"] = 7
    payload["target"]["data"]["recipients"] = [None, 1, {"role": "to"}, {"handle": ["x"]}]
    payload["target"]["data"]["body"] = None
    payload["target"]["data"]["created_at"] = "yesterday"
    records = connector.parse(deliver(doc))
    assert [r.kind for r in records] == ["frontapp.event", "frontapp.conversation", "frontapp.message"]
    message = records[2]
    assert message.text == message.attributes["blurb"]  # falls back to the blurb
    assert message.occurred_at == records[0].occurred_at  # falls back to the event time
    assert edges(message) == {("Message:msg_1q2w3e4r", "PART_OF", CONV)}


def test_unassign_without_target(connector: FrontConnector, deliver: Deliver) -> None:
    doc = copy.deepcopy(samples.ASSIGNEE_CHANGED)
    doc["payload"]["type"] = "unassign"
    doc["payload"]["target"] = None
    doc["payload"]["conversation"]["assignee"] = None
    doc["payload"]["conversation"]["status"] = "unassigned"
    event, conversation = connector.parse(deliver(doc))
    assert "Unassigned" in event.text
    assert not any(r.type == "ASSIGNED_TO" for r in event.relations + conversation.relations)


def test_tag_removed_makes_no_tagged_edge(connector: FrontConnector, deliver: Deliver) -> None:
    doc = copy.deepcopy(samples.TAG_ADDED)
    doc["type"] = "tag_removed"
    doc["payload"]["type"] = "untag"
    doc["payload"]["conversation"]["tags"] = []
    event, _ = connector.parse(deliver(doc))
    assert "Tag removed: Appointment" in event.text
    assert not any(r.type == "TAGGED" for r in event.relations)
    assert TAG in refs(event)


def test_message_target_found_without_meta(connector: FrontConnector, deliver: Deliver) -> None:
    doc = copy.deepcopy(samples.INBOUND_RECEIVED)
    del doc["payload"]["target"]["_meta"]
    kinds = [r.kind for r in connector.parse(deliver(doc))]
    assert kinds == ["frontapp.event", "frontapp.conversation", "frontapp.message"]


def test_ids_reused_across_parts_do_not_duplicate_record_keys(connector: FrontConnector, deliver: Deliver) -> None:
    doc = copy.deepcopy(samples.INBOUND_RECEIVED)
    doc["payload"]["target"]["data"]["id"] = "cnv_a1b2c3d4"
    records = connector.parse(deliver(doc))
    assert len({r.key for r in records}) == len(records)


def test_payload_by_reference_is_a_payload_error(connector: FrontConnector) -> None:
    event = InboundEvent(source="frontapp", event_id="evt_1", received_at=datetime.now(UTC), payload_ref="blob://abc")
    with pytest.raises(PayloadError, match="blob://abc"):
        connector.parse(event)


def test_payload_without_event_id_is_a_payload_error(connector: FrontConnector) -> None:
    event = InboundEvent(
        source="frontapp", event_id="evt_1", received_at=datetime.now(UTC), payload={"payload": {"emitted_at": 1}}
    )
    with pytest.raises(PayloadError, match=r"'payload\.id'"):
        connector.parse(event)
