"""Candidate items for an offer: upgrades of the anchor, or complements of the order."""
from __future__ import annotations

import math
from itertools import repeat
from operator import attrgetter
from typing import NamedTuple, Optional, Sequence, Union

import numpy as np

from nextoffer.models.bought_together import BoughtTogether
from nextoffer.models.catalog import Catalog
from nextoffer.models.events import Product
from nextoffer.models.profile import ProfileView, price_position
from nextoffer.models.repeats import RepeatPurchases
from nextoffer.models.rules import OfferRules
from nextoffer.models.shopper import ShopperState
from nextoffer.models.upgrades import LearnedUpgrades

try:        # candidate lists made in C (models/_kernels.c): the same candidates as the Python below
    from nextoffer.models._kernels import category_upsells, content_rows, cross_sell_rows, repeat_blend
except ImportError:
    category_upsells = content_rows = cross_sell_rows = repeat_blend = None

#: Score of the nearest higher tier in the anchor's family; each further tier gets 0.9x.
FAMILY_SCORE = 1.0
#: Base score of a same-category upgrade, raised by its popularity.
CATEGORY_SCORE = 0.3
#: Full score of an upgrade learned from shoppers' choices (scaled by its share of votes).
LEARNED_SCORE = 0.8
#: Price step (in log price, about +40%) above the shopper's usual level an upgrade may reach unpenalised.
REACH_STEP = 0.35
#: How fast an upgrade's score falls beyond that reach.
REACH_FALLOFF = 3.0
#: Tiers above the next one are left out when their reach falls below this.
MIN_REACH = 0.5
#: Share of a category-level complement's score given to a content-based candidate.
CONTENT_SCORE = 0.5
#: Products looked at per related category by the content fallback.
CONTENT_SCAN = 200


class Candidate(NamedTuple):
    """A product that could be offered, its relevance and why.

    ``why`` is the reason as text, or as a format string and its arguments: a decision builds
    dozens of candidates and offers three, so the text is only made for those read. A named
    tuple: a decision builds a hundred or more, and a tuple is made several times faster than a
    frozen dataclass.

    >>> Candidate("mug", 0.5, ("in {:.0%} of orders", 0.25)).reason
    'in 25% of orders'
    """

    product_id: str
    score: float
    why: Union[str, tuple]
    price: Optional[float] = None
    source: str = "bought_together"   # family, learned_upgrade, category, bought_together, history, content
    bought: float = 0.0               # its "bought together" score (cross-sells), before any blend
    history: float = 0.0              # its repeat-buy score for this shopper, before its weight

    @property
    def reason(self) -> str:
        why = self.why
        return why if type(why) is str else why[0].format(*why[1:])


