"""(d) We adopt a database Rasa created: Rasa's `SQLTrackerStore` creates the `events` table and writes a
conversation; `colloquy migrate` (twice) and `colloquy consume` take the database over and add events that
Rasa's broker publishes; Rasa keeps writing into it; Rasa reads everything back, in order.
"""

from __future__ import annotations

import asyncio
from typing import List

from rasa.shared.core.events import Event
from rasa.shared.core.trackers import DialogueStateTracker

import corpus
from conftest import run_colloquy, wait_for, write_endpoints
from test_rasa_publishes_we_consume import rasa_publishes, rasa_store, rows


def test_colloquy_adopts_a_database_rasa_created(tmp_path, amqp_names, fresh_database, colloquy_processes) -> None:
    endpoints = write_endpoints(tmp_path, amqp_names, fresh_database)
    sender_id = "dora-ådopt"
    turns: List[List[Event]] = list(
        corpus.conversation(
            sender_id,
            1700001000.0,
            [
                ("hello", "greet", 0.99, "utter_greet"),
                ("I want indian food", "request_restaurant", 0.94, "utter_ask_people"),
                ("two people", "inform", 0.8, "utter_submit"),
                ("thanks, bye", "goodbye", 0.97, "utter_goodbye"),
            ],
        )
    )
    # turns[0] is the session start; then one list per user turn (the last one is not used).

    # 1. Rasa alone: its own table creation, then two saves.
    store = rasa_store(endpoints)
    tracker = DialogueStateTracker.from_events(sender_id, [], corpus.domain().slots)
    for turn in turns[:2]:
        for event in turn:
            tracker.update(event)
        asyncio.run(store.save(tracker))
    rasa_rows = rows(fresh_database, sender_id)
    assert len(rasa_rows) == len(turns[0]) + len(turns[1])

    # 2. Our migration accepts Rasa's table (twice: it must be idempotent) and keeps Rasa's rows.
    for _ in range(2):
        done = run_colloquy("migrate", "--endpoints", str(endpoints))
        assert done.returncode == 0, done.stderr.decode("utf-8", "replace")
    assert rows(fresh_database, sender_id) == rasa_rows
    columns = fresh_database.columns("events")
    assert {"id", "sender_id", "type_name", "timestamp", "intent_name", "action_name", "data"} <= columns

    # 3. The consumer adds the next turn, published by Rasa's broker.
    consumer = colloquy_processes("consume", "--endpoints", str(endpoints), "--batch-timeout-ms", "20")
    wait_for(lambda: consumer.assert_running() or "Starting the consumer" in consumer.log(), 30, "the consumer to start")
    wire, _, _ = asyncio.run(rasa_publishes(endpoints, amqp_names, {sender_id: [turns[2]]}, []))
    assert len(wire) == len(turns[2])
    expected = len(rasa_rows) + len(wire)
    wait_for(
        lambda: consumer.assert_running() or len(rows(fresh_database, sender_id)) >= expected,
        60,
        f"{expected} rows for {sender_id}",
    )
    assert consumer.terminate() == 0, consumer.log()
    for event in turns[2]:
        tracker.update(event)

    # 4. Rasa writes again into the adopted table (it sees our rows as its own: it only appends the new turn).
    for event in turns[3]:
        tracker.update(event)
    asyncio.run(store.save(tracker))

    # 5. Rasa reads it all back, in order.
    store = rasa_store(endpoints)
    full = asyncio.run(store.retrieve_full_tracker(sender_id))
    assert full is not None
    assert [e.as_dict() for e in full.events] == [e.as_dict() for e in tracker.events]
    assert len(rows(fresh_database, sender_id)) == sum(len(turn) for turn in turns[:4])
    assert list(asyncio.run(store.keys())) == [sender_id]
