"""The worker's Faust topics, named as in :mod:`nextoffer.streams.io.topics`, with the prefix."""
from __future__ import annotations

from nextoffer.streams.io.topics import (ACTIVITY, BASKETS, CATALOG, COMPLEMENTS, DEAD_LETTER, DECISIONS, MODELS,
                                        OFFERS, SHOPPER_INPUTS)
from nextoffer.streams.worker.app import app, settings


def _topic(name: str, **kw):
    return app.topic(settings.topic(name), partitions=settings.partitions, **kw)


shopper_inputs = app.topic(*(settings.topic(n) for n in SHOPPER_INPUTS), partitions=settings.partitions)
catalog_topic = _topic(CATALOG, compacting=True)
offers_topic = _topic(OFFERS)
dead_letter_topic = _topic(DEAD_LETTER)
baskets_topic = _topic(BASKETS, retention=float(settings.baskets_retention))
models_topic = _topic(MODELS, compacting=True)
activity_topic = _topic(ACTIVITY, retention=float(settings.baskets_retention))
decisions_topic = _topic(DECISIONS, retention=float(settings.baskets_retention))
complements_topic = _topic(COMPLEMENTS, compacting=True)
