"""(b) Rasa publishes, we consume, Rasa reads.

Rasa 3.6.21's own `PikaEventBroker` (created from an `endpoints.yml` by Rasa's `EventBroker.create`) publishes
conversations through Rasa's own `InMemoryTrackerStore.save` (the same code path as a running assistant);
`colloquy consume --endpoints` (the same file) stores them in a fresh database (PostgreSQL, MySQL/MariaDB and SQLite: each test runs on each); Rasa's own
`SQLTrackerStore` (again from the same file) reads them back. A tap queue on the same fanout exchange records
the exact bytes on the wire.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Dict, List, Tuple

from rasa.core.brokers.broker import EventBroker
from rasa.core.brokers.pika import PikaEventBroker
from rasa.core.tracker_store import InMemoryTrackerStore, SQLTrackerStore, TrackerStore
from rasa.core.utils import AvailableEndpoints
from rasa.shared.core.events import Event, UserUtteranceReverted
from rasa.shared.core.trackers import DialogueStateTracker, EventVerbosity

import corpus
from conftest import AMQP_URL, AmqpNames, Database, float32, wait_for, write_endpoints

ROW_COLUMNS = "sender_id, type_name, timestamp, intent_name, action_name, data"


async def rasa_publishes(
    endpoints: Path, names: AmqpNames, turns: Dict[str, List[List[Event]]], raw_bodies: List[Dict[str, Any]]
) -> Tuple[List[bytes], Dict[str, DialogueStateTracker], List[Any]]:
    """Publishes with Rasa's broker; returns the bodies as the tap queue received them (wire order), the
    trackers as Rasa holds them, and the tap's message properties."""
    import aio_pika

    loop = asyncio.get_running_loop()
    broker = await EventBroker.create(AvailableEndpoints.read_endpoints(str(endpoints)).event_broker, loop)
    assert isinstance(broker, PikaEventBroker), broker
    tap_connection = await aio_pika.connect(AMQP_URL)
    try:
        tap_channel = await tap_connection.channel()
        tap = await tap_channel.declare_queue(exclusive=True, auto_delete=True)
        await tap.bind(names.exchange, "")
        received: List[aio_pika.abc.AbstractIncomingMessage] = []

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            received.append(message)
            await message.ack()

        await tap.consume(on_message)

        domain = corpus.domain()
        store = InMemoryTrackerStore(domain, event_broker=broker)
        trackers = {sender_id: DialogueStateTracker.from_events(sender_id, [], domain.slots) for sender_id in turns}
        expected = 0
        # Round robin over the conversations, one saved turn at a time, as concurrent users would.
        for index in range(max(len(t) for t in turns.values())):
            for sender_id, conversation in turns.items():
                if index < len(conversation):
                    for event in conversation[index]:
                        trackers[sender_id].update(event)
                    await store.save(trackers[sender_id])
                    expected += len(conversation[index])
        for body in raw_bodies:
            broker.publish(body)
            expected += 1

        deadline = loop.time() + 30
        while len(received) < expected:
            assert loop.time() < deadline, f"the tap saw {len(received)} of {expected} published events"
            await asyncio.sleep(0.02)
        return [message.body for message in received], trackers, [message.properties for message in received]
    finally:
        await tap_connection.close()
        await broker.close()


def rasa_store(endpoints: Path) -> SQLTrackerStore:
    """Rasa's tracker store exactly as Rasa builds it from the endpoints.yml (`TrackerStore.create`)."""
    store = TrackerStore.create(AvailableEndpoints.read_endpoints(str(endpoints)).tracker_store, corpus.domain())
    inner = getattr(store, "_tracker_store", store)
    assert isinstance(inner, SQLTrackerStore), inner
    return inner


def rows(database: Database, sender_id: str) -> List[tuple]:
    """The Rasa columns of a conversation's rows, in Rasa's read order (`ORDER BY id`). On MySQL the timestamp
    is read as a DOUBLE: the text protocol prints a FLOAT column (Rasa's own table) to 6 digits only."""
    columns = ROW_COLUMNS
    if database.dialect == "mysql":
        columns = columns.replace("timestamp", "CAST(`timestamp` AS DOUBLE)")
    return database.query(f"SELECT {columns} FROM events WHERE sender_id = %s ORDER BY id", sender_id)


def reference_rows(reference: Database, trackers: Dict[str, DialogueStateTracker]) -> Dict[str, List[tuple]]:
    """The rows Rasa's own SQLTrackerStore writes for the same trackers: one save each, into `reference`, a
    fresh database of the same dialect whose table Rasa creates itself."""
    store = reference.rasa_store(corpus.domain())
    for tracker in trackers.values():
        asyncio.run(store.save(tracker))
    store.engine.dispose()
    return {sender_id: rows(reference, sender_id) for sender_id in trackers}


def as_in_rasas_table(database: Database, our_rows: List[tuple]) -> List[tuple]:
    """Our rows as a table Rasa created would hold them. The one column that differs on purpose: on MySQL
    SQLAlchemy makes Rasa's `timestamp` a 4-byte FLOAT (today's timestamps rounded to 128 s); Colloquy creates a
    DOUBLE (crates/storage/migrations/mysql). Every other column, and `data` byte for byte, is compared as is."""
    if database.dialect != "mysql":
        return our_rows
    return [row[:2] + (float32(row[2]),) + row[3:] for row in our_rows]


