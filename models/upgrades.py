"""Upgrades learned from behaviour, for catalogs that declare no family ladders.

When a shopper looks at a product and then buys a pricier one of the same category
(a bigger size, the national brand instead of the store brand), that is one vote for
"A's upgrade is B". Votes ride on the order's record of the internal baskets topic, so
every worker learns the same relations.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Sequence

if TYPE_CHECKING:
    from nextoffer.models.catalog import Catalog
    from nextoffer.models.events import LineItem

#: Pricier choices remembered per product (the most chosen are kept).
MAX_UPGRADES = 20
#: Votes needed for half of the full score (smooths a relation seen once).
HALF_SCORE_VOTES = 2.0


def upgrade_votes(viewed: Sequence[str], order: Iterable["LineItem"], catalog: "Catalog") -> tuple:
    """(cheaper viewed product, pricier bought product) pairs of the same category.

    >>> from nextoffer.models.catalog import Catalog
    >>> from nextoffer.models.events import LineItem, Product
    >>> c = Catalog()
    >>> for pid, price, cat in (("own-tea", 3.0, "tea"), ("brand-tea", 5.0, "tea"), ("mug", 9.0, "mugs")):
    ...     c.upsert(Product(pid, price, category=cat))
    >>> upgrade_votes(["own-tea", "mug"], [LineItem("brand-tea", 1, 5.0)], c)
    (('own-tea', 'brand-tea'),)
    """
    votes = []
    for line in order:
        bought = catalog.get(line.product_id)
        if bought is None or bought.category is None:
            continue
        for pid in viewed:
            seen = catalog.get(pid)
            if (seen is not None and pid != bought.product_id and seen.category == bought.category
                    and seen.price < bought.price):
                votes.append((pid, bought.product_id))
    return tuple(dict.fromkeys(votes))


class LearnedUpgrades:
    """Counts of "viewed A, bought pricier B of the same category".

    >>> u = LearnedUpgrades()
    >>> for _ in range(3):
    ...     u.observe([("own-tea", "brand-tea")])
    >>> u.observe([("own-tea", "gold-tea")])
    >>> [(pid, round(score, 2), votes) for pid, score, votes in u.upgrades("own-tea")]
    [('brand-tea', 0.6, 3.0), ('gold-tea', 0.33, 1.0)]
    """

    def __init__(self) -> None:
        self._votes: dict[str, dict[str, float]] = {}

    def __len__(self) -> int:
        return len(self._votes)

    def observe(self, votes: Iterable[tuple[str, str]]) -> None:
        """One order's votes: (cheaper product viewed, pricier one of its category bought).

        >>> learned = LearnedUpgrades()
        >>> learned.observe([("kettle", "kettle-pro"), ("kettle", "kettle-pro"), ("kettle", "kettle-max")])
        >>> [(pid, round(score, 2), votes) for pid, score, votes in learned.upgrades("kettle")]
        [('kettle-pro', 0.5, 2.0), ('kettle-max', 0.33, 1.0)]
        """
        for cheaper, pricier in votes:
            row = self._votes.setdefault(cheaper, {})
            row[pricier] = row.get(pricier, 0.0) + 1.0
            if len(row) > 2 * MAX_UPGRADES:
                self._votes[cheaper] = dict(sorted(row.items(), key=lambda kv: kv[1], reverse=True)[:MAX_UPGRADES])

    def upgrades(self, product_id: str) -> list[tuple[str, float, float]]:
        """(product, score 0..1, votes), most chosen first; score = votes / (votes + 2)."""
        row = self._votes.get(product_id, {})
        ranked = sorted(row.items(), key=lambda kv: kv[1], reverse=True)
        return [(pid, n / (n + HALF_SCORE_VOTES), n) for pid, n in ranked]