def upsells(anchor: Product, catalog: Catalog, bought: BoughtTogether, rules: OfferRules,
            now: float, learned: Optional[LearnedUpgrades] = None,
            profile: Optional[ProfileView] = None,
            band: Optional[tuple[float, float]] = None) -> list[Candidate]:
    """Upgrades of the anchor: its family's higher tiers first, else upgrades learned from
    shoppers' choices, else pricier items of its category. The shopper's price level and
    sensitivity decide how far up a ladder an offer reaches (:func:`reach`).

    >>> from nextoffer.models.events import Product
    >>> c = Catalog()
    >>> for pid, price, tier in (("s-128", 700.0, 1), ("s-256", 800.0, 2), ("s-1t", 1500.0, 3)):
    ...     c.upsert(Product(pid, price, name=pid.upper(), family="s", tier=tier))
    >>> [(x.product_id, x.reason) for x in upsells(c.get("s-128"), c, BoughtTogether(), OfferRules(), 0)]
    [('s-256', 'same line, S-256, +14%')]
    """
    ladder = [p for p in catalog.higher_tiers(anchor.product_id)
              if _step_ok(anchor.price, p.price, 0.0, rules.family_max_step, rules)]
    if ladder:
        tiers = [(rank, p, reach(anchor, p, catalog, profile)) for rank, p in enumerate(ladder)]
        return sorted((Candidate(p.product_id, FAMILY_SCORE * 0.9 ** rank * fit,
                                 f"same line, {p.label}, +{p.price / anchor.price - 1:.0%}", p.price, "family")
                       for rank, p, fit in tiers if fit >= MIN_REACH or rank == 0),
                      key=lambda c: c.score, reverse=True)
    min_step, max_step = band if band is not None else (rules.upsell_min_step, rules.upsell_max_step)
    low_step = min_step if rules.price_rules else 0.0
    chosen = []
    for pid, share, votes in (learned.upgrades(anchor.product_id) if learned is not None else ()):
        p = catalog.get(pid)
        if p is None or not _step_ok(anchor.price, p.price, low_step, max_step, rules):
            continue
        chosen.append(Candidate(pid, LEARNED_SCORE * share * reach(anchor, p, catalog, profile),
                                f"shoppers who looked at {anchor.label} often chose {p.label} "
                                f"({votes:.0f}x), +{p.price / anchor.price - 1:.0%}", p.price, "learned_upgrade"))
    if chosen:
        return sorted(chosen, key=lambda c: c.score, reverse=True)
    if anchor.category is None:
        return []
    low = anchor.price * (1 + low_step)
    high = anchor.price * (1 + max_step) if rules.price_rules else float("inf")
    in_band = catalog.in_category_between(anchor.category, low, high)
    if bought.compiled and category_upsells is not None:    # the same candidates, made in C
        ranked = category_upsells(in_band, anchor.product_id, anchor.price, anchor.brand or None,
                                  bought.item_counts, bought.scale(now), CATEGORY_SCORE,
                                  reach_terms(anchor, catalog, profile), SAME_CATEGORY, Candidate)
        if ranked is not None:
            return ranked
    out = []
    # A category can offer hundreds: sales read with one scale, the shopper's reach with the
    # anchor's price position read once, the reason made only when read.
    scale, sold_of, fit = bought.scale(now), bought.item_counts.get, reach_from(anchor, catalog, profile)
    for p in in_band:
        if p.product_id == anchor.product_id or p.price <= anchor.price:
            continue
        bought_count = sold_of(p.product_id, 0.0) / scale
        score = CATEGORY_SCORE + 0.5 * bought_count / (bought_count + 5.0)
        if anchor.brand and p.brand == anchor.brand:
            score += 0.1
        out.append(Candidate(p.product_id, score * fit(p), (SAME_CATEGORY, p.label, p.price / anchor.price - 1),
                             p.price, "category"))
    return sorted(out, key=lambda c: c.score, reverse=True)


#: The reason of a same-category upgrade: its label and how much more it costs.
SAME_CATEGORY = "same category, {}, +{:.0%}"


def reach(anchor: Product, upgrade: Product, catalog: Catalog, profile: Optional[ProfileView]) -> float:
    """How well an upgrade's price suits the shopper, 0 to 1 (1 without a known price level).

    An upgrade up to ``REACH_STEP`` above the higher of the anchor and the shopper's usual
    price level keeps its score; beyond it the score falls off, faster for a price-sensitive
    shopper. So a shopper who buys at the top of categories is offered the top tier, and one
    who buys cheap the next tier only.

    >>> from nextoffer.models.profile import ProfileView
    >>> c = Catalog()
    >>> for pid, price in (("s", 100.0), ("m", 130.0), ("l", 250.0)):
    ...     c.upsert(Product(pid, price, category="tv"))
    >>> thrifty = ProfileView("repeat", "engaged", "buying", -0.3, 0.9, {})
    >>> lavish = ProfileView("repeat", "engaged", "buying", 0.9, 0.1, {})
    >>> round(reach(c.get("s"), c.get("l"), c, thrifty), 2), round(reach(c.get("s"), c.get("l"), c, lavish), 2)
    (0.12, 1.0)
    """
    if profile is None or profile.price_level is None:
        return 1.0
    base, top = price_position(anchor, catalog), price_position(upgrade, catalog)
    if base is None or top is None:
        return 1.0
    allowed = max(base, profile.price_level) + REACH_STEP * (1.5 - profile.price_sensitivity)
    return math.exp(-REACH_FALLOFF * max(0.0, top - allowed))


