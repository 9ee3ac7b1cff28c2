"""Per-shopper state, partitioned like the input topics (by user_id) and backed by a changelog.

Values are compact JSON bytes (:func:`nextoffer.streams.io.codecs.encode_state`): about a sixth of the
memory of the same state as Python dicts, and the changelog record as it is. A changed state
must be assigned back (``shoppers[user] = encode_state(state)``) or no changelog entry is
written.
"""
import faust

from nextoffer.streams.worker.app import app, settings
from nextoffer.streams.worker.faust_internals import CompactTable


#: The changelog topics' own settings. Compaction keeps only a key's latest record, but never
#: touches the segment being written, and a broker's default segment is 1 GB: a partition's
#: changelog could hold that much of superseded states, all read by a worker taking it over.
#: A segment closed every ``changelog_segment`` seconds bounds it by time instead.
CHANGELOG_CONFIG = {"segment.ms": str(settings.changelog_segment * 1000)}


def _changelogged(name: str) -> CompactTable:
    """A table of compact bytes by JSON key, partitioned like the inputs, with its changelog."""
    return app.tables.add(CompactTable(
        app, name=name, default=None, partitions=settings.partitions,
        schema=faust.Schema(key_serializer="json", value_serializer="raw"),
        extra_topic_configs=CHANGELOG_CONFIG))


shoppers = _changelogged("shoppers")

#: Per input partition, the offsets of its dead-lettered records
#: (:mod:`nextoffer.streams.worker.rejections`), recovered with the partition like the shoppers.
dead_lettered = _changelogged("dead-lettered")
