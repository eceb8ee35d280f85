"""Markers: Rasa 3.6.21's own `Marker.from_path` + `evaluate_trackers` (what `rasa evaluate markers all`
runs) and our `markers` example write the same three files, byte for byte, for the same conversations; and
`colloquy markers evaluate` on a database Rasa's `SQLTrackerStore` wrote writes what Rasa's own
`rasa evaluate markers all` (its `_run_markers`, the CLI minus argument parsing) writes from that database.

The conversations are built with Rasa's event classes: several sessions (with and without the
`session_started_metadata` slot), events before the first session start, restarts, slots set and reset to
`null`, retrieval intents, senders that need CSV quoting; plus seeded random conversations that exercise
`seq` across sessions and conversations (Rasa never resets a sequence's progress).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
from pathlib import Path
from typing import Dict, List

import pytest

os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")

from rasa.core.evaluation.marker_base import Marker  # noqa: E402
from rasa.shared.core.events import (  # noqa: E402
    ActionExecuted,
    BotUttered,
    Event,
    Restarted,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker  # noqa: E402

from conftest import REPO, binary, rasa_body, run_colloquy  # noqa: E402

MARKERS_BIN = Path(os.environ.get("MARKERS_BIN", REPO / "target" / "release" / "examples" / "markers"))

CONFIG = """\
greeted:
  intent: greet
said_bye_after_greeting:
  description: a greeting, later a goodbye
  seq:
    - intent: greet
    - action: utter_goodbye
three_steps:
  seq:
    - intent: greet
    - slot_was_set: cuisine
    - action: utter_submit
cuisine_known:
  slot_was_set: cuisine
cuisine_not_known:
  slot_was_not_set: cuisine
ever_fallback:
  at_least_once:
    - action: action_default_fallback
never_fallback:
  never:
    - action: action_default_fallback
faq_or_chitchat:
  or:
    - intent: faq/ask_hours
    - intent: chitchat
greet_and_listen:
  and:
    - at_least_once:
        - intent: greet
    - action: action_listen
not_greet_or_bye:
  at_least_one_not:
    - intent: greet
    - intent: goodbye
not_listen:
  not:
    - action: action_listen
not_action_listen:
  not_action: action_listen
not_greet_intent:
  not_intent: greet
nested:
  seq:
    - seq:
        - intent: greet
        - intent: goodbye
    - or:
        - action: utter_goodbye
        - and:
            - slot_was_set: cuisine
            - not:
                - intent: inform
'quoted, "name"':
  intent: goodbye
"":
  seq:
    - intent: greet
    - at_least_once:
        - action: utter_submit
