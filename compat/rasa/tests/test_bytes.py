"""(a) Bytes: our event model writes exactly what Rasa publishes, and Rasa re-reads what we write unchanged.

Rasa side: events built with Rasa 3.6.21's own classes, serialised as `PikaEventBroker` does
(`json.dumps({"sender_id": id, **event.as_dict()})`). Our side: `Envelope::from_json` + `to_rasa_json`
through the `rasa_bytes` example.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Tuple

import pytest
from rasa.shared.core.events import Event

import corpus
from conftest import REPO, rasa_body, run_rasa_bytes

EVENTS = corpus.rich_events()
CASES: List[Tuple[str, str]] = [
    (f"{label}@{index % len(corpus.SENDER_IDS)}", rasa_body(corpus.SENDER_IDS[index % len(corpus.SENDER_IDS)], event.as_dict()))
    for index, (label, event) in enumerate(EVENTS)
]


@pytest.fixture(scope="module")
def ours() -> Dict[str, str]:
    """Our bytes for every case, from one run of `rasa_bytes`."""
    return dict(zip([label for label, _ in CASES], run_rasa_bytes([body for _, body in CASES])))


def rasa_reserialise(body: str) -> str:
    """What Rasa makes of a body: `Event.from_parameters`, then the broker serialisation again."""
    parameters: Dict[str, Any] = json.loads(body)
    sender_id = parameters.pop("sender_id")
    event = Event.from_parameters(parameters)
    assert event is not None, f"Rasa could not read {body}"
    return rasa_body(sender_id, event.as_dict())


def test_the_corpus_covers_every_rasa_event_type() -> None:
    from rasa.shared.utils.common import all_subclasses

    known = {cls.type_name for cls in all_subclasses(Event)} - {"event"}
    written = {json.loads(body)["event"] for _, body in CASES}
    read = {event.type_name for _, event in EVENTS}
    assert known - (written | read) == set(), "event types without a case"


@pytest.mark.parametrize("label,body", CASES, ids=[label for label, _ in CASES])
def test_rasa_bytes_are_our_bytes(label: str, body: str, ours: Dict[str, str]) -> None:
    """Rasa's published body, read and written by us, comes out byte for byte the same."""
    assert ours[label] == body


@pytest.mark.parametrize("label,body", CASES, ids=[label for label, _ in CASES])
def test_rasa_reads_our_bytes_back_unchanged(label: str, body: str, ours: Dict[str, str]) -> None:
    """Our body, read by Rasa's `Event.from_parameters` and re-serialised by Rasa, is the same bytes."""
    if ours[label].startswith("error:"):
        pytest.fail(ours[label])
    assert rasa_reserialise(ours[label]) == ours[label]


@pytest.mark.parametrize("body", [json.dumps(body) for body in corpus.PRO_LIKE], ids=[b["event"] for b in corpus.PRO_LIKE])
def test_rasa_pro_and_unknown_events_pass_through(body: str) -> None:
    """Types and keys Rasa 3.6 does not know (Rasa Pro: top-level `user_id`, `flow_started`, ...) are kept
    byte for byte — they are Python `json.dumps` output too."""
    assert run_rasa_bytes([body]) == [body]


