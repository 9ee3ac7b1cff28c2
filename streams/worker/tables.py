"""Per-shopper state, partitioned like the input topics (by user_id) and backed by a changelog.

Values are compact JSON bytes (:func:`nextoffer.streams.io.codecs.encode_state`): about a sixth of the
memory of the same state as Python dicts, and the changelog record as it is. A changed state
must be assigned back (``shoppers[user] = encode_state(state)``) or no changelog entry is
written.
"""
import functools

import faust

from nextoffer.streams.worker.app import app, settings
from nextoffer.streams.io.codecs import compact_state


class ShopperTable(faust.Table):
    """Keeps recovered values compact too (Faust's recovery hands them over decoded)."""

    def _to_value(self, v):
        return compact_state(v)

    async def save(self, partition: int, user_id: str, state: bytes) -> None:
        """``table[user_id] = state`` from outside the event's context: the value is kept and its
        changelog record goes to ``partition`` (the input partition of the shopper's event) through
        the app's producer, the same record ``__setitem__`` writes, without Faust's per-write
        future and callbacks. The producer is flushed before every offset commit, so the record
        is in Kafka before the events that made it are committed."""
        self.data[user_id] = state
        key = self.app.serializers.dumps_key(self.key_type, user_id, serializer=self.key_serializer)
        await self.app.producer.send(self._changelog_name, key, state, partition, None, None)

    @functools.cached_property
    def _changelog_name(self) -> str:
        return self.changelog_topic.get_topic_name()


shoppers = app.tables.add(ShopperTable(
    app, name="shoppers", default=None, partitions=settings.partitions,
    schema=faust.Schema(key_serializer="json", value_serializer="raw")))
