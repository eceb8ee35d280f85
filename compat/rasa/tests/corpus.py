"""Realistic Rasa 3.6 events and conversations, built with Rasa's own classes.

Everything here is data: the tests decide what to do with it. Events are built the way Rasa builds them at
run time (constructors, `Event.from_parameters`), so `event.as_dict()` is exactly what Rasa publishes and
stores.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, Iterator, List, Tuple

from rasa.shared.core.events import (
    ActionExecuted,
    ActionExecutionRejected,
    ActionReverted,
    ActiveLoop,
    AgentUttered,
    AllSlotsReset,
    BotUttered,
    ConversationPaused,
    ConversationResumed,
    DefinePrevUserUtteredFeaturization,
    EntitiesAdded,
    Event,
    FollowupAction,
    LegacyForm,
    LegacyFormValidation,
    LoopInterrupted,
    ReminderCancelled,
    ReminderScheduled,
    Restarted,
    SessionStarted,
    SlotSet,
    StoryExported,
    UserUttered,
    UserUtteranceReverted,
)

def domain():
    """The assistant's domain as far as the trackers care: the slot the conversations fill."""
    from rasa.shared.core.domain import Domain

    return Domain.from_dict(
        {
            "entities": ["cuisine"],
            "slots": {"cuisine": {"type": "text", "mappings": [{"type": "from_entity", "entity": "cuisine"}]}},
        }
    )


MODEL = {"model_id": "5c2a1f0e9b7d4d0c8f3e2a1b0c9d8e7f", "assistant_id": "placeholder_default"}

# Python floats of every shape json.dumps distinguishes (repr switches to exponent form below 1e-4 and from
# 1e16 on; integers stay integers).
TIMESTAMPS = [
    1700000000.0,
    1700000000.25,
    1700000000.123456,
    1699999999.9999998,
    1700000001.5000002,
    1e-05,
    1.5e-07,
    1e16,
    9999999999999998.0,
    1.7976931348623157e308,
    5e-324,
    0.30000000000000004,
    1700000000,  # an int timestamp stays an int in Rasa's JSON
    123456789.12345679,
    2.5,
]

NASTY_TEXT = [
    "Grüße aus München — ¿qué tal? ½ € Ω",
    "你好，世界。こんにちは。안녕하세요",
    "emoji 🐍🍺👩‍👩‍👧‍👦🇩🇪 and a flag",
    'quotes " \\ / and \t tab \n newline \r cr \x00 nul \x1f unit \x7f del',
    "line\u2028separator\u2029paragraph \ufeff bom, combining é, rtl مرحبا",
    "",
]

FLOATS = [0.0, -0.0, 1.0, 0.1, 1e-07, 2.5e-05, 0.0001, 1e15, 1e16, 1e21, 1e22, 123456.789, -3.14, 1e100]


def parse_data(
    text: str | None,
    intent: str,
    confidence: float,
    entities: List[Dict[str, Any]] | None = None,
    *,
    full: bool = False,
) -> Dict[str, Any]:
    """What Rasa's NLU produces for a message (the `parse_data` Rasa keeps on the `user` event)."""
    data: Dict[str, Any] = {
        "intent": {"name": intent, "confidence": confidence},
        "entities": entities or [],
        "text": text,
    }
    if full:
        data["intent"]["full_retrieval_intent_name"] = f"{intent}/ask_name"
        data["intent_ranking"] = [
            {"name": intent, "confidence": confidence},
            {"name": "nlu_fallback", "confidence": 0.3},
            {"name": "goodbye", "confidence": 1.2345e-05},
        ]
        data["response_selector"] = {
            "all_retrieval_intents": ["chitchat"],
            "default": {
                "response": {
                    "responses": [{"text": "I am a bot 🤖"}],
                    "confidence": 0.9876,
                    "intent_response_key": "chitchat/ask_name",
                    "utter_action": "utter_chitchat/ask_name",
                },
                "ranking": [{"confidence": 0.9876, "intent_response_key": "chitchat/ask_name"}],
            },
        }
        data["text_tokens"] = [[0, 5], [6, 11]]
    return data


