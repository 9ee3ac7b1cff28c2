"""Reading nextoffer's topics from outside a worker (the demo, the live evaluation, explain, ope)."""
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


def read_to_end(settings: Settings, parts: list[TopicPartition], handle) -> int:
    """Every record of ``parts`` from the start to their ends as of now: ``handle(tp, record)``
    each; returns how many."""
    consumer = KafkaConsumer(**kafka_python_client(settings), group_id=None, enable_auto_commit=False,
                             max_poll_records=5000)
    try:
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        count = 0
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            for tp, records in consumer.poll(timeout_ms=500).items():
                for record in records:
                    if record.offset < ends[tp]:
                        handle(tp, record)
                        count += 1
        return count
    finally:
        consumer.close()
