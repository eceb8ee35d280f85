"""Our SQL tracker store writes, Rasa's `SQLTrackerStore` reads, on each dialect.

`colloquy import --tracker-store postgres://…|mysql://…|sqlite://…` saves the corpus conversations through
`SqlStore` (and streams them to RabbitMQ through its outbox); Rasa 3.6.21's own `SQLTrackerStore`, pointed at the
same database, must list the same conversations and give back the same events and tracker state, and our rows
must equal the rows Rasa itself writes for the same trackers in the same dialect.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Dict, List

from rasa.shared.core.events import Event
from rasa.shared.core.trackers import DialogueStateTracker, EventVerbosity

import corpus
from conftest import AMQP_URL, AmqpNames, Database, rasa_body, run_colloquy
from test_rasa_publishes_we_consume import as_in_rasas_table, rows


def test_rasa_reads_what_our_tracker_store_wrote(
    tmp_path: Path, amqp_names: AmqpNames, fresh_database: Database, make_database
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

    store = fresh_database.rasa_store(corpus.domain())
    assert set(asyncio.run(store.keys())) == set(expected)
    # The reference: Rasa's own SQLTrackerStore saving the same trackers into a table it creates itself, in a
    # fresh database of the same dialect.
    reference_database = make_database()
    reference = reference_database.rasa_store(corpus.domain())
    for sender_id, events in expected.items():
        original = DialogueStateTracker.from_events(sender_id, events, corpus.domain().slots)
        full = asyncio.run(store.retrieve_full_tracker(sender_id))
        assert full is not None, sender_id
        assert [event.as_dict() for event in full.events] == [event.as_dict() for event in events], sender_id
        latest = asyncio.run(store.retrieve(sender_id))
        assert latest is not None
        assert latest.current_state(EventVerbosity.ALL) == original.current_state(EventVerbosity.ALL)
        asyncio.run(reference.save(original))
        ours = rows(fresh_database, sender_id)
        assert [row[2] for row in ours] == [json.loads(row[5])["timestamp"] for row in ours], "exact timestamps"
        assert as_in_rasas_table(fresh_database, ours) == rows(reference_database, sender_id), (
            f"rows of {sender_id} as Rasa writes them"
        )
        for row in ours:
            assert "sender_id" not in json.loads(row[5])
    store.engine.dispose()
    reference.engine.dispose()
