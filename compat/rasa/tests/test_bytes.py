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
from conftest import rasa_body, run_rasa_bytes

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


# Old shapes that are still in people's databases and exports: Rasa reads all of them. We read them
# losslessly (key order and absent keys kept, DESIGN.md), so for these the bytes are not Rasa's canonical
# form; what must hold is that Rasa reads our bytes as the same event it reads from the original.
OLD_SHAPES: List[Tuple[str, Dict[str, Any]]] = [
    ("export_sender_last", {"event": "slot", "timestamp": 1600000000.5, "name": "x", "value": "ü", "sender_id": "exp"}),
    ("form", {"sender_id": "old", "event": "form", "timestamp": 1500000000.5, "name": "restaurant_form"}),
    ("form_validation", {"sender_id": "old", "event": "form_validation", "timestamp": 1500000000.5, "validate": True}),
    ("action_2x", {"sender_id": "old", "event": "action", "timestamp": 1600000000, "name": "action_listen", "policy": None, "confidence": None}),
    ("bot_1x", {"sender_id": "old", "event": "bot", "timestamp": 1500000000.25, "text": "hi", "data": {"elements": None, "buttons": None, "attachment": None}}),
    ("user_2x", {"sender_id": "old", "event": "user", "timestamp": 1600000000.75, "text": "hey", "parse_data": {"intent": {"name": "greet", "confidence": 0.9}, "entities": [], "text": "hey"}, "input_channel": None}),
    ("reminder_cancelled_by_name", {"sender_id": "old", "event": "cancel_reminder", "timestamp": 1600000000.0}),
]


@pytest.mark.parametrize("label,raw", OLD_SHAPES, ids=[label for label, _ in OLD_SHAPES])
def test_old_shapes_mean_the_same_event_to_rasa(label: str, raw: Dict[str, Any]) -> None:
    body = json.dumps(raw)
    (our_body,) = run_rasa_bytes([body])
    assert not our_body.startswith("error:"), our_body
    ours = json.loads(our_body)
    theirs = dict(raw)
    assert ours.pop("sender_id") == theirs.pop("sender_id")
    assert list(json.loads(our_body))[0] == "sender_id", "we write sender_id first"
    rasa_from_ours = Event.from_parameters(ours)
    rasa_from_original = Event.from_parameters(theirs)
    assert rasa_from_ours is not None and rasa_from_original is not None
    assert rasa_from_ours.as_dict() == rasa_from_original.as_dict()
    assert rasa_from_ours.type_name == rasa_from_original.type_name or label in ("form", "form_validation")


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