# Old shapes that are still in people's databases, exports and tracker dumps (Rasa 1.x/2.x: other key orders,
# an `action` without `action_text`/`hide_rule_turn`, `null` where 3.6 writes `{}`, a `parse_data` without some
# of its keys, legacy types). Rasa reads each and writes it back in its 3.6 form (its key order, its defaults for
# the keys it always writes); so do we: our Rasa-form bytes are Rasa's bytes. Every timestamp is non-zero
# (Rasa replaces a zero or absent one by the current time). Our own fixtures, modelled on Rasa's
# data/test_trackers/tracker_moodbot.json (whose events are below too).
OLD_SHAPES: List[Tuple[str, Dict[str, Any]]] = [
    ("action_1x_timestamp_first", {"timestamp": 1517821726.211031, "event": "action", "name": "action_listen", "action_text": None, "policy": None, "confidence": None}),
    ("action_1x_no_action_text", {"event": "action", "timestamp": 1517821726.5, "name": "action_listen", "policy": None, "confidence": None}),
    ("action_2x_no_hide_rule_turn", {"event": "action", "timestamp": 1600000000, "name": "utter_greet", "policy": "policy_1_TEDPolicy", "confidence": 0.8, "action_text": None}),
    ("action_metadata_late", {"event": "action", "name": "a", "timestamp": 1600000000.5, "metadata": {"model_id": "m"}}),
    ("action_metadata_empty", {"event": "action", "timestamp": 1600000000.5, "metadata": {}, "name": "a", "policy": None, "confidence": None, "action_text": None, "hide_rule_turn": False}),
    ("user_1x", {"timestamp": 1517821726.200036, "metadata": {}, "parse_data": {"entities": [], "intent": {"confidence": 0.54, "name": "greet"}, "message_id": None, "metadata": {}, "text": "/greet", "intent_ranking": [{"confidence": 0.54, "name": "greet"}, {"confidence": 0.31, "name": "goodbye"}]}, "event": "user", "text": "/greet", "input_channel": None, "message_id": None}),
    ("user_2x_short_parse_data", {"event": "user", "timestamp": 1600000000.75, "text": "hey", "parse_data": {"intent": {"name": "greet", "confidence": 0.9}, "entities": [], "text": "hey"}, "input_channel": None}),
    ("user_parse_data_defaults_from_event", {"event": "user", "timestamp": 1600000001.25, "text": "hi there", "message_id": "m1", "metadata": {"source": "web"}, "input_channel": "rest", "parse_data": {"intent_ranking": [], "intent": {"name": "greet"}, "response_selector": {"default": {}}}}),
    ("user_metadata_null", {"event": "user", "timestamp": 1600000001.5, "text": "hi", "parse_data": {"intent": None, "entities": None, "text": "hi"}, "metadata": None}),
    ("user_only_text", {"event": "user", "timestamp": 1600000001.75, "text": "hi", "parse_data": {}}),
    ("bot_1x_partial_data", {"event": "bot", "timestamp": 1500000000.25, "text": "hi", "data": {"elements": None, "buttons": None, "attachment": None}}),
    ("bot_data_and_metadata_null", {"timestamp": 1500000000.5, "event": "bot", "text": "hi", "data": None, "metadata": None}),
    ("bot_without_data", {"event": "bot", "timestamp": 1500000000.75, "text": None}),
    ("slot_timestamp_first", {"timestamp": 1500000001, "name": "cuisine", "event": "slot", "value": "indian"}),
    ("slot_without_value", {"event": "slot", "timestamp": 1500000001.5, "name": "cuisine"}),
    ("form_legacy", {"event": "form", "timestamp": 1500000000.5, "name": "restaurant_form"}),
    ("form_legacy_off", {"event": "form", "timestamp": 1500000000.5}),
    ("form_validation_legacy", {"event": "form_validation", "timestamp": 1500000000.5, "validate": True}),
    ("form_validation_legacy_false", {"timestamp": 1500000000.5, "validate": False, "event": "form_validation"}),
    ("form_validation_legacy_default", {"event": "form_validation", "timestamp": 1500000000.5}),
    ("loop_interrupted_default", {"event": "loop_interrupted", "timestamp": 1600000000.5}),
    ("active_loop_without_name", {"event": "active_loop", "timestamp": 1600000000.5}),
    ("reminder_defaults", {"event": "reminder", "timestamp": 1600000000.5, "name": "r1", "intent": "remind", "date_time": "2020-05-01T10:00:00+02:00"}),
    ("rejected_name_only", {"event": "action_execution_rejected", "timestamp": 1600000000.5, "name": "restaurant_form"}),
    ("agent_without_data", {"event": "agent", "timestamp": 1600000000.5, "text": "hello"}),
    ("followup_order", {"name": "action_greet", "event": "followup", "timestamp": 1600000000.5}),
    ("pause_metadata_null", {"event": "pause", "timestamp": 1600000000.5, "metadata": None}),
    ("session_started_metadata_empty", {"metadata": {}, "event": "session_started", "timestamp": 1600000000.5}),
    ("entities_order", {"entities": [{"value": "Paris", "entity": "city"}], "timestamp": 1600000000.5, "event": "entities"}),
]
MOODBOT = json.loads((REPO / "crates/events/tests/fixtures/trackers/rasa_tracker_moodbot.json").read_text())
OLD_SHAPES += [(f"moodbot_{i}_{e['event']}", e) for i, e in enumerate(MOODBOT["events"])]


