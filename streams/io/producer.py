"""Producing records into the input topics (kafka-python), paced and with progress."""
from __future__ import annotations

import time
from typing import Callable, Iterable, Optional

import orjson
from kafka import KafkaProducer
from kafka.serializer import Serializer

from nextoffer.streams.io.connecting import BrokerUnreachable, connecting
from nextoffer.streams.io.records import Record
from nextoffer.streams.io.security import kafka_python_client
from nextoffer.streams.io.settings import Settings


_NO_HEADERS = object()


class KeySerializer(Serializer):
    """Keys as UTF-8 text (user_id or product_id), bytes as they are."""

    def serialize(self, topic, headers, data=_NO_HEADERS):
        # kafka-python 3 passes (topic, headers, data); 2.x passes (topic, data).
        value = headers if data is _NO_HEADERS else data
        return value.encode("utf-8") if isinstance(value, str) else value


class JsonSerializer(Serializer):
    """Values as JSON (orjson), bytes as they are."""

    def serialize(self, topic, headers, data=_NO_HEADERS):
        value = headers if data is _NO_HEADERS else data
        return value if isinstance(value, bytes) else orjson.dumps(value)


def make_producer(settings: Settings) -> KafkaProducer:
    try:
        with connecting(settings):
            return KafkaProducer(**kafka_python_client(settings), acks="all", linger_ms=5,
                                 batch_size=256 * 1024,
                                 key_serializer=KeySerializer(), value_serializer=JsonSerializer())
    except BrokerUnreachable as exc:
        raise SystemExit(f"error: {exc}") from None


def produce(settings: Settings, records: Iterable[Record], rate: float = 0.0,
            limit: Optional[int] = None, on_record: Optional[Callable[[Record], None]] = None,
            producer: Optional[KafkaProducer] = None) -> int:
    """Send records in order, paced ones at most ``rate`` per second (0 = as fast as possible)."""
    own = producer is None
    producer = producer or make_producer(settings)
    start, sent, paced = time.monotonic(), 0, 0
    try:
        for record in records:
            if limit is not None and sent >= limit:
                break
            producer.send(settings.topic(record.topic), key=record.key, value=record.value)
            sent += 1
            if on_record:
                on_record(record)
            if rate > 0 and record.paced:
                if paced == 0:
                    start = time.monotonic()
                paced += 1
                ahead = paced / rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
        producer.flush()
    finally:
        if own:
            producer.close()
    return sent