CUISINE = {
    "entity": "cuisine",
    "start": 7,
    "end": 13,
    "confidence_entity": 0.9987,
    "value": "indian",
    "extractor": "DIETClassifier",
    "processors": ["EntitySynonymMapper"],
}
CITY = {
    "entity": "city",
    "start": 22,
    "end": 28,
    "value": "Zürich",
    "extractor": "RegexEntityExtractor",
    "role": "destination",
    "group": "1",
    "additional_info": {"lat": 47.3769, "lon": 8.5417, "names": ["Zürich", "Zurich", "蘇黎世"]},
}
BOT_DATA = {
    "elements": None,
    "quick_replies": None,
    "buttons": [
        {"title": "Ja 👍", "payload": '/affirm{"confirmed": true}'},
        {"title": "Nein", "payload": "/deny"},
    ],
    "attachment": None,
    "image": "https://example.invalid/ärger.png",
    "custom": None,
}


def rich_events() -> List[Tuple[str, Event]]:
    """Every Rasa 3.6 event type, with realistic fields; `(label, event)` pairs for test ids."""
    aware = timezone(timedelta(hours=5, minutes=30))
    events: List[Tuple[str, Event]] = [
        ("action_session_start", ActionExecuted("action_session_start", timestamp=0.5)),
        ("session_started", SessionStarted(metadata=dict(MODEL))),
        ("session_started_plain", SessionStarted()),
        ("action_listen", ActionExecuted("action_listen", "policy_1_RulePolicy", 1.0, metadata=dict(MODEL))),
        (
            "user_full",
            UserUttered(
                "I want indian food in Zürich 🍛",
                {"name": "request_restaurant", "confidence": 0.9412},
                [CUISINE, CITY],
                parse_data(
                    "I want indian food in Zürich 🍛", "request_restaurant", 0.9412, [CUISINE, CITY], full=True
                ),
                input_channel="rest",
                message_id="6f1b0c3e2d7a4b5c9e8f1a2b3c4d5e6f",
                metadata={"source": "web", "user": {"lang": "de-CH", "vip": True}, **MODEL},
            ),
        ),
        ("user_plain", UserUttered("hi")),
        ("user_no_text", UserUttered(None, {"name": "greet", "confidence": 1.0})),
        (
            "user_external",
            UserUttered(
                "EXTERNAL_dry_plant",
                {"name": "EXTERNAL_dry_plant", "confidence": 1.0},
                input_channel="callback",
                metadata={"is_external": True},
            ),
        ),
        ("user_featurization", DefinePrevUserUtteredFeaturization(False, metadata=dict(MODEL))),
        ("entities_added", EntitiesAdded([CUISINE, {"entity": "number", "value": 3, "start": 0, "end": 1}])),
        (
            "bot_buttons",
            BotUttered(
                "Möchtest du reservieren? 🍽",
                dict(BOT_DATA),
                {"utter_action": "utter_ask_reserve", **MODEL},
            ),
        ),
        ("bot_custom", BotUttered(None, {"custom": {"payload": "video", "src": "x.mp4", "ratio": 1.7777777777777777}})),
        ("bot_plain", BotUttered("Hey there!")),
        ("slot_text", SlotSet("name", "Zoë 🐍")),
        ("slot_int", SlotSet("people", 4)),
        ("slot_float", SlotSet("budget", 1234.5)),
        ("slot_floats", SlotSet("scores", FLOATS)),
        ("slot_none", SlotSet("cuisine", None, metadata={"reason": "reset"})),
        ("slot_bool", SlotSet("confirmed", True)),
        (
            "slot_object",
            SlotSet(
                "profile",
                {"名前": "太郎", "emoji🎉": [1, 2.0, "3", None, False], "nested": {"deep": {"deeper": [[]]}}},
            ),
        ),
        ("reset_slots", AllSlotsReset()),
        ("restart", Restarted(metadata=dict(MODEL))),
        ("rewind", UserUtteranceReverted()),
        ("undo", ActionReverted()),
        ("pause", ConversationPaused()),
        ("resume", ConversationResumed()),
        ("followup", FollowupAction("utter_greet")),
        (
            "reminder_aware",
            ReminderScheduled(
                "EXTERNAL_dry_plant",
                datetime(2024, 3, 1, 14, 30, 5, 123456, tzinfo=aware),
                entities=[{"entity": "plant", "value": "Orchidée"}],
                name="remind_water",
                kill_on_user_message=False,
            ),
        ),
        (
            "reminder_utc",
            ReminderScheduled("EXTERNAL_wake_up", datetime(2030, 12, 31, 23, 59, tzinfo=timezone.utc)),
        ),
        ("reminder_naive", ReminderScheduled("EXTERNAL_naive", datetime(2024, 1, 2, 3, 4, 5))),
        ("cancel_reminder", ReminderCancelled(name="remind_water", intent="EXTERNAL_dry_plant")),
        ("export", StoryExported(path="/tmp/stories.yml")),
        ("agent", AgentUttered("agent says hi", {"any": [1, 2.5, {"k": "vé"}]})),
        ("agent_string_data", AgentUttered(None, "just a string")),
        ("active_loop", ActiveLoop("restaurant_form")),
        ("active_loop_off", ActiveLoop(None)),
        ("loop_interrupted", LoopInterrupted(True)),
        ("loop_not_interrupted", LoopInterrupted(False, metadata={"x": 1})),
        ("legacy_form", LegacyForm("restaurant_form")),
        ("legacy_form_off", LegacyForm(None)),
        ("legacy_form_validation_false", LegacyFormValidation(False)),
        ("legacy_form_validation_true", LegacyFormValidation(True)),
        ("rejected", ActionExecutionRejected("restaurant_form", "policy_2_TEDPolicy", 0.7312)),
        ("rejected_bare", ActionExecutionRejected("action_search")),
        (
            "action_e2e",
            ActionExecuted(
                action_text="Sure, here you go ✨",
                policy="policy_0_TEDPolicy",
                confidence=0.5,
                hide_rule_turn=True,
            ),
        ),
        ("action_int_confidence", ActionExecuted("utter_greet", "policy_0_MemoizationPolicy", 1)),
        (
            "action_tiny_confidence",
            ActionExecuted("action_default_fallback", "policy_3_RulePolicy", 2.5e-05, metadata={"utter_action": None}),
        ),
    ]
    # The legacy types as they sit in old databases, read back by Rasa's own reader.
    for label, raw in [
        ("raw_form", {"event": "form", "timestamp": 1500000000.5, "name": "restaurant_form"}),
        ("raw_form_null", {"event": "form", "timestamp": 1500000000.5, "name": None}),
        ("raw_form_validation", {"event": "form_validation", "timestamp": 1500000000.5, "validate": False}),
    ]:
        event = Event.from_parameters(raw)
        assert event is not None
        events.append((label, event))
    for (label, event), timestamp in zip(events, itertools.cycle(TIMESTAMPS)):
        if label not in ("action_session_start",) and not label.startswith("raw_"):
            event.timestamp = timestamp
    for index, text in enumerate(NASTY_TEXT):
        events.append((f"user_text_{index}", UserUttered(text, {"name": "chitchat", "confidence": FLOATS[index]}, metadata={"text": text, text or "empty": text})))
        events.append((f"bot_text_{index}", BotUttered(text, metadata={"utter_action": "utter_echo"})))
    return events