@pytest.mark.parametrize("label,raw", OLD_SHAPES, ids=[label for label, _ in OLD_SHAPES])
def test_old_shapes_come_out_in_rasa_3_6_form(label: str, raw: Dict[str, Any]) -> None:
    """Our bytes for an old-shape event == Rasa's `Event.from_parameters(..).as_dict()` as its broker writes it,
    whether `sender_id` comes first (a broker body) or last (`rasa export`)."""
    event = Event.from_parameters(dict(raw))
    assert event is not None
    theirs = rasa_body("old", event.as_dict())
    first, last = json.dumps({"sender_id": "old", **raw}), json.dumps({**raw, "sender_id": "old"})
    assert run_rasa_bytes([first, last]) == [theirs, theirs]


# Keys Rasa does not know: Rasa drops them; we keep them, after Rasa's keys, in the order read.
UNKNOWN_KEYS: List[Tuple[str, Dict[str, Any], List[str]]] = [
    ("action", {"zz": 1, "timestamp": 1600000000.5, "event": "action", "name": "a", "x_custom": [1]}, ["zz", "x_custom"]),
    ("cancel_reminder_by_name", {"event": "cancel_reminder", "timestamp": 1600000000.0, "name": "r1", "intent": None}, ["name", "intent"]),
    ("export_path", {"path": "stories.yml", "event": "export", "timestamp": 1600000000.0}, ["path"]),
]


@pytest.mark.parametrize("label,raw,extra", UNKNOWN_KEYS, ids=[label for label, _, _ in UNKNOWN_KEYS])
def test_unknown_keys_follow_rasas(label: str, raw: Dict[str, Any], extra: List[str]) -> None:
    event = Event.from_parameters(dict(raw))
    assert event is not None
    theirs = rasa_body("old", event.as_dict())
    (ours,) = run_rasa_bytes([json.dumps({"sender_id": "old", **raw})])
    assert ours == theirs[:-1] + "".join(f", {json.dumps(k)}: {json.dumps(raw[k])}" for k in extra) + "}"


def test_export_form_is_what_rasa_export_publishes() -> None:
    """`rasa export` publishes `Exporter._get_events_for_conversation_id`'s dicts (the event's `as_dict()` with
    `sender_id` added last) through `PikaEventBroker._message` (`json.dumps`); our export form is those bytes."""
    from rasa.core.exporter import Exporter

    bodies = [body for _, body in CASES] + [json.dumps({"sender_id": "old", **raw}) for _, raw in OLD_SHAPES]
    theirs = []
    for body in bodies:
        parameters = json.loads(body)
        sender_id = parameters.pop("sender_id")
        event = Event.from_parameters(parameters)
        (exported,) = Exporter._get_events_for_conversation_id([event.as_dict()], sender_id)
        theirs.append(json.dumps(exported))
    assert run_rasa_bytes(bodies, export=True) == theirs


BIG_INTEGERS = [
    ("ns_timestamp", 1700000000123456789),
    ("u64_max", 18446744073709551615),
    ("i64_min", -9223372036854775808),
    ("beyond_u64", 18446744073709551616),
    ("iban_like", 12345678901234567890123),
    ("below_i64", -9223372036854775809),
]


@pytest.mark.parametrize("label,value", BIG_INTEGERS, ids=[label for label, _ in BIG_INTEGERS])
def test_big_integers_are_kept_exactly(label: str, value: int) -> None:
    """Python ints have no size limit and json.dumps writes them digit for digit (a slot holding an account
    number, a Unix time in nanoseconds...); Rasa reads them back as the same int."""
    body = json.dumps({"sender_id": "n", "event": "slot", "timestamp": 1700000000.0, "name": label, "value": value})
    assert run_rasa_bytes([body]) == [body]


def test_bad_input_is_reported_with_its_line_number() -> None:
    good = rasa_body("x", EVENTS[0][1].as_dict())
    out = run_rasa_bytes([good, "{not json", '{"event": "user"}', good])
    assert out[0] == good and out[3] == good
    assert out[1].startswith("error: line 2: ")
    assert out[2].startswith("error: line 3: ") and "sender_id" in out[2]