def test_rasa_publishes_colloquy_stores_rasa_reads(
    tmp_path, amqp_names, fresh_database, make_database, colloquy_processes
) -> None:
    endpoints = write_endpoints(tmp_path, amqp_names, fresh_database)
    # Colloquy starts first and declares the exchange; Rasa's broker then declares it again with its own
    # arguments, which RabbitMQ refuses (PRECONDITION_FAILED) unless both are declared alike.
    consumer = colloquy_processes("consume", "--endpoints", str(endpoints), "--batch-size", "7", "--batch-timeout-ms", "20")
    wait_for(
        lambda: consumer.assert_running() or "Starting the consumer" in consumer.log(),
        30,
        "the consumer to start",
    )
    turns = corpus.conversations()
    wire, trackers, properties = asyncio.run(rasa_publishes(endpoints, amqp_names, turns, corpus.PRO_LIKE))
    total = len(wire)

    wait_for(
        lambda: consumer.assert_running()
        or (fresh_database.query("SELECT count(*) FROM events")[0][0] >= total),
        60,
        f"{total} rows in the events table",
    )
    assert consumer.terminate() == 0, consumer.log()
    assert fresh_database.query("SELECT count(*) FROM events")[0][0] == total

    # Rasa published what we think it publishes.
    assert all(p.delivery_mode == 2 for p in properties)

    # Every row holds the wire body minus sender_id, byte for byte, in the order the queue delivered.
    by_sender: Dict[str, List[Dict[str, Any]]] = {}
    for body in wire:
        parsed = json.loads(body)
        by_sender.setdefault(parsed["sender_id"], []).append(parsed)
    for sender_id, bodies in by_sender.items():
        expected_data = [json.dumps({k: v for k, v in body.items() if k != "sender_id"}) for body in bodies]
        assert [row[5] for row in rows(fresh_database, sender_id)] == expected_data, sender_id
        assert [row[1] for row in rows(fresh_database, sender_id)] == [body["event"] for body in bodies]

    # The columns are the ones Rasa's SQLTrackerStore itself writes for these conversations.
    reference = reference_rows(make_database(), trackers)
    for sender_id in trackers:
        ours = rows(fresh_database, sender_id)
        assert [row[2] for row in ours] == [json.loads(row[5])["timestamp"] for row in ours], "exact timestamps"
        assert as_in_rasas_table(fresh_database, ours) == reference[sender_id], sender_id

    # Rasa's SQLTrackerStore reads our database: keys, full trackers, latest sessions, equal to Rasa's own.
    store = rasa_store(endpoints)
    assert set(asyncio.run(store.keys())) == set(by_sender)
    for sender_id, original in trackers.items():
        full = asyncio.run(store.retrieve_full_tracker(sender_id))
        assert full is not None, sender_id
        assert [e.as_dict() for e in full.events] == [e.as_dict() for e in original.events], sender_id
        latest = asyncio.run(store.retrieve(sender_id))
        assert latest is not None
        assert latest.current_state(EventVerbosity.ALL) == original.current_state(EventVerbosity.ALL)
    # The Rasa Pro conversation's rows hold their unknown types and keys; Rasa 3.6 itself cannot replay them
    # (`Unknown event name 'flow_started'`), exactly as with rows a Rasa Pro tracker store writes.
    pro = rows(fresh_database, "pro-1")
    assert [row[1] for row in pro] == [body["event"] for body in corpus.PRO_LIKE]
    assert pro[0][2] == corpus.PRO_LIKE[0]["timestamp"] and pro[0][4] is None


def test_byte_identical_messages_are_one_event(
    tmp_path, amqp_names, fresh_database, make_database, colloquy_processes
) -> None:
    """The documented trade-off of DESIGN.md's dedupe key. A message without Colloquy's `colloquy-event-id`
    header is identified by SHA-256(sender_id, body): that is what makes RabbitMQ's redeliveries (a consumer
    killed between commit and ack) and Rasa's own re-sends of unconfirmed events (same body, new message_id)
    land once. The price: two byte-identical events of one conversation — same type, same fields, same float
    timestamp, which Rasa's clock practically never produces — are stored once, where Rasa's SQLTrackerStore
    would store both. Events published through Colloquy carry their own ids and are all kept."""
    endpoints = write_endpoints(tmp_path, amqp_names, fresh_database)
    consumer = colloquy_processes("consume", "--endpoints", str(endpoints), "--batch-timeout-ms", "20")
    wait_for(lambda: consumer.assert_running() or "Starting the consumer" in consumer.log(), 30, "the consumer to start")
    (turns,) = [corpus.conversations()["alice-🍛"]]
    repeated = [UserUtteranceReverted(timestamp=1700000100.0), UserUtteranceReverted(timestamp=1700000100.0)]
    wire, trackers, _ = asyncio.run(rasa_publishes(endpoints, amqp_names, {"alice-🍛": turns + [repeated]}, []))
    wait_for(
        lambda: consumer.assert_running() or fresh_database.query("SELECT count(*) FROM events")[0][0] >= len(wire) - 1,
        60,
        "the rows",
    )
    assert consumer.terminate() == 0, consumer.log()
    rasa_rows = reference_rows(make_database(), trackers)["alice-🍛"]
    our_rows = as_in_rasas_table(fresh_database, rows(fresh_database, "alice-🍛"))
    assert rasa_rows[-1] == rasa_rows[-2], "the reference holds the two identical rows"
    assert our_rows == rasa_rows[:-1], "one row for the two byte-identical messages, everything else identical"