SENDER_IDS = ["default", "c0ffee-Ünïcødé-🐛", 'quote"and\\backslash', "5a7b2c9d-3e1f-4a6b-8c0d-9e8f7a6b5c4d"]

# What Rasa Pro (and future versions) publish: types Rasa 3.6 does not know, a top-level `user_id`, unknown
# keys. A consumer must keep them byte for byte.
PRO_LIKE = [
    {
        "sender_id": "pro-1",
        "user_id": "u-42",
        "event": "flow_started",
        "timestamp": 1700000100.125,
        "metadata": {"rasa_environment": "prod", **MODEL},
        "flow_id": "transfer_money",
    },
    {
        "sender_id": "pro-1",
        "event": "stack",
        "timestamp": 1700000100.25,
        "update": '[{"op": "add", "path": "/0", "value": {"frame_id": "X1", "flow_id": "transfer_money"}}]',
    },
    {"sender_id": "pro-1", "event": "session_ended", "timestamp": 1700000101.0, "metadata": {"reason": "timeout ⏰"}},
    {"sender_id": "pro-1", "event": "error", "timestamp": 1700000102, "error_type": "rasa_internal_error_default"},
    {
        "sender_id": "pro-1",
        "event": "bot",
        "timestamp": 1700000103.5,
        "text": "unknown keys kept",
        "data": {},
        "metadata": {},
        "future_key": {"a": [1.5e-10]},
    },
]


