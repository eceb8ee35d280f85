"""(e) `colloquy export` of a database genuine Rasa wrote publishes what `rasa export` publishes, byte for byte.

Rasa 3.6.21's own `SQLTrackerStore` creates the database's table and saves conversations into it, turn by turn,
as a running assistant does; an older Rasa's rows (1.x/2.x event shapes, written as that Rasa's
`SQLTrackerStore` wrote them: `json.dumps` of its own `as_dict()`) sit in the same table. Colloquy has never
touched the database: no `event_id` column, no table of ours. Then, on each dialect:

- Rasa's `rasa export` — what its command runs (`rasa.cli.export`): the tracker store and `PikaEventBroker`
  from the endpoints file and Rasa's `Exporter`, with the one change that makes its publishes arrive (see
  `PikaEventBrokerThatFlushes`) — publishes into a private exchange and queue;
- `colloquy export --order timestamp` of the same database publishes into a second one, and
  `colloquy export` (the default, stored order) into a third.

Rasa visits conversations in the order of a Python `set` (arbitrary); inside a conversation it sorts the events
by timestamp (a stable sort). So the comparison is per conversation: the same conversations, each one's bodies
byte-identical and in the same order, and each conversation published contiguously. With clocks that agree the
stored order is Rasa's order too; with clocks that disagree (the old moodbot-like tracker below, whose events
were stamped by two machines) only `--order timestamp` reproduces Rasa. Afterwards the database is as Rasa left
it (same tables, same columns, same rows): export reads only.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any, Dict, List, Tuple

import rasa.core.utils
from rasa.core.brokers.pika import PikaEventBroker
from rasa.shared.core.events import Event
from rasa.shared.core.trackers import DialogueStateTracker

import corpus
from conftest import AMQP_URL, AmqpNames, Database, new_amqp_names, run_colloquy

# An old tracker in the shape Rasa 1.x wrote (our own fixture, modelled on the shape of Rasa's
# data/test_trackers/tracker_moodbot.json): `timestamp` first, `action` without `hide_rule_turn`, `user` with
# `parse_data` keys in 1.x order and no `input_channel`/`message_id` fields filled, a `bot` with a partial
# `data`, a slot without metadata. Its clocks disagree: the actions were stamped by the action server's clock,
# a few milliseconds behind the user messages', so sorting by timestamp reorders the conversation.
OLD_TRACKER: List[Dict[str, Any]] = [
    {"timestamp": 1517821726.211031, "event": "action", "name": "action_listen", "policy": None, "confidence": None},
    {
        "timestamp": 1517821726.200036,
        "metadata": {},
        "parse_data": {
            "entities": [],
            "intent": {"confidence": 0.54, "name": "greet"},
            "message_id": None,
            "metadata": {},
            "text": "/greet",
            "intent_ranking": [{"confidence": 0.54, "name": "greet"}, {"confidence": 0.46, "name": "goodbye"}],
        },
        "event": "user",
        "text": "/greet",
        "input_channel": None,
        "message_id": None,
    },
    {"timestamp": 1517821726.200373, "event": "action", "name": "utter_greet", "policy": None, "confidence": None},
    {"timestamp": 1517821726.2004, "event": "bot", "text": "Hey! How are you?", "data": {"elements": None, "buttons": None, "attachment": None}},
    {"timestamp": 1517821726.211038, "event": "action", "name": "action_listen", "action_text": None, "policy": None, "confidence": None},
    {
        "timestamp": 1517821726.209836,
        "event": "user",
        "text": "/mood_great",
        "parse_data": {"intent": {"name": "mood_great", "confidence": 0.6}, "entities": [], "text": "/mood_great"},
        "input_channel": None,
    },
    {"timestamp": 1517821726.209870, "name": "mood", "event": "slot", "value": "great"},
    {"timestamp": 1517821726.209908, "event": "action", "name": "utter_happy", "policy": "policy_1_TEDPolicy", "confidence": 0.8, "action_text": None},
    {"timestamp": 1517821726.20991, "event": "bot", "text": "Great, carry on!", "data": None, "metadata": None},
    {"timestamp": 1517821726.211042, "event": "action", "name": "action_listen", "action_text": None, "policy": "policy_2_MemoizationPolicy", "confidence": 1.0},
]
OLD_SENDER = "mood-1x"


def old_rasa_row(raw: Dict[str, Any]) -> Dict[str, Any]:
    """The row an older Rasa's `SQLTrackerStore.save` wrote for an event it serialised as `raw` (same column rules
    as 3.6: `intent_name` from `parse_data.intent.name`, `action_name` from `name`, `data` = `json.dumps`)."""
    return {
        "sender_id": OLD_SENDER,
        "type_name": raw["event"],
        "timestamp": raw.get("timestamp"),
        "intent_name": ((raw.get("parse_data") or {}).get("intent") or {}).get("name"),
        "action_name": raw.get("name"),
        "data": json.dumps(raw),
    }


def skewed_conversation() -> Tuple[str, List[List[Event]]]:
    """A 3.6 conversation saved by Rasa whose bot responses were stamped by a clock 2 s behind: Rasa's exporter
    moves each response before the user message that caused it."""
    sender_id = "skewed-clock"
    turns = list(corpus.conversation(sender_id, 1700002000.0, [("hello", "greet", 0.99, "utter_greet"), ("bye", "goodbye", 0.97, "utter_goodbye")]))
    for turn in turns[1:]:
        for event in turn:
            if event.type_name == "bot":
                event.timestamp -= 2.0
    return sender_id, turns


def rasa_writes(database: Database) -> Dict[str, int]:
    """Genuine Rasa fills the database: its SQLTrackerStore creates the table and saves the corpus conversations
    (turn by turn) and the skewed one; then the old Rasa's rows are added to the same table. Returns the
    number of rows per conversation."""
    store = database.rasa_store(corpus.domain())
    conversations = dict(corpus.conversations())
    skewed_id, skewed_turns = skewed_conversation()
    conversations[skewed_id] = skewed_turns
    for sender_id, turns in conversations.items():
        tracker = DialogueStateTracker.from_events(sender_id, [], corpus.domain().slots)
        for turn in turns:
            for event in turn:
                tracker.update(event)
            asyncio.run(store.save(tracker))
    # The older Rasa's rows, through Rasa's own table model and session.
    with store.session_scope() as session:
        for raw in OLD_TRACKER:
            session.add(store.SQLEvent(**old_rasa_row(raw)))
        session.commit()
    store.engine.dispose()
    return {
        sender_id: count
        for sender_id, count in database.query("SELECT sender_id, count(*) FROM events GROUP BY sender_id")
    }


def snapshot(database: Database) -> Tuple[set, set, List[tuple]]:
    """Tables, the events table's columns and every row: what an export must leave as it found it."""
    return database.tables(), database.columns("events"), database.query("SELECT * FROM events ORDER BY id")