def reach_from(anchor: Product, catalog: Catalog, profile: Optional[ProfileView]):
    """:func:`reach` of the anchor's upgrades as a function of the upgrade, the anchor's price
    position and the shopper's allowance read once (the same floats).

    >>> c = Catalog()
    >>> for pid, price in (("s", 100.0), ("m", 130.0), ("l", 250.0)):
    ...     c.upsert(Product(pid, price, category="tv"))
    >>> thrifty = ProfileView("repeat", "engaged", "buying", -0.3, 0.9, {})
    >>> fit = reach_from(c.get("s"), c, thrifty)
    >>> [fit(c.get(pid)) == reach(c.get("s"), c.get(pid), c, thrifty) for pid in ("m", "l")]
    [True, True]
    """
    terms = reach_terms(anchor, catalog, profile)
    if terms is None:
        return lambda upgrade: 1.0
    allowed = terms[1]
    medians: dict[str, float] = {}     # each category's median read once

    def fit(upgrade: Product) -> float:
        top = price_position(upgrade, catalog, medians)
        return 1.0 if top is None else math.exp(-REACH_FALLOFF * max(0.0, top - allowed))
    return fit


def reach_terms(anchor: Product, catalog: Catalog, profile: Optional[ProfileView]):
    """What :func:`reach` of an upgrade in the anchor's category reads: (the category's median
    price, the log price step allowed, :data:`REACH_FALLOFF`), or None when every upgrade fits
    (no price level known, or no price position for the anchor).

    >>> c = Catalog()
    >>> for pid, price in (("s", 100.0), ("m", 130.0), ("l", 250.0)):
    ...     c.upsert(Product(pid, price, category="tv"))
    >>> median, allowed, falloff = reach_terms(c.get("s"), c, ProfileView("repeat", "engaged", "buying", -0.3, 0.9, {}))
    >>> median, round(allowed, 4), falloff
    (130.0, -0.0524, 3.0)
    >>> reach_terms(c.get("s"), c, None) is None
    True
    """
    if profile is None or profile.price_level is None:
        return None
    base = price_position(anchor, catalog)
    if base is None:
        return None
    allowed = max(base, profile.price_level) + REACH_STEP * (1.5 - profile.price_sensitivity)
    return catalog.category_median(anchor.category), allowed, REACH_FALLOFF


def content_fallback(anchor: Optional[Product], catalog: Catalog, bought: BoughtTogether,
                     categories: BoughtTogether, rules: OfferRules, now: float,
                     limit: int) -> list[Candidate]:
    """For a product without "bought together" evidence yet (new, or rare): popular products of
    the categories bought with its category, the anchor's brand first. Marked ``content``.

    >>> c = Catalog()
    >>> for pid, cat, brand in (("new-phone", "phone", "Nova"), ("case-a", "case", "Armor"),
    ...                         ("case-n", "case", "Nova"), ("mug", "mugs", None)):
    ...     c.upsert(Product(pid, 10.0, category=cat, brand=brand))
    >>> cats = BoughtTogether(half_life=None)
    >>> for basket in (["phone", "case"], ["phone", "case"], ["mugs"], ["mugs"]):
    ...     cats.observe_basket(basket, 0.0)
    >>> [(x.product_id, x.source) for x in content_fallback(c.get("new-phone"), c, BoughtTogether(), cats,
    ...                                                     OfferRules(), 0.0, 3)]
    [('case-n', 'content'), ('case-a', 'content')]
    """
    if anchor is None or anchor.category is None:
        return []
    related = categories.complements([(anchor.category, 1.0)], now, rules.min_support, rules.min_lift, 3)
    # Up to three categories of CONTENT_SCAN products are scored, and ``limit`` of them kept: the
    # scores as arrays (the same operations in the same order: the same floats), the candidates
    # and their reasons only for those kept, in the order a stable sort of the candidates by
    # score gives (ties keep the scan's order).
    brand = anchor.brand
    if bought.compiled and content_rows is not None:        # the same candidates, made in C
        groups = [(rel.product_id, rel.score, catalog.in_category(rel.product_id))
                  for rel in related if rel.product_id != anchor.category]
        ranked = content_rows(groups, bought.item_counts, catalog.products_by_id, bought.scale(now), CONTENT_SCORE,
                              brand or None, anchor.label, anchor.category, CONTENT_SCAN, limit,
                              SAME_BRAND_POPULAR, POPULAR_IN, Candidate)
        if ranked is not None:
            return ranked
    # The products' counts and brands gathered by map (C loops): a category scan reads 200 each.
    scale, sold_of, get = bought.scale(now), bought.item_counts.get, catalog.get
    products: list[str] = []
    scores, sources = [], []
    for rel in related:
        if rel.product_id == anchor.category:
            continue
        ids = catalog.in_category(rel.product_id)[:CONTENT_SCAN]
        sold = np.fromiter(map(sold_of, ids, repeat(0.0)), dtype=float, count=len(ids)) / scale
        if brand:
            brands = np.fromiter(map(_brand_of, map(get, ids)), dtype=object, count=len(ids))
            brand_factor = np.where(brands == brand, 1.2, 1.0)
        else:
            brand_factor = 1.0
        scores.append(CONTENT_SCORE * rel.score * (0.5 + 0.5 * sold / (sold + 5.0)) * brand_factor)
        products += ids
        sources += [rel.product_id] * len(ids)
    if not products:
        return []
    score = np.concatenate(scores)
    out = []
    label = anchor.label
    for i in np.argsort(-score, kind="stable")[:limit].tolist():
        p = get(products[i])
        why = ((SAME_BRAND_POPULAR, label, sources[i], anchor.category) if brand and p.brand == brand
               else (POPULAR_IN, sources[i], anchor.category))
        out.append(Candidate(p.product_id, float(score[i]), why, p.price, "content"))
    return out