def conversation(sender_id: str, start: float, turns: List[Tuple[str, str, float, str]]) -> Iterator[List[Event]]:
    """A Rasa conversation, one list of new events per saved turn, exactly in the order Rasa's
    `MessageProcessor` creates them: session start, then per turn user / action_listen featurization /
    actions / bot utterances / slots, back to listening."""
    t = start
    yield [
        ActionExecuted("action_session_start", timestamp=t, metadata=dict(MODEL)),
        SessionStarted(timestamp=t, metadata=dict(MODEL)),
        ActionExecuted("action_listen", timestamp=t, metadata=dict(MODEL)),
    ]
    for index, (text, intent, confidence, response) in enumerate(turns):
        t += 3.25
        entities = [dict(CUISINE)] if "indian" in text else []
        turn: List[Event] = [
            UserUttered(
                text,
                {"name": intent, "confidence": confidence},
                entities,
                parse_data(text, intent, confidence, entities, full=index == 0),
                timestamp=t,
                input_channel="rest",
                message_id=f"{sender_id[:8]}-{index:04d}",
                metadata={"source": "web", **MODEL},
            ),
            DefinePrevUserUtteredFeaturization(False, timestamp=t + 0.0001, metadata=dict(MODEL)),
        ]
        if entities:
            turn.append(SlotSet("cuisine", "indian", timestamp=t + 0.0001, metadata=dict(MODEL)))
        turn += [
            ActionExecuted(response, "policy_0_MemoizationPolicy", 1.0, timestamp=t + 0.125, metadata=dict(MODEL)),
            BotUttered(
                f"{response} → {text} ✓",
                {"elements": None, "quick_replies": None, "buttons": None, "attachment": None, "image": None, "custom": None},
                {"utter_action": response, **MODEL},
                timestamp=t + 0.125,
            ),
            ActionExecuted("action_listen", "policy_1_RulePolicy", 0.9999999999999998, timestamp=t + 0.25, metadata=dict(MODEL)),
        ]
        yield turn


def conversations() -> Dict[str, List[List[Event]]]:
    """A few conversations, keyed by sender id, as lists of turns."""
    return {
        "alice-🍛": list(
            conversation(
                "alice-🍛",
                1700000000.0,
                [("hello there", "greet", 0.9987, "utter_greet"), ("I want indian food", "request_restaurant", 0.94, "utter_ask_people"), ("für vier Personen", "inform", 0.87, "utter_submit")],
            )
        ),
        "bob": list(conversation("bob", 1700000500.5, [("hi", "greet", 1.0, "utter_greet"), ("bye", "goodbye", 0.999, "utter_goodbye")])),
        "carol-ümlaut": list(conversation("carol-ümlaut", 1700000900.75, [("what can you do?", "chitchat", 0.61, "utter_chitchat/ask_name")])),
    }