def write_rasa_endpoints(directory: Path, names: AmqpNames, database: Database) -> Path:
    path = directory / "endpoints.yml"
    path.write_text(
        f"""\
event_broker:
  type: pika
  url: {names.host}
  port: {names.port}
  username: {names.user}
  password: ${{COMPAT_RABBITMQ_PASSWORD}}
  queues:
    - {names.queue}
  exchange_name: {names.exchange}
"""
        + database.endpoints_section(),
        encoding="utf-8",
    )
    return path


class PikaEventBrokerThatFlushes(PikaEventBroker):
    """Rasa 3.6.21's `PikaEventBroker`, except that `close()` first waits for the publishes it has scheduled.

    Finding: `rasa export` (3.6.21, pika) loses the events it reports as published. `PikaEventBroker.publish`
    only schedules a task; the `Exporter` schedules one per event without ever yielding to the event loop and
    then calls `close()`, which closes the channel under the pending tasks (they end in `CancelledError`).
    Run from the command line against this suite's databases it prints "Successfully published N events"
    and the queue receives none. Everything that decides the bodies, their order and their properties stays
    Rasa's (the `Exporter`, `PikaEventBroker._message`, the exchange and queue declarations)."""

    async def close(self) -> None:
        pending = set(self._background_tasks)
        if pending:
            _, not_done = await asyncio.wait(pending, timeout=60)
            assert not not_done, f"{len(not_done)} publishes still pending after 60 s"
        await super().close()


async def rasa_export(endpoints: Path, rabbitmq_password: str) -> int:
    """What `rasa export --endpoints endpoints.yml` runs (`rasa.cli.export._export_trackers`): Rasa's tracker
    store and event broker from the endpoints file, prepared as the command prepares them, and Rasa's own
    `Exporter`; the broker is the one above. Returns the number of events Rasa published."""
    import rasa.cli.export as cli
    from rasa.core.exporter import Exporter

    os.environ["COMPAT_RABBITMQ_PASSWORD"] = rabbitmq_password
    endpoints_config = rasa.core.utils.read_endpoints_from_path(str(endpoints))
    tracker_store = cli._get_tracker_store(endpoints_config)
    broker = await PikaEventBrokerThatFlushes.from_endpoint_config(endpoints_config.event_broker)
    cli._prepare_event_broker(broker)
    exporter = Exporter(tracker_store, broker, str(endpoints))
    published = await exporter.publish_events()
    engine = getattr(getattr(tracker_store, "_tracker_store", tracker_store), "engine", None)
    if engine is not None:
        engine.dispose()
    return published