"""


def user(intent: str, t: float, retrieval: str | None = None) -> UserUttered:
    parsed = {"name": intent, "confidence": 0.9}
    if retrieval:
        parsed["full_retrieval_intent_name"] = retrieval
    return UserUttered(f"text for {intent}", parsed, [], timestamp=t, input_channel="rest")


def session_start(t: float, with_metadata: bool = False) -> List[Event]:
    events: List[Event] = []
    if with_metadata:
        events.append(SlotSet("session_started_metadata", {"channel": "web"}, timestamp=t))
    return events + [
        ActionExecuted("action_session_start", timestamp=t),
        SessionStarted(timestamp=t),
        ActionExecuted("action_listen", timestamp=t),
    ]


def handmade() -> Dict[str, List[Event]]:
    t = 1700000000.0
    return {
        "alice": session_start(t)
        + [
            user("greet", t + 1),
            ActionExecuted("utter_greet", timestamp=t + 1),
            BotUttered("hi", {}, {"utter_action": "utter_greet"}, timestamp=t + 1),
            ActionExecuted("action_listen", timestamp=t + 1),
            user("inform", t + 2),
            SlotSet("cuisine", "indian", timestamp=t + 2),
            ActionExecuted("utter_submit", timestamp=t + 2),
            ActionExecuted("action_listen", timestamp=t + 2),
            user("goodbye", t + 3),
            ActionExecuted("utter_goodbye", timestamp=t + 3),
        ]
        + session_start(t + 5000, with_metadata=True)
        + [
            user("chitchat", t + 5001),
            ActionExecuted("action_default_fallback", timestamp=t + 5001),
            SlotSet("cuisine", None, timestamp=t + 5001),
            user("faq", t + 5002, retrieval="faq/ask_hours"),
            ActionExecuted("utter_faq", timestamp=t + 5002),
        ],
        # Events before the first session start belong to no session; a restart does not split sessions.
        'quote"d, sender\nwith newline': [
            user("greet", t),
            ActionExecuted("action_listen", timestamp=t),
        ]
        + session_start(t + 10)
        + [
            user("greet", t + 11),
            ActionExecuted("action_restart", timestamp=t + 11),
            Restarted(timestamp=t + 11),
            user("goodbye", t + 12),
            ActionExecuted("utter_goodbye", timestamp=t + 12),
        ],
        # No session start at all: one session from index 0.
        "bob": [user("greet", t), SlotSet("cuisine", "thai", timestamp=t), ActionExecuted("utter_submit", timestamp=t)],
    }


def randomised(seed: int, count: int) -> Dict[str, List[Event]]:
    rng = random.Random(seed)
    conversations: Dict[str, List[Event]] = {}
    for c in range(count):
        t = 1700100000.0 + c * 1000
        events: List[Event] = []
        # At least one event: a tracker store knows no conversation without events.
        for i in range(rng.randint(1, 30)):
            t += 1
            r = rng.random()
            if r < 0.1:
                events += session_start(t, with_metadata=rng.random() < 0.5)
            elif r < 0.45:
                events.append(user(rng.choice(["greet", "goodbye", "inform", "chitchat", "faq"]), t, rng.choice([None, "faq/ask_hours"])))
            elif r < 0.75:
                name = rng.choice(["action_listen", "utter_goodbye", "utter_submit", "action_default_fallback", "utter_greet"])
                events.append(ActionExecuted(name, timestamp=t))
            elif r < 0.9:
                events.append(SlotSet("cuisine", rng.choice([None, "indian", 3]), timestamp=t))
            elif r < 0.95:
                events.append(BotUttered("text", {}, {}, timestamp=t))
            else:
                events.append(Restarted(timestamp=t))
        conversations[f"random-{seed}-{c}"] = events
    return conversations


def rasa_files(conversations: Dict[str, List[Event]], config: Path, out: Path) -> Dict[str, bytes]:
    """The three files, written by Rasa's own marker code (as `rasa evaluate markers all` with stats)."""
    out.mkdir()
    markers = Marker.from_path(config)

    async def trackers():
        for sender_id, events in conversations.items():
            yield DialogueStateTracker.from_events(sender_id, events)

    asyncio.run(
        markers.evaluate_trackers(
            trackers(),
            output_file=out / "markers.csv",
            session_stats_file=out / "stats-per-session.csv",
            overall_stats_file=out / "stats-overall.csv",
        )
    )
    return {name: (out / name).read_bytes() for name in ["markers.csv", "stats-overall.csv", "stats-per-session.csv"]}


def our_files(conversations: Dict[str, List[Event]], config: Path, out: Path, *flags: str) -> Dict[str, bytes]:
    out.mkdir()
    events = out / "events.jsonl"
    events.write_text(
        "".join(rasa_body(sender, event.as_dict()) + "\n" for sender, evts in conversations.items() for event in evts),
        encoding="utf-8",
    )
    subprocess.run(
        [
            str(binary(MARKERS_BIN)),
            "--config", str(config),
            "--events", str(events),
            "--output-file", str(out / "markers.csv"),
            "--stats-file-prefix", str(out / "stats"),
            *flags,
        ],
        check=True,
        timeout=60,
    )
    return {name: (out / name).read_bytes() for name in ["markers.csv", "stats-overall.csv", "stats-per-session.csv"]}


