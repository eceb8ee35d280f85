"""Our PostgreSQL tracker store writes, Rasa's `SQLTrackerStore` reads.

`colloquy import --tracker-store postgres://…` saves the corpus conversations through `PostgresStore` (and
streams them to RabbitMQ through its outbox); Rasa 3.6.21's own `SQLTrackerStore`, pointed at the same
database, must list the same conversations and give back the same events and tracker state, and our rows must
equal the rows Rasa itself writes for the same trackers.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Dict, List

from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.events import Event
from rasa.shared.core.trackers import DialogueStateTracker, EventVerbosity

import corpus
from conftest import AMQP_URL, AmqpNames, Database, rasa_body, run_colloquy

ROW_COLUMNS = "sender_id, type_name, timestamp, intent_name, action_name, data"


def test_rasa_reads_what_our_postgres_tracker_store_wrote(
    tmp_path: Path, amqp_names: AmqpNames, fresh_database: Database
) -> None:
    conversations = corpus.conversations()
    lines: List[str] = []
    expected: Dict[str, List[Event]] = {}
    for sender_id, turns in conversations.items():
        for turn in turns:
            for event in turn:
                lines.append(rasa_body(sender_id, event.as_dict()))
                expected.setdefault(sender_id, []).append(event)
    events_file = tmp_path / "events.jsonl"
    events_file.write_text("\n".join(lines) + "\n", encoding="utf-8")

    result = run_colloquy(
        "import", "--file", str(events_file), "--tracker-store", fresh_database.url, "--amqp-url", AMQP_URL,
        "--exchange", amqp_names.exchange, "--queue", amqp_names.queue, "--progress", "none",
        timeout=120,
    )
    assert result.returncode == 0, result.stderr.decode("utf-8", "replace")

    store = SQLTrackerStore(
        corpus.domain(),
        dialect="postgresql",
        host=fresh_database.host,
        port=fresh_database.port,
        db=fresh_database.name,
        username=fresh_database.user,
        password=fresh_database.password,
    )
    assert set(asyncio.run(store.keys())) == set(expected)
    reference = SQLTrackerStore(corpus.domain(), dialect="sqlite", db=str(tmp_path / "rasa-reference.db"))
    for sender_id, events in expected.items():
        original = DialogueStateTracker.from_events(sender_id, events, corpus.domain().slots)
        full = asyncio.run(store.retrieve_full_tracker(sender_id))
        assert full is not None, sender_id
        assert [event.as_dict() for event in full.events] == [event.as_dict() for event in events], sender_id
        latest = asyncio.run(store.retrieve(sender_id))
        assert latest is not None
        assert latest.current_state(EventVerbosity.ALL) == original.current_state(EventVerbosity.ALL)
        asyncio.run(reference.save(original))
        ours = fresh_database.query(f"SELECT {ROW_COLUMNS} FROM events WHERE sender_id = %s ORDER BY id", sender_id)
        with reference.engine.connect() as connection:
            theirs = [
                tuple(row)
                for row in connection.exec_driver_sql(
                    f"SELECT {ROW_COLUMNS} FROM events WHERE sender_id = ? ORDER BY id", (sender_id,)
                )
            ]
        assert ours == theirs, f"rows of {sender_id} as Rasa writes them"
        for row in ours:
            assert "sender_id" not in json.loads(row[5])