async def drain(names: AmqpNames, expected: int) -> List[Any]:
    """Every message of `names.queue`, in queue order: `expected` of them (bounded wait), and then none."""
    import aio_pika

    connection = await asyncio.wait_for(aio_pika.connect(AMQP_URL), 20)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(names.queue, passive=True)
        received: List[Any] = []
        deadline = asyncio.get_running_loop().time() + 60
        while len(received) < expected:
            assert asyncio.get_running_loop().time() < deadline, f"{len(received)} of {expected} messages"
            message = await queue.get(no_ack=True, fail=False)
            if message is None:
                await asyncio.sleep(0.05)
                continue
            received.append(message)
        assert await queue.get(no_ack=True, fail=False) is None, "more messages than events"
        return received


async def declare(names: AmqpNames) -> None:
    """The exchange and queue `colloquy export` publishes to, declared as Rasa declares them, before it runs."""
    import aio_pika

    connection = await asyncio.wait_for(aio_pika.connect(AMQP_URL), 20)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(names.exchange, aio_pika.ExchangeType.FANOUT, durable=False)
        queue = await channel.declare_queue(names.queue, durable=True)
        await queue.bind(exchange, routing_key="")


def by_conversation(bodies: List[bytes]) -> Dict[str, List[bytes]]:
    """The bodies grouped by `sender_id` (the last key, as `rasa export` writes it), each group in publishing
    order; asserts that each conversation was published contiguously."""
    groups: Dict[str, List[bytes]] = {}
    order: List[str] = []
    for body in bodies:
        sender_id = json.loads(body)["sender_id"]
        if not order or order[-1] != sender_id:
            assert sender_id not in groups, f"conversation {sender_id!r} was not published in one run"
            order.append(sender_id)
        groups.setdefault(sender_id, []).append(body)
    return groups


def run_colloquy_export(database: Database, names: AmqpNames, *extra: str) -> None:
    done = run_colloquy(
        "export", "--tracker-store", database.url, "--amqp-url", AMQP_URL, "--exchange", names.exchange,
        "--queue", names.queue, "--progress", "none", *extra,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")


def test_colloquy_export_publishes_what_rasa_export_publishes(tmp_path: Path, fresh_database: Database) -> None:
    counts = rasa_writes(fresh_database)
    total = sum(counts.values())
    before = snapshot(fresh_database)
    assert "event_id" not in before[1], "the table is Rasa's own"

    with new_amqp_names() as rasa_names, new_amqp_names() as sorted_names, new_amqp_names() as stored_names:
        endpoints = write_rasa_endpoints(tmp_path, rasa_names, fresh_database)
        assert asyncio.run(rasa_export(endpoints, rasa_names.password)) == total
        asyncio.run(declare(sorted_names))
        asyncio.run(declare(stored_names))
        run_colloquy_export(fresh_database, sorted_names, "--order", "timestamp")
        run_colloquy_export(fresh_database, stored_names)
        rasa_messages = asyncio.run(drain(rasa_names, total))
        sorted_messages = asyncio.run(drain(sorted_names, total))
        stored_messages = asyncio.run(drain(stored_names, total))

    assert snapshot(fresh_database) == before, "export changed the database"

    rasa = by_conversation([message.body for message in rasa_messages])
    ours_sorted = by_conversation([message.body for message in sorted_messages])
    ours_stored = by_conversation([message.body for message in stored_messages])
    assert {sender_id: len(bodies) for sender_id, bodies in rasa.items()} == counts

    # `--order timestamp`: every conversation byte for byte and in Rasa's order.
    for sender_id, bodies in rasa.items():
        assert ours_sorted[sender_id] == bodies, sender_id
    assert set(ours_sorted) == set(rasa)

    # The default, stored order: the same where the clocks agree; where they disagree, the same bodies in the
    # order the conversation happened (the table's id order), which Rasa's sort does not keep.
    disagreeing = {OLD_SENDER, skewed_conversation()[0]}
    for sender_id, bodies in rasa.items():
        if sender_id in disagreeing:
            assert ours_stored[sender_id] != bodies, f"{sender_id}: its clocks disagree, Rasa reorders it"
            assert sorted(ours_stored[sender_id]) == sorted(bodies), sender_id
        else:
            assert ours_stored[sender_id] == bodies, sender_id
    stored_rows = fresh_database.query("SELECT data FROM events WHERE sender_id = %s ORDER BY id", OLD_SENDER)
    assert [json.loads(body)["timestamp"] for body in ours_stored[OLD_SENDER]] == [
        json.loads(data)["timestamp"] for (data,) in stored_rows
    ]

    # The old rows come out in Rasa 3.6's form, not as stored (Rasa re-serialises what it reads).
    old_bodies = {json.loads(body)["timestamp"]: body for body in rasa[OLD_SENDER]}
    listen = old_bodies[1517821726.211031]
    assert listen.startswith(b'{"event": "action", "timestamp": 1517821726.211031')
    assert listen.endswith(b'"hide_rule_turn": false, "sender_id": "mood-1x"}')

    # Rasa marks its messages with one export-run id; ours carry our own properties (not compared).
    assert len({message.headers.get("rasa-export-process-id") for message in rasa_messages}) == 1
