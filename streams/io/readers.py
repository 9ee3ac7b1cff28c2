"""Reading nextoffer's output topics from outside a worker (the demo, the live evaluation)."""
from __future__ import annotations

from kafka import KafkaConsumer, TopicPartition

from nextoffer.streams.io.security import kafka_python_client
from nextoffer.streams.io.settings import Settings


def consumer_at_end(settings: Settings, topics: tuple[str, ...]) -> KafkaConsumer:
    """A group-less consumer of every partition of ``topics`` (names without prefix), positioned
    at their current ends, so it sees exactly what is written from now on."""
    consumer = KafkaConsumer(**kafka_python_client(settings), enable_auto_commit=False, group_id=None)
    parts = [TopicPartition(settings.topic(t), p) for t in topics for p in range(settings.partitions)]
    consumer.assign(parts)
    consumer.seek_to_end(*parts)
    for tp in parts:
        consumer.position(tp)  # resolve "end" now, before anything new is sent
    return consumer