@pytest.mark.parametrize(
    "label,conversations",
    [("handmade", handmade()), ("random-1", randomised(1, 40)), ("random-2", randomised(2, 200)), ("empty", {})],
)
def test_our_marker_files_are_rasas(label: str, conversations: Dict[str, List[Event]], tmp_path: Path) -> None:
    config = tmp_path / "markers.yml"
    config.write_text(CONFIG, encoding="utf-8")
    theirs = rasa_files(conversations, config, tmp_path / "rasa")
    ours = our_files(conversations, config, tmp_path / "ours")
    for name in theirs:
        assert ours[name].decode() == theirs[name].decode(), f"{label}: {name} differs"
    if conversations:
        assert theirs["markers.csv"].count(b"\r\n") > 10, "the case exercises the markers"


def test_rasa_3_6_drops_the_negation_of_negated_tags(tmp_path: Path) -> None:
    """Rasa 3.6.21 reads `never` as `at_least_once`, `not_intent` as `intent` (its `from_config` replaces the
    tag by the positive one before building the marker): our default does the same, and
    `--honour-negated-tags` is the documented meaning."""
    config = tmp_path / "markers.yml"
    config.write_text("m_never:\n  never:\n    - intent: greet\nm_once:\n  at_least_once:\n    - intent: greet\n", encoding="utf-8")
    conversations = {"alice": session_start(1.0) + [user("greet", 2.0), user("inform", 3.0)]}
    theirs = rasa_files(conversations, config, tmp_path / "rasa")
    rows = theirs["markers.csv"].decode().splitlines()
    assert rows[1:] == ["alice,0,m_never,3,0", "alice,0,m_once,3,0"], rows
    assert our_files(conversations, config, tmp_path / "ours")["markers.csv"] == theirs["markers.csv"]
    honoured = our_files(conversations, config, tmp_path / "honoured", "--honour-negated-tags")
    assert honoured["markers.csv"].decode().splitlines()[1:] == ["alice,0,m_never,0,0", "alice,0,m_once,3,0"]


def test_colloquy_markers_evaluate_is_rasa_evaluate_markers_all(tmp_path: Path) -> None:
    """Both read the conversations from the same SQLite database, written by Rasa's SQLTrackerStore."""
    from rasa.cli.evaluate import _run_markers
    from rasa.core.tracker_store import SQLTrackerStore

    import corpus

    conversations = {**handmade(), **randomised(3, 60)}
    db = tmp_path / "rasa.db"
    store = SQLTrackerStore(corpus.domain(), dialect="sqlite", db=str(db))
    for sender_id, events in conversations.items():
        asyncio.run(store.save(DialogueStateTracker.from_events(sender_id, events)))
    store.engine.dispose()
    endpoints = tmp_path / "endpoints.yml"
    endpoints.write_text(f"tracker_store:\n  type: sql\n  dialect: sqlite\n  db: {db}\n", encoding="utf-8")
    config = tmp_path / "markers.yml"
    config.write_text(CONFIG, encoding="utf-8")
    (tmp_path / "rasa").mkdir()
    (tmp_path / "ours").mkdir()
    _run_markers(None, None, endpoints, None, "all", config, tmp_path / "rasa" / "markers.csv", tmp_path / "rasa" / "stats")
    done = run_colloquy(
        "markers", "evaluate",
        "--config", str(config),
        "--database-url", f"sqlite://{db}",
        "--output-file", str(tmp_path / "ours" / "markers.csv"),
        "--stats-file-prefix", str(tmp_path / "ours" / "stats"),
    )
    assert done.returncode == 0, done.stderr.decode()
    for name in ["markers.csv", "stats-overall.csv", "stats-per-session.csv"]:
        theirs = (tmp_path / "rasa" / name).read_text(encoding="utf-8")
        ours = (tmp_path / "ours" / name).read_text(encoding="utf-8")
        assert ours == theirs, f"{name} differs"
    assert (tmp_path / "rasa" / "markers.csv").read_bytes().count(b"\r\n") > 10
