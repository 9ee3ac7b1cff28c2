"""Creating and checking nextoffer's topics (kafka-python's admin client)."""
from __future__ import annotations

import dataclasses
import logging
import time

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from nextoffer.streams.io.connecting import BrokerUnreachable, connecting
from nextoffer.streams.io.topics import SHOPPER_INPUTS
from nextoffer.streams.io.security import kafka_python_client
from nextoffer.streams.io.settings import Settings
from nextoffer.streams.io.topics import topic_specs

log = logging.getLogger("nextoffer")


class TopicError(RuntimeError):
    """The cluster's topics do not fit the settings; the message says what to do."""


def admin_client(settings: Settings) -> KafkaAdminClient:
    try:
        with connecting(settings):
            return KafkaAdminClient(**kafka_python_client(settings),
                                    client_id=f"{settings.topic(settings.app_id)}-admin", request_timeout_ms=15_000)
    except BrokerUnreachable as exc:
        raise TopicError(str(exc)) from None


def ensure_topics(settings: Settings, partitions: int | None = None) -> list[str]:
    """Create missing topics; fail if an existing input topic has another partition count.

    Returns the names created. Shopper topics and the state table must be
    co-partitioned, so their partition counts have to match.
    """
    count = partitions or settings.partitions
    admin = admin_client(settings)
    try:
        existing = set(admin.list_topics())
        wanted = [s for s in topic_specs(settings) if s.name not in existing]
        created = []
        for spec in wanted:
            try:
                admin.create_topics([NewTopic(spec.name, count, settings.replication_factor,
                                              topic_configs=spec.config)])
                created.append(spec.name)
            except TopicAlreadyExistsError:
                pass
        _check_partitions(admin, settings, count)
        return created
    except KafkaError as exc:
        raise TopicError(f"could not create topics: {exc}") from None
    finally:
        admin.close()


def agreed_partitions(counts: dict[str, int], configured: int, explicit: bool) -> int:
    """The partition count to use with the deployment's existing topics (``counts``): theirs, when
    the setting was left at its default; the configured one when no topic exists yet.

    >>> agreed_partitions({}, 8, False), agreed_partitions({"cart": 4, "clickstream": 4}, 8, False)
    (8, 4)
    >>> agreed_partitions({"cart": 4, "clickstream": 6}, 8, False)
    Traceback (most recent call last):
    ...
    nextoffer.streams.io.admin.TopicError: the deployment's topics disagree on their partition count (cart has 4, clickstream has 6); a shopper's events and state must share a partition number: recreate the odd ones with one count
    """
    found = set(counts.values())
    if len(found) > 1:
        listed = ", ".join(f"{name} has {n}" for name, n in sorted(counts.items()))
        raise TopicError(f"the deployment's topics disagree on their partition count ({listed}); a shopper's "
                         "events and state must share a partition number: recreate the odd ones with one count")
    if not found or explicit:
        return configured     # an explicit NEXTOFFER_PARTITIONS that differs is refused by ensure_topics
    return found.pop()


def adopt_partitions(settings: Settings, explicit: bool) -> Settings:
    """``settings`` with the partition count of the deployment's existing topics, so a worker
    joins topics created elsewhere (by a producer, with another count) instead of refusing them;
    ``explicit``: NEXTOFFER_PARTITIONS was set, and then it must match."""
    count = agreed_partitions(partition_counts(settings), settings.partitions, explicit)
    if count != settings.partitions:
        log.warning("the deployment's topics have %d partitions: using %d (NEXTOFFER_PARTITIONS "
                    "is not set; its default is %d)", count, count, settings.partitions)
        return dataclasses.replace(settings, partitions=count)
    return settings


def partition_counts(settings: Settings) -> dict[str, int]:
    admin = admin_client(settings)
    try:
        names = [s.name for s in topic_specs(settings)]
        return {_name(d): len(d["partitions"]) for d in admin.describe_topics(names)
                if not d.get("error_code")}
    finally:
        admin.close()


def _check_partitions(admin: KafkaAdminClient, settings: Settings, count: int) -> None:
    names = [s.name for s in topic_specs(settings)]
    wrong = [f"{_name(d)} has {len(d['partitions'])}" for d in admin.describe_topics(names)
             if not d.get("error_code") and len(d["partitions"]) != count]
    if wrong:
        raise TopicError(f"topics must have {count} partitions (NEXTOFFER_PARTITIONS), but "
                         f"{', '.join(wrong)}; set NEXTOFFER_PARTITIONS to match or recreate them")


def _name(description: dict) -> str:
    # kafka-python 3 names the field "name"; 2.x named it "topic".
    return description.get("name") or description["topic"]


def remove_deployment(settings: Settings, lookup) -> None:
    """Delete everything of the deployment with ``settings.topic_prefix``: its topics (changelogs
    included) and its ``nbo:`` and ``showcase:`` keys in the ``lookup`` Redis client. Only for
    non-empty prefixes."""
    prefix = settings.topic_prefix
    if not prefix:
        raise ValueError("refusing to remove the unprefixed deployment")
    keys = [k for pattern in ("nbo:*", "showcase:*") for k in lookup.scan_iter(f"{prefix}{pattern}", count=1000)]
    for start in range(0, len(keys), 1000):
        lookup.delete(*keys[start:start + 1000])
    admin = admin_client(settings)
    try:
        mine = [t for t in admin.list_topics() if t.startswith(prefix)]
        if mine:
            admin.delete_topics(mine)
    finally:
        admin.close()


def input_lag(settings: Settings) -> dict[tuple[str, int], int]:
    """Per input partition, the events the workers' consumer group has not committed yet."""
    committed = group_offsets(settings, settings.topic(settings.app_id))
    consumer = KafkaConsumer(**kafka_python_client(settings), group_id=None, enable_auto_commit=False)
    try:
        parts = [TopicPartition(settings.topic(t), p) for t in SHOPPER_INPUTS for p in range(settings.partitions)]
        ends = consumer.end_offsets(parts)
        lag = {}
        for tp, end in ends.items():
            done = committed.get(tp)
            lag[(tp.topic, tp.partition)] = end - (done.offset if done is not None and done.offset >= 0 else 0)
        return lag
    finally:
        consumer.close()


#: Tries of a group's offsets while its coordinator is loading (just after a broker restart).
OFFSET_FETCH_TRIES, OFFSET_FETCH_PAUSE = 20, 0.5


def group_offsets(settings: Settings, group: str) -> dict:
    """The offsets consumer group ``group`` (full name) has committed, by TopicPartition. A
    broker that has just restarted answers "coordinator loading" for a while: that, and any
    other retriable error, is asked again for up to ten seconds."""
    admin = admin_client(settings)
    try:
        for attempt in range(OFFSET_FETCH_TRIES):
            try:
                if hasattr(admin, "list_group_offsets"):      # kafka-python 3
                    return admin.list_group_offsets(group).get(group, {})
                return admin.list_consumer_group_offsets(group)  # kafka-python 2
            except KafkaError as exc:
                if not getattr(exc, "retriable", False) or attempt == OFFSET_FETCH_TRIES - 1:
                    raise
                time.sleep(OFFSET_FETCH_PAUSE)
    finally:
        admin.close()
