"""The topics of the contract: their names (before the deployment's prefix) and how they are
created. Importing this starts nothing; the worker's Faust topics are built from these names in
:mod:`nextoffer.streams.worker.topics`.
"""
from __future__ import annotations

from dataclasses import dataclass

from nextoffer.streams.io.settings import Settings

CLICKSTREAM = "clickstream"
CART = "cart"
CATALOG = "catalog"
FEEDBACK = "offer-feedback"
OFFERS = "offers"
DEAD_LETTER = "dead-letter"
#: Internal: every order, so that every worker learns "bought together" from all shoppers.
BASKETS = "nextoffer-baskets"
#: Internal, compacted: checkpoints of what is learned only from events (the acceptance model).
MODELS = "nextoffer-models"
#: Internal: each worker's view counts, every few seconds, so that every worker's showcases
#: (most viewed, trending) count the views of all shoppers.
ACTIVITY = "nextoffer-activity"
#: Internal: each offer's ranked shortlist and propensities, for ``nextoffer ope``.
DECISIONS = "nextoffer-decisions"
#: Internal, compacted: the "bought together" rows each worker counts for its own partitions'
#: anchors, and its partitions' markers; every worker reads it in full (partitioned learning).
COMPLEMENTS = "nextoffer-complements"

SHOPPER_INPUTS = (CLICKSTREAM, CART, FEEDBACK)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    config: dict


def topic_specs(s: Settings) -> list[TopicSpec]:
    """Every topic nextoffer reads or writes (Faust adds its table changelogs itself).

    >>> [t.name for t in topic_specs(Settings(topic_prefix="shop1."))][:2]
    ['shop1.clickstream', 'shop1.cart']
    """
    retention = str(s.baskets_retention * 1000)
    return [TopicSpec(s.topic(CLICKSTREAM), {}), TopicSpec(s.topic(CART), {}),
            TopicSpec(s.topic(FEEDBACK), {}), TopicSpec(s.topic(OFFERS), {}),
            TopicSpec(s.topic(DEAD_LETTER), {}),
            TopicSpec(s.topic(CATALOG), {"cleanup.policy": "compact"}),
            TopicSpec(s.topic(BASKETS), {"retention.ms": retention}),
            TopicSpec(s.topic(MODELS), {"cleanup.policy": "compact"}),
            TopicSpec(s.topic(ACTIVITY), {"retention.ms": retention}),
            TopicSpec(s.topic(DECISIONS), {"retention.ms": retention}),
            TopicSpec(s.topic(COMPLEMENTS), {"cleanup.policy": "compact"})]
