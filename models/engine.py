"""One step of nextoffer: an event in, the shopper's new state and at most one offer out.

The engine is what workers, the offline evaluation and tests all run, so the
figures measured off-line are the live pipeline's figures.
"""
from __future__ import annotations

import random
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Optional

from nextoffer.models.bought_together import DAY, DEFAULT_MIN_SUPPORT, BoughtTogether
from nextoffer.models import profile
from nextoffer.models.reranker import PairwiseRanker
from nextoffer.models.acceptance import AcceptanceModel, OfferedItem, shopper_features
from nextoffer.models.catalog import Catalog
from nextoffer.models.events import CART, LineItem, Product, ShopperEvent
from nextoffer.models.offer import Offer
from nextoffer.models.policy import OfferPolicy, Situation, in_control_group
from nextoffer.models.proportion import PriceProportions
from nextoffer.models.repeats import RepeatPurchases
from nextoffer.models.rules import OfferRules
from nextoffer.models.shopper import ShopperState
from nextoffer.models.product_index import ProductIndex
from nextoffer.models.showcases import Counts, Showcases, ShowcaseSettings
from nextoffer.models.upgrades import LearnedUpgrades, upgrade_votes


@dataclass(frozen=True, slots=True)
class LearnerSettings:
    """Settings of the online learners."""

    half_life: float = field(default=90 * DAY, metadata={
        "doc": "Seconds after which a 'bought together' observation counts half (time decay)."})
    max_neighbours: int = field(default=100, metadata={
        "doc": "Complements remembered per product (the strongest are kept)."})
    max_basket: int = field(default=60, metadata={
        "doc": "Products of one order paired for 'bought together' (larger orders are wholesale)."})
    lift_exponent: float = field(default=0.2, metadata={
        "doc": "Weight of lift beside attachment rate in a complement's score (0 = attachment only)."})
    acceptance_learning_rate: float = field(default=0.05, metadata={
        "doc": "Step size of the online acceptance model (logistic regression, SGD)."})
    ranking_step: float = field(default=0.001, metadata={
        "doc": "Step size of the learned cross-sell order (pairwise logistic, one step per order)."})
    seed: int = field(default=0, metadata={"doc": "Seed of the exploration's random choices."})
    recent_sales_half_life: float = field(default=7 * DAY, metadata={
        "doc": "Seconds after which an order counts half in a product's recent sales (a feature of the "
               "learned cross-sell order: what is selling now)."})
    proportion_quantile: float = field(default=0.98, metadata={
        "doc": "Share of the price ratios of products this store's shoppers bought together that a "
               "cross-sell's price ratio to its anchor may reach (the learned proportion)."})
    proportion_min_evidence: int = field(default=50, metadata={
        "doc": "Priced pairs of orders before the store's learned proportion replaces the configured "
               "shares (NEXTOFFER_CROSS_SELL_MAX_SHARE, _FIRST_TIME_MAX_SHARE, the upsell steps)."})
    proportion_min_category_evidence: int = field(default=30, metadata={
        "doc": "Priced pairs of one category pair before its own proportion replaces the store's."})
    compiled_kernels: bool = field(default=True, metadata={
        "doc": "Run the core's compiled kernels (models/_kernels.c) where the install built them: the "
               "same offers, faster. Off: their Python versions (to compare speed)."})


@dataclass(frozen=True, slots=True)
class Basket:
    """An order's products and prices: what every worker's learners learn from."""

    user_id: str
    ts: float
    items: tuple[LineItem, ...]
    repeats: tuple[str, ...] = ()     # products this shopper had bought before
    event_id: str = ""                # the purchase event's id: a replayed order is learned once
    upgrades: tuple = ()              # (cheaper viewed, pricier bought) pairs: learned upgrades
    first_order: bool = False         # the shopper's first order: what first-time buyers take


@dataclass(frozen=True, slots=True)
class Outcome:
    """What processing one event produced."""

    applied: bool                      # False for a duplicate event
    offer: Optional[Offer] = None
    reason: str = "duplicate"          # why there is no offer, or "offer"
    basket: Optional[Basket] = None    # set by purchases
    shortlist: tuple = ()              # the offer's ranked candidates, for the decision log


