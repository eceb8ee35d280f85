"""Rasa's tracker HTTP API, served by `colloquy serve`, against genuine Rasa 3.6.21's trackers.

Rasa's own `SQLTrackerStore` writes the corpus conversations into a fresh database of each dialect; `colloquy
serve --database-url … --domain domain.yml` reads them. For every conversation, every `include_events` and an
`until`, `GET /conversations/{id}/tracker` must give the JSON that Rasa's server gives: Rasa's
`DialogueStateTracker` (built by Rasa's store from the same rows, with the domain's slots) and its
`current_state(verbosity)`. `POST …/tracker/events` must apply events as Rasa's server does (a session start
first on a new conversation) and save them where Rasa's store reads them; errors have Rasa's shape.
"""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from rasa.shared.core.events import ActionExecuted, SessionStarted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker, EventVerbosity

import corpus
from conftest import AMQP_URL, AmqpNames, Database, wait_for

TOKEN = "compat-secret"
DOMAIN_YAML = """\
version: "3.1"
entities:
  - cuisine
slots:
  cuisine:
    type: text
    mappings:
      - type: from_entity
        entity: cuisine
  party_size:
    type: any
    initial_value: 2
    mappings: []
forms:
  restaurant_form:
    required_slots:
      - cuisine
"""


def domain():
    """The domain `colloquy serve --domain` reads, as Rasa's own `Domain` reads it (initial values, the slots
    Rasa adds itself)."""
    from rasa.shared.core.domain import Domain

    return Domain.from_yaml(DOMAIN_YAML)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(base: str, method: str, path: str, body: Any = None) -> Tuple[int, Any]:
    """One request with the token; the status and the decoded JSON body."""
    separator = "&" if "?" in path else "?"
    data = None if body is None else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(
        f"{base}{path}{separator}token={TOKEN}", data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def serve(colloquy_processes, database: Database, tmp_path: Path, *extra: str) -> str:
    database.rasa_store(domain())  # Rasa creates its `events` table, which the server reads
    domain_file = tmp_path / "domain.yml"
    domain_file.write_text(DOMAIN_YAML, encoding="utf-8")
    port = free_port()
    process = colloquy_processes(
        "serve", "--database-url", database.url, "--http", f"127.0.0.1:{port}", "--auth-token", TOKEN,
        "--domain", str(domain_file), *extra,
    )
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        process.assert_running()
        try:
            return call(base, "GET", "/api/server")[0] == 200
        except OSError:
            return False

    wait_for(answers, 60, "colloquy serve to answer")
    return base


def rasa_saves_the_corpus(database: Database) -> Dict[str, DialogueStateTracker]:
    store = database.rasa_store(domain())
    trackers = {}
    for sender_id, turns in corpus.conversations().items():
        events = [event for turn in turns for event in turn]
        tracker = DialogueStateTracker.from_events(sender_id, events, domain().slots)
        asyncio.run(store.save(tracker))
        trackers[sender_id] = asyncio.run(store.retrieve_full_tracker(sender_id))
    return trackers


def without_timestamps(state: Dict[str, Any]) -> Dict[str, Any]:
    state = dict(state)
    state["latest_event_time"] = None
    state["events"] = [{k: v for k, v in e.items() if k != "timestamp"} for e in state["events"] or []]
    return state


def test_get_tracker_is_rasas_tracker_json(tmp_path: Path, fresh_database: Database, colloquy_processes) -> None:
    trackers = rasa_saves_the_corpus(fresh_database)
    base = serve(colloquy_processes, fresh_database, tmp_path)
    for sender_id, tracker in trackers.items():
        assert tracker is not None
        quoted = urllib.request.quote(sender_id, safe="")
        status, default = call(base, "GET", f"/conversations/{quoted}/tracker")
        assert status == 200, default
        assert default == tracker.current_state(EventVerbosity.AFTER_RESTART), sender_id
        for verbosity in EventVerbosity:
            status, state = call(base, "GET", f"/conversations/{quoted}/tracker?include_events={verbosity.name.lower()}")
            assert status == 200, state
            assert state == tracker.current_state(verbosity), (sender_id, verbosity)
        middle = tracker.events[len(tracker.events) // 2].timestamp
        status, past = call(base, "GET", f"/conversations/{quoted}/tracker?include_events=ALL&until={middle!r}")
        assert status == 200, past
        assert past == tracker.travel_back_in_time(middle).current_state(EventVerbosity.ALL), sender_id

    status, error = call(base, "GET", "/conversations/x/tracker?include_events=SOME")
    assert status == 400
    assert error["status"] == "failure" and error["reason"] == "BadRequest" and error["code"] == 400
    assert error["details"] == {"parameter": "include_events", "in": "query"}
    assert set(error) == {"version", "status", "message", "reason", "details", "help", "code"}


def test_a_new_conversation_starts_with_a_session_like_rasa(
    tmp_path: Path, fresh_database: Database, colloquy_processes
) -> None:
    base = serve(colloquy_processes, fresh_database, tmp_path)
    status, state = call(base, "GET", "/conversations/nobody-yet/tracker")
    assert status == 200, state
    # Rasa's server runs `action_session_start` on a tracker without events (and does not save it on a GET).
    rasa = DialogueStateTracker("nobody-yet", domain().slots)
    for event in [ActionExecuted("action_session_start", None, 1.0), SessionStarted(), ActionExecuted("action_listen")]:
        rasa.update(event)
    assert without_timestamps(state) == without_timestamps(rasa.current_state(EventVerbosity.AFTER_RESTART))
    status, again = call(base, "GET", "/conversations/nobody-yet/tracker")
    assert status == 200 and len(again["events"]) == 3


def test_post_events_is_saved_where_rasa_reads_it(
    tmp_path: Path, fresh_database: Database, amqp_names: AmqpNames, colloquy_processes
) -> None:
    base = serve(
        colloquy_processes, fresh_database, tmp_path, "--tracker-store", fresh_database.url, "--amqp-url", AMQP_URL,
        "--exchange", amqp_names.exchange, "--queue", amqp_names.queue,
    )
    user = UserUttered("I want thai food", corpus.parse_data("I want thai food", "request_restaurant", 0.93),
                       input_channel="rest", timestamp=1700000100.5)
    slot = SlotSet("cuisine", "thai", timestamp=1700000101.25)
    status, state = call(base, "POST", "/conversations/poster/tracker/events?include_events=ALL",
                         [user.as_dict(), slot.as_dict()])
    assert status == 200, state
    rasa = DialogueStateTracker("poster", domain().slots)
    for event in [ActionExecuted("action_session_start", None, 1.0), SessionStarted(), ActionExecuted("action_listen"),
                  user, slot]:
        rasa.update(event)
    expected = rasa.current_state(EventVerbosity.ALL)
    assert without_timestamps(state) == without_timestamps(expected)
    assert state["events"][3:] == expected["events"][3:]

    stored = asyncio.run(fresh_database.rasa_store(domain()).retrieve_full_tracker("poster"))
    assert stored is not None
    assert [e.as_dict() for e in stored.events] == state["events"]
    status, got = call(base, "GET", "/conversations/poster/tracker?include_events=ALL")
    assert status == 200 and got == state

    status, error = call(base, "POST", "/conversations/poster/tracker/events", {"event": "no_such_event"})
    assert status == 400 and error["reason"] == "BadRequest", error
