"""(c) We publish, Rasa reads: `colloquy import` publishes a file of Rasa bodies; a plain aio-pika consumer
(what a Rasa-side consumer uses) receives them, and Rasa's own `Event.from_parameters` reads every body and
writes it back to the same bytes. The properties are ours (DESIGN.md): persistent, JSON content type,
`message_id` = header `colloquy-event-id`, header `colloquy-seq` = position in the conversation.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Dict, List

from rasa.shared.core.events import Event

import corpus
from conftest import AMQP_URL, AmqpNames, rasa_body, run_colloquy


async def declare_and_drain(names: AmqpNames, publish, expected: int) -> List:
    """Binds the queue as Rasa does, runs `publish`, then receives `expected` messages (bounded in time)."""
    import aio_pika

    connection = await asyncio.wait_for(aio_pika.connect(AMQP_URL), 20)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(names.exchange, aio_pika.ExchangeType.FANOUT, durable=False)
        queue = await channel.declare_queue(names.queue, durable=True)
        await queue.bind(exchange, routing_key="")
        await asyncio.get_running_loop().run_in_executor(None, publish)
        received = []
        async with queue.iterator() as messages:
            async for message in messages:
                async with message.process():
                    received.append(message)
                if len(received) == expected:
                    break
        return received


def test_colloquy_import_publishes_what_rasa_reads(tmp_path: Path, amqp_names: AmqpNames) -> None:
    conversations = corpus.conversations()
    lines: List[str] = []
    by_sender: Dict[str, List[str]] = {}
    for sender_id, turns in conversations.items():
        for turn in turns:
            for event in turn:
                body = rasa_body(sender_id, event.as_dict())
                lines.append(body)
                by_sender.setdefault(sender_id, []).append(body)
    events_file = tmp_path / "events.jsonl"
    events_file.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def publish() -> None:
        result = run_colloquy(
            "import", "--file", str(events_file), "--amqp-url", AMQP_URL,
            "--exchange", amqp_names.exchange, "--queue", amqp_names.queue, "--progress", "none",
        )
        assert result.returncode == 0, result.stderr.decode("utf-8", "replace")

    received = asyncio.run(asyncio.wait_for(declare_and_drain(amqp_names, publish, len(lines)), 120))
    assert len(received) == len(lines)

    seen: Dict[str, List[str]] = {}
    for message in received:
        body = message.body.decode("utf-8")
        parameters = json.loads(body)
        sender_id = parameters.pop("sender_id")
        event = Event.from_parameters(parameters)
        assert event is not None, f"Rasa could not read {body}"
        assert rasa_body(sender_id, event.as_dict()) == body, "Rasa writes our body back to the same bytes"
        assert message.delivery_mode == 2
        assert message.content_type == "application/json"
        assert message.message_id == message.headers["colloquy-event-id"]
        assert message.headers["colloquy-seq"] == len(seen.get(sender_id, []))
        seen.setdefault(sender_id, []).append(body)
    assert seen == by_sender, "every event once, each conversation in order, byte for byte"