_brand_of = attrgetter("brand")
#: The reasons of a content candidate (made into text only when read).
POPULAR_IN = "popular in {}, which is often bought with {}"
SAME_BRAND_POPULAR = "same brand as {}, popular in {}, which is often bought with {}"


def cross_sells(anchors: Sequence[tuple[str, float]], catalog: Catalog, bought: BoughtTogether,
                rules: OfferRules, now: float, limit: int) -> list[Candidate]:
    """The best ``limit`` complements of the weighted anchors from "bought together" counts."""
    out = []
    get = catalog.get
    families = {p.family for p in map(get, (a for a, _ in anchors)) if p and p.family}
    if bought.compiled and cross_sell_rows is not None:    # the same candidates, made in C
        labels = {a: p.label if p else a for a, p in ((a, get(a)) for a, _ in anchors)}
        return bought.evidence_rows(cross_sell_rows, anchors, now, rules.min_support, rules.min_lift, limit,
                                    catalog.products_by_id, families, labels, BOUGHT_WITH, Candidate)
    labels: dict[str, str] = {}
    for c in bought.complements(anchors, now, rules.min_support, rules.min_lift, limit):
        product = get(c.product_id)
        if product is not None and product.family is not None and product.family in families:
            continue  # another tier of what they have is an upsell or a substitute, not a complement
        label = labels.get(c.anchor_id)
        if label is None:
            anchor = get(c.anchor_id)
            label = labels[c.anchor_id] = anchor.label if anchor else c.anchor_id
        out.append(Candidate(c.product_id, c.score, (BOUGHT_WITH, label, c.attachment_rate, c.lift),
                             product.price if product else None, bought=c.score))
    return out


#: The reason of a "bought together" candidate: the anchor's label, attachment rate and lift.
BOUGHT_WITH = "often bought with {}: in {:.0%} of its orders, {:.1f}x the usual rate"


#: Added to a past purchase that was in the same order as the anchor last time.
WITH_ANCHOR_BONUS = 0.1
#: Past purchases come back only if their product is bought again at least this often.
MIN_REPEAT_RATE = 0.05
#: Weight of the product's repeat rate beside the share of the shopper's own orders that held it.
PRODUCT_HABIT = 0.3
#: The reasons of a repeat buy: in how many of the shopper's orders, and the product's repeat rate;
#: or bought with the anchor last time.
BOUGHT_BEFORE = "you bought it in {} of your {} order{}; {:.0%} of its orders are repeat buys"
BOUGHT_WITH_ANCHOR = "you bought it with this item before ({} order{})"


