"""The topics of the contract, with the deployment's prefix, and their creation."""
from __future__ import annotations

from dataclasses import dataclass

from streams.app import app, settings
from streams.settings import Settings

from streams.names import (BASKETS, CART, CATALOG, CLICKSTREAM, DEAD_LETTER, FEEDBACK,  # noqa: F401
                            OFFERS, SHOPPER_INPUTS)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    config: dict


def topic_specs(s: Settings) -> list[TopicSpec]:
    """Every topic nextoffer reads or writes (Faust adds its table changelogs itself)."""
    retention = str(s.baskets_retention * 1000)
    return [TopicSpec(s.topic(CLICKSTREAM), {}), TopicSpec(s.topic(CART), {}),
            TopicSpec(s.topic(FEEDBACK), {}), TopicSpec(s.topic(OFFERS), {}),
            TopicSpec(s.topic(DEAD_LETTER), {}),
            TopicSpec(s.topic(CATALOG), {"cleanup.policy": "compact"}),
            TopicSpec(s.topic(BASKETS), {"retention.ms": retention})]


def _topic(name: str, **kw):
    return app.topic(settings.topic(name), partitions=settings.partitions, **kw)


shopper_inputs = app.topic(*(settings.topic(n) for n in SHOPPER_INPUTS), partitions=settings.partitions)
catalog_topic = _topic(CATALOG, compacting=True)
offers_topic = _topic(OFFERS)
dead_letter_topic = _topic(DEAD_LETTER)
baskets_topic = _topic(BASKETS, retention=float(settings.baskets_retention))
