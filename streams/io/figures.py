"""A worker's counts read as figures: dead-letter reasons as labels, acceptance, attach rate, AOV.

The worker's Prometheus metrics and its dashboard snapshot (:mod:`nextoffer.streams.worker.metrics`)
and the dashboard that adds snapshots up across workers (:mod:`nextoffer.streams.ops.summary`)
read the same counts the same way, through this module.
"""
from __future__ import annotations

import re
from typing import Mapping, Optional

_REASONS = (  # (pattern in a dead-letter reason, label): few labels, so Prometheus stays cheap
    (r"^empty message", "empty"), (r"^oversized", "oversized"), (r"^not JSON", "not_json"),
    (r"^not a JSON object", "not_object"), (r"^missing required field", "missing_field"),
    (r"^unknown type", "unknown_type"), (r"must be a (string|number|list|whole|finite)", "bad_value"),
    (r"characters long|is empty|lines \(limit", "too_long"), (r"'ts'", "bad_time"),
    (r"message key|message has no key", "bad_key"), (r"^internal error", "internal_error"),
    (r"^items\[", "bad_item"), (r"^field '", "bad_value"),
)


def reason_label(reason: str) -> str:
    """A dead-letter reason as a metric label.

    >>> reason_label("not JSON: unexpected character"), reason_label("field 'price' must be a number, got string")
    ('not_json', 'bad_value')
    >>> reason_label("message key 'u2' differs from user_id 'u1'; key messages by user_id"), reason_label("?")
    ('bad_key', 'other')
    """
    for pattern, label in _REASONS:
        if re.search(pattern, reason):
            return label
    return "other"


class Figures:
    """What a worker has done since it started, read from the pipeline and the engine.

    >>> from collections import Counter
    >>> f = Figures(Counter({"events.cart.add": 3, "offers.cross_sell.cart": 2, "no_offer.no_anchor": 1}),
    ...             Counter({"outcome.cross_sell.cart.accepted": 1, "outcome.cross_sell.cart.declined": 3,
    ...                      "orders.treated": 2, "order_value.treated": 50.0, "orders_with_offer.treated": 1}),
    ...             Counter())
    >>> f.acceptance_rate(), f.attach_rate("treated"), f.aov("treated"), f.aov("control")
    (0.25, 0.5, 25.0, None)
    """

    def __init__(self, stats: Mapping, tally: Mapping, dead_letters: Mapping) -> None:
        self.stats, self.tally, self.dead_letters = stats, tally, dead_letters

    def by_prefix(self, source: Mapping, prefix: str) -> dict[tuple[str, ...], float]:
        return {tuple(k[len(prefix):].split(".")): v for k, v in list(source.items()) if k.startswith(prefix)}

    def outcomes(self) -> tuple[float, float]:
        got = self.by_prefix(self.tally, "outcome.")
        return (sum(v for k, v in got.items() if k[-1] == "accepted"),
                sum(v for k, v in got.items() if k[-1] == "declined"))

    def acceptance_rate(self) -> Optional[float]:
        """Accepted / settled offered items (explicit feedback and implicit adds or purchases)."""
        accepted, declined = self.outcomes()
        return accepted / (accepted + declined) if accepted + declined else None

    def attach_rate(self, group: str) -> Optional[float]:
        """Share of the group's orders that include an offered item."""
        orders = self.tally.get(f"orders.{group}", 0)
        return self.tally.get(f"orders_with_offer.{group}", 0) / orders if orders else None

    def aov(self, group: str) -> Optional[float]:
        orders = self.tally.get(f"orders.{group}", 0)
        return self.tally.get(f"order_value.{group}", 0.0) / orders if orders else None
