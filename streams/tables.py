"""Per-shopper state, partitioned like the input topics (by user_id) and backed by a changelog.

Values are :meth:`models.shopper.ShopperState.to_dict` dicts. A mutated value must be
assigned back (``shoppers[user] = state.to_dict()``) or no changelog entry is written.
"""
import faust

from streams.app import app, settings

shoppers = app.Table(
    "shoppers", default=None, partitions=settings.partitions,
    schema=faust.Schema(key_serializer="json",
                        value_serializer="orjson"))