class OfferEngine:
    """Holds the shared learners and the policy; processes one shopper event at a time.

    >>> engine = OfferEngine(OfferRules())
    >>> engine.learn_basket(Basket("u0", 0.0, (LineItem("teapot", 1, 40.0), LineItem("tea", 1, 6.0))))
    >>> engine.learn_basket(Basket("u2", 1.0, (LineItem("teapot", 1, 40.0), LineItem("tea", 1, 6.0))))
    >>> engine.learn_basket(Basket("u3", 2.0, (LineItem("cake", 1, 9.0),)))
    >>> shopper = ShopperState("u1")
    >>> out = engine.process(shopper, ShopperEvent("cart", "add", "e1", "u1", 3.0, product_id="teapot",
    ...                                            price=40.0), generated_at=3.0)
    >>> out.offer.kind.value, out.offer.product_ids
    ('cross_sell', ['tea'])
    """

    def __init__(self, rules: OfferRules, learners: LearnerSettings = LearnerSettings(),
                 catalog: Optional[Catalog] = None, showcases: ShowcaseSettings = ShowcaseSettings()) -> None:
        self.rules = rules
        self.catalog = catalog if catalog is not None else Catalog()
        self.bought = BoughtTogether(learners.half_life, learners.max_neighbours,
                                     learners.max_basket, learners.lift_exponent)
        # Rows adopted from other workers keep only the pairs that decisions or showcases can use.
        self.bought.read_support = min(rules.min_support, DEFAULT_MIN_SUPPORT)
        #: Product -> position in the per-product arrays of the learners, one index for all of them.
        self.products = ProductIndex()
        self.repeats = RepeatPurchases(products=self.products)
        self.acceptance = AcceptanceModel(learners.acceptance_learning_rate)
        self.upgrades = LearnedUpgrades()
        self.proportions = PriceProportions(learners.proportion_quantile, learners.proportion_min_evidence,
                                            learners.proportion_min_category_evidence)
        # categories bought together: the content fallback's related categories
        self.categories = BoughtTogether(learners.half_life, learners.max_neighbours,
                                         learners.max_basket, learners.lift_exponent)
        self.bought.compiled = self.bought.compiled and learners.compiled_kernels
        self.categories.compiled = self.categories.compiled and learners.compiled_kernels
        if not learners.compiled_kernels:
            self.acceptance.rounding = round
        #: The store's recommendation windows (best sellers, trending, similar, ...).
        self.showcases = Showcases(self.catalog, self.bought, showcases, self.products)
        #: The learned order of a cross-sell's best candidates (models/reranker.py), if on.
        self.ranker = PairwiseRanker(learners.ranking_step, rules.learned_ranking_depth) if rules.learned_ranking else None
        #: Orders holding each product, decayed over days: what is selling now.
        self.recent_sales = Counts(learners.recent_sales_half_life, self.products)
        self.policy = OfferPolicy(rules, self.catalog, self.bought, self.repeats, self.acceptance,
                                  random.Random(learners.seed), self.upgrades, self.categories,
                                  self.proportions, self.ranker, self.recent_sales)
        #: Business and model counts since start, for metrics: ``outcome.<kind>.<placement>.<accepted|
        #: declined>``, ``segment_outcome.<segment>.<accepted|declined>``, ``orders.<treated|control>``,
        #: ``order_value.<group>``, ``orders_with_offer.<group>``, ``updates.<learner>``.
        self.tally: Counter = Counter()

    def process(self, shopper: ShopperState, event: ShopperEvent, generated_at: float) -> Outcome:
        """Apply ``event`` to ``shopper`` (in place) and decide its offer.

        The outcome says whether the event was new (a repeated ``event_id`` changes nothing), the
        offer or why there is none, and for a purchase the basket every worker learns from.

        >>> engine = OfferEngine(OfferRules())
        >>> engine.update_product(Product("s-128", 700.0, family="s", tier=1))
        >>> engine.update_product(Product("s-256", 800.0, family="s", tier=2))
        >>> shopper = ShopperState("u1")
        >>> view = ShopperEvent("clickstream", "view", "e1", "u1", 1_700_000_000.0, product_id="s-128")
        >>> out = engine.process(shopper, view, generated_at=1_700_000_000.0)
        >>> out.applied, out.offer.kind.value, out.offer.product_ids
        (True, 'upsell', ['s-256'])
        >>> engine.process(shopper, view, generated_at=1_700_000_000.0).applied   # a duplicate
        False
        """
        order = shopper.order_lines(event) if event.source == CART and event.type == "purchase" else ()
        repeats = tuple(line.product_id for line in order if line.product_id in shopper.purchases)
        previous_ts, previous_session = shopper.last_ts, shopper.session_id
        # what the order says about the ranking, read before the state takes the order in
        ranker = self.policy.ranker     # a policy swapped in (a simulation's) may have none
        example = (self.policy.ranking_example(shopper, order, event.ts)
                   if order and ranker is not None and event.event_id not in shopper.seen
                   and _sampled(event.event_id, self.rules.learned_ranking_share) else None)
        if not shopper.apply(event):
            return Outcome(False)
        if example is not None:
            ranker.learn(*example)
            self.tally["updates.ranking"] += 1
        self._observe_products(event, order)
        taken = {line.product_id for line in order} or ({event.product_id} if event.type == "add" else set())
        outcomes = shopper.take_outcomes(event, taken)
        # outcomes are learned with the profile as it was when the offer was shown, not after this event
        self._learn_acceptance(shopper, outcomes, event.ts)
        profile.observe(shopper, event, self.catalog, self.policy.profile_settings,
                        previous_ts, previous_session)
        with_offer = shopper.attach({item.product_id for item, took in outcomes if took}, order)
        basket = None
        if order:
            self._tally_order(event.user_id, order, with_offer)
            basket = Basket(event.user_id, event.ts, order, repeats, event.event_id,
                            upgrade_votes(shopper.views, order, self.catalog), shopper.orders == 1)
        decision = self.policy.decide(Situation(event, shopper, order, event.ts, generated_at))
        if decision.offer is not None:
            lapsed = shopper.record_offer(decision.offer.offer_id, list(decision.records), event.ts,
                                          self.rules.fatigue_window)
            # the profile as the decision read it: recording the offer changed nothing it reads
            self._learn_acceptance(shopper, [(r, False) for r in lapsed], event.ts, decision.profile)
        return Outcome(True, decision.offer, decision.reason, basket, decision.shortlist)

    def _learn_acceptance(self, shopper: ShopperState, outcomes: list[tuple[OfferedItem, bool]], ts: float,
                          now: Optional[profile.ProfileView] = None) -> None:
        """Learn the outcomes, with the shopper's profile at ``ts`` (``now``, when already read)."""
        if not outcomes:
            return
        if now is None:
            now = profile.view(shopper, ts, self.policy.profile_settings)
        for item, taken in outcomes:
            product = self.catalog.get(item.product_id)
            position = profile.price_position(product, self.catalog) if product is not None else None
            self.acceptance.learn(item, taken, shopper_features(now, product, position))
            if item.kind == "upsell":
                profile.learn_upsell_outcome(shopper, taken)
            verdict = "accepted" if taken else "declined"
            self.tally[f"outcome.{item.kind}.{item.placement}.{verdict}"] += 1
            self.tally[f"segment_outcome.{now.segment}.{verdict}"] += 1
        self.tally["updates.acceptance"] += len(outcomes)

    def _tally_order(self, user_id: str, order: tuple[LineItem, ...], with_offer: bool) -> None:
        """Orders and their value by group, to compare treated shoppers with the control group."""
        group = "control" if in_control_group(user_id, self.rules.control_share) else "treated"
        self.tally[f"orders.{group}"] += 1
        self.tally[f"order_value.{group}"] += sum((line.price or 0.0) * line.quantity for line in order)
        self.tally[f"orders_with_offer.{group}"] += with_offer

    def learn_basket(self, basket: Basket) -> None:
        """Learn from one order; every worker calls this for every order of every shopper.

        >>> engine = OfferEngine(OfferRules())
        >>> for n in range(5):
        ...     engine.learn_basket(Basket(f"u{n}", 1_700_000_000.0 + n,
        ...                                (LineItem("tea", 1, 4.0), LineItem("mug", 1, 6.0))))
        ...     engine.learn_basket(Basket(f"v{n}", 1_700_000_000.0 + n, (LineItem("bread", 1, 2.0),)))
        >>> [c.product_id for c in engine.bought.complements([("tea", 1.0)], now=1_700_000_010.0)]
        ['mug']
        """
        for line in basket.items:
            self.catalog.observe(line.product_id, line.price)
        products = [line.product_id for line in basket.items]
        updates = self.bought.updates
        self.bought.observe_basket(products, basket.ts)
        self.tally["updates.pairs"] += self.bought.updates - updates    # what learning costs: a metric
        self.showcases.observe_order([(line.product_id, line.quantity) for line in basket.items], basket.ts)
        self.recent_sales.add_each(set(products), 1.0, basket.ts)
        self.repeats.observe(products, basket.repeats)
        known = [self.catalog.get(pid) for pid in products]
        categories = [p.category for p in known if p is not None and p.category]
        if categories:
            self.categories.observe_basket(categories, basket.ts)
        self.proportions.observe_order([(line.product_id, line.price if line.price else p.price if p else None,
                                         p.category if p else None) for line, p in zip(basket.items, known)],
                                       basket.first_order)
        if basket.upgrades:
            self.upgrades.observe(basket.upgrades)
            self.proportions.observe_upgrades(self._prices(basket.upgrades))
            self.tally["updates.upgrades"] += 1
        self.tally["updates.bought_together"] += 1

    def replay_pairs(self, basket: Basket, anchors) -> None:
        """Count an order's "bought together" pairs again for the ``anchors`` (a predicate) only:
        an order learned before their partition came to this worker (partitioned learning)."""
        updates = self.bought.updates
        self.bought.observe_pairs([line.product_id for line in basket.items], basket.ts, anchors)
        self.tally["updates.pairs"] += self.bought.updates - updates

    def _prices(self, pairs) -> list[tuple[float, float]]:
        found = [(self.catalog.get(a), self.catalog.get(b)) for a, b in pairs]
        return [(a.price, b.price) for a, b in found if a is not None and b is not None]

    def update_product(self, product: Product) -> None:
        """A catalog update (the catalog topic): the product as the store describes it now."""
        self.catalog.upsert(product)
        self.tally["updates.catalog"] += 1

    def _observe_products(self, event: ShopperEvent, order: tuple[LineItem, ...]) -> None:
        if event.product_id:
            self.catalog.observe(event.product_id, event.price, event.category, event.brand)
        for line in order:
            self.catalog.observe(line.product_id, line.price)


def _sampled(event_id: str, share: float) -> bool:
    """Whether an order is among the ``share`` the ranker learns from: fixed by its event id,
    so a replay and every worker decide alike."""
    return share >= 1.0 or zlib.crc32(event_id.encode()) / 2**32 < share
