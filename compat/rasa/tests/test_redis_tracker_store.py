"""Our Redis tracker store and Rasa's `RedisTrackerStore` share keys and values, both ways.

1. `colloquy import --tracker-store redis://…` saves the corpus conversations through `RedisStore`; Rasa 3.6.21's
   own `RedisTrackerStore` (redis-py), on the same Redis with the same `key_prefix`, lists the same keys, reads
   the same events and tracker state, and the values are byte for byte what Rasa itself writes for the same
   trackers, with `record_exp` as their expiry. Rasa then saves a new turn into one of them (its merge path).
2. Rasa saves the corpus conversations; `colloquy export --tracker-store redis://…` reads them back and publishes
   every event once, in order, byte for byte as Rasa would publish it.

Rasa's `keys()` returns whole Redis keys (`<prefix>:tracker:<sender_id>`); ours returns conversation ids.
Each test uses a key prefix of its own and deletes its keys (ours included) afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from pathlib import Path
from typing import Dict, List
from urllib.parse import urlparse

import pytest
from rasa.core.tracker_store import RedisTrackerStore
from rasa.shared.core.events import ActionExecuted, Event, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker, EventVerbosity, get_trackers_for_conversation_sessions

import corpus
from conftest import AMQP_URL, AmqpNames, rasa_body, run_colloquy
from test_we_publish_rasa_reads import declare_and_drain

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def key_prefix():
    import redis

    url = urlparse(REDIS_URL)
    client = redis.Redis(host=url.hostname or "127.0.0.1", port=url.port or 6379, db=int(url.path.lstrip("/") or 0))
    try:
        client.ping()
    except redis.ConnectionError as error:
        pytest.fail(f"Redis at {REDIS_URL} does not answer ({error}); start it (`cargo xtask services`)")
    prefix = f"compat{uuid.uuid4().hex[:12]}"
    yield prefix, client
    for pattern in (f"{prefix}:tracker:*", f"colloquy:meta:{prefix}:tracker:*", f"colloquy:*:{prefix}:tracker:"):
        keys = list(client.scan_iter(match=pattern, count=1000))
        if keys:
            client.delete(*keys)
    client.close()


def rasa_store(prefix: str, record_exp=None) -> RedisTrackerStore:
    url = urlparse(REDIS_URL)
    return RedisTrackerStore(
        corpus.domain(),
        host=url.hostname or "127.0.0.1",
        port=url.port or 6379,
        db=int(url.path.lstrip("/") or 0),
        key_prefix=prefix,
        record_exp=record_exp,
    )


def our_url(prefix: str, record_exp=None) -> str:
    base = REDIS_URL.split("?")[0]
    query = f"key_prefix={prefix}" + (f"&record_exp={record_exp}" if record_exp else "")
    return f"{base}?{query}"


def expected_events() -> Dict[str, List[Event]]:
    expected: Dict[str, List[Event]] = {}
    for sender_id, turns in corpus.conversations().items():
        for turn in turns:
            expected.setdefault(sender_id, []).extend(turn)
    return expected


def test_rasa_reads_what_our_redis_store_wrote(tmp_path: Path, amqp_names: AmqpNames, key_prefix) -> None:
    prefix, client = key_prefix
    expected = expected_events()
    lines = [rasa_body(sender_id, event.as_dict()) for sender_id, events in expected.items() for event in events]
    events_file = tmp_path / "events.jsonl"
    events_file.write_text("\n".join(lines) + "\n", encoding="utf-8")

    result = run_colloquy(
        "import", "--file", str(events_file), "--tracker-store", our_url(prefix, 600), "--amqp-url", AMQP_URL,
        "--exchange", amqp_names.exchange, "--queue", amqp_names.queue, "--progress", "none",
        timeout=120,
    )
    assert result.returncode == 0, result.stderr.decode("utf-8", "replace")

    store = rasa_store(prefix, record_exp=600)
    keys = asyncio.run(store.keys())
    assert set(keys) == {f"{prefix}:tracker:{sender_id}" for sender_id in expected}, "Rasa's keys: whole keys"
    for sender_id, events in expected.items():
        original = DialogueStateTracker.from_events(sender_id, events, corpus.domain().slots)
        key = f"{prefix}:tracker:{sender_id}"
        assert client.get(key).decode("utf-8") == RedisTrackerStore.serialise_tracker(original), (
            f"the value of {sender_id} as Rasa writes it"
        )
        assert 0 < client.ttl(key) <= 600, "record_exp is the key's expiry"
        full = asyncio.run(store.retrieve_full_tracker(sender_id))
        assert full is not None, sender_id
        assert [event.as_dict() for event in full.events] == [event.as_dict() for event in events], sender_id
        latest = asyncio.run(store.retrieve(sender_id))
        sessions = get_trackers_for_conversation_sessions(original)
        assert latest.current_state(EventVerbosity.ALL) == sessions[-1].current_state(EventVerbosity.ALL)

    # Rasa continues one of our conversations from its latest session (its merge path keeps every event).
    sender_id = next(iter(expected))
    latest = asyncio.run(store.retrieve(sender_id))
    new_turn = [UserUttered("one more", {"name": "greet", "confidence": 1.0}, timestamp=1800000000.0),
                ActionExecuted("action_listen", timestamp=1800000000.5)]
    for event in new_turn:
        latest.update(event)
    asyncio.run(store.save(latest))
    full = asyncio.run(store.retrieve_full_tracker(sender_id))
    assert [e.as_dict() for e in full.events] == [e.as_dict() for e in expected[sender_id] + new_turn]


def test_colloquy_exports_what_rasa_saved(amqp_names: AmqpNames, key_prefix) -> None:
    prefix, _client = key_prefix
    expected = expected_events()
    store = rasa_store(prefix)
    by_sender: Dict[str, List[str]] = {}
    for sender_id, events in expected.items():
        asyncio.run(store.save(DialogueStateTracker.from_events(sender_id, events, corpus.domain().slots)))
        # `rasa export`'s form: the event's dict with `sender_id` appended last (`Exporter`).
        by_sender[sender_id] = [json.dumps({**event.as_dict(), "sender_id": sender_id}) for event in events]
    total = sum(len(bodies) for bodies in by_sender.values())

    def export() -> None:
        result = run_colloquy(
            "export", "--tracker-store", our_url(prefix), "--amqp-url", AMQP_URL,
            "--exchange", amqp_names.exchange, "--queue", amqp_names.queue, "--progress", "none",
            timeout=120,
        )
        assert result.returncode == 0, result.stderr.decode("utf-8", "replace")

    received = asyncio.run(asyncio.wait_for(declare_and_drain(amqp_names, export, total), 120))
    seen: Dict[str, List[str]] = {}
    for message in received:
        body = message.body.decode("utf-8")
        sender_id = json.loads(body)["sender_id"]
        assert message.headers["colloquy-seq"] == len(seen.get(sender_id, []))
        seen.setdefault(sender_id, []).append(body)
    assert seen == by_sender, "every event Rasa saved, once, in order, as `rasa export` publishes it"