def repeat_buys(shopper: ShopperState, repeats: RepeatPurchases, catalog: Catalog, anchor_id: str,
                half_life: float) -> list[Candidate]:
    """What the shopper bought before, by how likely such a product is bought again.

    A staple bought in most of the shopper's recent orders scores high, by the
    share of their orders that held it and its product's repeat rate; a one-off
    purchase of a durable good, or one long ago, scores near zero.
    Items bought in the same order as the anchor last time get a small bonus.
    """
    history = shopper.purchases
    latest = max(ts for _, ts in history.values())
    anchor_ts = history[anchor_id][1] if anchor_id in history else None
    orders = max(1, shopper.orders)
    out = []
    for pid, (times, ts) in history.items():
        rate = repeats.rate(pid)
        if rate < MIN_REPEAT_RATE:
            continue  # evidence says buyers do not come back for it (a grinder, a sofa)
        # how often buyers come back for the product, and how often this shopper does
        habit = PRODUCT_HABIT * rate + (1 - PRODUCT_HABIT) * min(1.0, times / orders)
        score = habit * (1 - 0.5 ** times) * 0.5 ** ((latest - ts) / half_life)
        if ts == anchor_ts:
            score += WITH_ANCHOR_BONUS
            reason = (BOUGHT_WITH_ANCHOR, times, "s" if times > 1 else "")
        else:
            reason = (BOUGHT_BEFORE, min(times, orders), orders, "s" if orders > 1 else "", rate)
        product = catalog.get(pid)
        out.append(Candidate(pid, score, reason, product.price if product else None, "history"))
    return out


def with_repeat_buys(complements: list[Candidate], shopper: ShopperState, repeats: RepeatPurchases,
                     catalog: Catalog, anchor_id: str, half_life: float, weight: float,
                     compiled: bool = True) -> list[Candidate]:
    """``blend(complements, repeat_buys(...), weight)``: in one compiled kernel where built
    (``compiled``), the same candidates in the same order with the same floats.

    >>> shopper = ShopperState("u1", orders=2, purchases={"tea": [2, 100.0]})
    >>> [(c.product_id, round(c.score, 3), c.source) for c in with_repeat_buys(
    ...     [Candidate("mug", 0.2, "with x", bought=0.2)], shopper, RepeatPurchases(), Catalog(),
    ...     "mug", 86_400.0, 1.0)]
    [('tea', 0.547, 'history'), ('mug', 0.2, 'bought_together')]
    """
    if compiled and repeat_blend is not None and type(complements) is list:
        return repeat_blend(complements, shopper.purchases, shopper.orders, anchor_id, repeats.index,
                            repeats.order_counts(), repeats.again_counts(), repeats.prior_rate,
                            repeats.prior_weight, catalog.products_by_id, half_life, weight, MIN_REPEAT_RATE,
                            PRODUCT_HABIT, 1 - PRODUCT_HABIT, WITH_ANCHOR_BONUS, BOUGHT_BEFORE,
                            BOUGHT_WITH_ANCHOR, "history", Candidate)
    return blend(complements, repeat_buys(shopper, repeats, catalog, anchor_id, half_life), weight)


def blend(complements: Sequence[Candidate], personal: Sequence[Candidate], weight: float) -> list[Candidate]:
    """Add the weighted personal score to the complement score; the larger part gives the reason.

    >>> merged = blend([Candidate("a", 0.2, "with x", bought=0.2)],
    ...                [Candidate("a", 0.3, "again"), Candidate("b", 0.1, "again")], 1.0)
    >>> [(c.product_id, c.score, c.reason, c.bought, c.history) for c in merged]
    [('a', 0.5, 'again', 0.2, 0.3), ('b', 0.1, 'again', 0.0, 0.1)]
    """
    merged = {c.product_id: c for c in complements}
    for p in personal:
        part = weight * p.score
        if part <= 0:
            continue
        c = merged.get(p.product_id)
        if c is None:
            merged[p.product_id] = Candidate(p.product_id, part, p.why, p.price, p.source, history=p.score)
        else:
            personal_wins = part > c.score
            merged[p.product_id] = Candidate(c.product_id, c.score + part,
                                             p.why if personal_wins else c.why, c.price,
                                             p.source if personal_wins else c.source, c.bought, p.score)
    return sorted(merged.values(), key=lambda c: c.score, reverse=True)


def _step_ok(anchor_price: float, price: float, low: float, high: float, rules: OfferRules) -> bool:
    if price <= anchor_price:
        return False
    return not rules.price_rules or low <= price / anchor_price - 1 <= high
