"""The offer policy: for one event, at most one offer, of one kind, that obeys every rule."""
from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from itertools import islice
from typing import Callable, NamedTuple, Optional, Sequence

import numpy as np

from nextoffer.models.acceptance import AcceptanceModel, item_record
from nextoffer.models.bought_together import BoughtTogether
from nextoffer.models.candidates import Candidate, content_fallback, cross_sells, upsells, with_repeat_buys
from nextoffer.models.catalog import Catalog
from nextoffer.models.exploration import thompson_choice
from nextoffer.models.events import CART, LineItem, Product, ShopperEvent
from nextoffer.models.offer import Kind, Offer, OfferItem, Placement, offer_id_for
from nextoffer.models.profile import ProfileView, price_position, view
from nextoffer.models.proportion import Bound, PriceProportions
from nextoffer.models.repeats import RepeatPurchases
from nextoffer.models.reranker import AGE_SPAN, FEATURES, PairwiseRanker
from nextoffer.models.rules import OfferRules
from nextoffer.models.shopper import ShopperState
from nextoffer.models.showcases import Counts
from nextoffer.models.upgrades import LearnedUpgrades

try:        # the learned order's feature rows and the candidates' values in C (models/_kernels.c):
    # the same floats
    from nextoffer.models._kernels import candidate_values, eligible_candidates, ranking_rows
except ImportError:
    candidate_values = eligible_candidates = ranking_rows = None

#: Which kind each placement tries first (the domain guide: upsell before commitment,
#: complements after it; at checkout only small add-ons).
KIND_ORDER = {
    Placement.PRODUCT_PAGE: (Kind.UPSELL, Kind.CROSS_SELL),
    Placement.CART: (Kind.CROSS_SELL, Kind.UPSELL),
    Placement.CHECKOUT: (Kind.CROSS_SELL,),
    Placement.POST_PURCHASE: (Kind.CROSS_SELL, Kind.UPSELL),
}
#: Weight of the other products of the cart or order beside the anchor.
CONTEXT_WEIGHT = 0.5
#: Which way each segment's price preference leans (times ``segment_tilt``): first-time buyers
#: towards cheaper, lower-risk items; repeat and high-value customers towards premium ones.
SEGMENT_TILT = {"first_time": -1.0, "repeat": 0.5, "high_value": 1.0}


@dataclass(frozen=True, slots=True)
class Decision:
    """The policy's answer: an offer, or None and why not; records describe its items for learning."""

    offer: Optional[Offer]
    reason: str
    records: tuple = ()
    shortlist: tuple = ()          # LoggedCandidate of every ranked candidate, for off-policy evaluation
    profile: Optional[ProfileView] = None   # the shopper's profile the offer was decided with


class LoggedCandidate(NamedTuple):
    """A ranked candidate as the decision log keeps it (off-policy evaluation re-ranks these)."""

    product_id: str
    value: float          # its value under the policy that decided
    relevance: float      # its relevance score
    accept: float         # the acceptance model's P(accept) for this shopper and placement
    outcomes: int         # outcomes the acceptance model has learned for this product


@dataclass(frozen=True, slots=True)
class ExplainedCandidate:
    """One candidate the policy looked at: its scores and the verdict (``offered``,
    ``ranked_lower``, ``not_needed``, or the rule that removed it: ``below_relevance``,
    ``price_share``, ``anchor``, ``in_cart``, ``just_bought``, ``unavailable``, ``declined``,
    ``frequency_cap``)."""

    kind: str
    product_id: str
    source: str
    score: float
    price: Optional[float]
    value: Optional[float]         # relevance after margin and acceptance reordering (eligible only)
    verdict: str
    reason: str


@dataclass(frozen=True, slots=True)
class Explanation:
    """:meth:`OfferPolicy.explain`'s answer: the decision, its anchor and every candidate's verdict."""

    decision: Decision
    anchor: Optional[str]
    context: list
    rows: list


@dataclass(frozen=True, slots=True)
class Situation:
    """Everything the policy looks at for one event."""

    event: ShopperEvent
    shopper: ShopperState
    order: tuple[LineItem, ...]   # what a purchase bought (empty for other events)
    now: float                    # event time: drives cool-downs and windows
    generated_at: float           # processing time: stamps the offer
    profile: Optional[ProfileView] = None   # the shopper's profile now (read by decide when None)
    ordered: frozenset = frozenset()        # the products of ``order`` (filled by decide)
    cart_value: Optional[float] = None      # the cart's value, where the rules read it (likewise)


def _cart_value(s: Situation) -> float:
    """The cart's value, as read once per decision (a cart holds up to 200 lines)."""
    return s.cart_value if s.cart_value is not None else s.shopper.cart_value


def _nudge(c: Candidate, gap: float) -> Candidate:
    """An add-on that takes the cart over the free-shipping threshold (``gap`` away) says so."""
    if c.price is None or c.price < gap:
        return c
    return c._replace(why=f"{c.reason}; adds free shipping ({gap:.2f} to go)")


def in_control_group(user_id: str, share: float) -> bool:
    """Whether a shopper belongs to the control group: stable across workers, restarts and releases.

    >>> in_control_group("u1", 0.0), in_control_group("u1", 1.0)
    (False, True)
    >>> sum(in_control_group(f"u{n}", 0.1) for n in range(10_000)) in range(900, 1100)
    True
    """
    if share <= 0:
        return False
    digest = hashlib.blake2b(user_id.encode("utf-8"), digest_size=8, person=b"nextoffer-ctl").digest()
    return int.from_bytes(digest, "big") / 2.0 ** 64 < share


class OfferPolicy:
    """Greedy policy: the best eligible items of the first kind the placement allows.

    >>> from nextoffer.models.events import Product, ShopperEvent
    >>> c = Catalog()
    >>> c.upsert(Product("s-128", 700.0, family="s", tier=1))
    >>> c.upsert(Product("s-256", 800.0, family="s", tier=2))
    >>> policy = OfferPolicy(OfferRules(), c, BoughtTogether())
    >>> event = ShopperEvent("clickstream", "view", "e1", "u1", 0.0, product_id="s-128")
    >>> d = policy.decide(Situation(event, ShopperState("u1"), (), 0.0, 100.0))
    >>> d.offer.kind.value, d.offer.product_ids
    ('upsell', ['s-256'])
    """

    def __init__(self, rules: OfferRules, catalog: Catalog, bought: BoughtTogether,
                 repeats: Optional[RepeatPurchases] = None, acceptance: Optional[AcceptanceModel] = None,
                 rng: Optional[random.Random] = None, upgrades: Optional[LearnedUpgrades] = None,
                 categories: Optional[BoughtTogether] = None,
                 proportions: Optional[PriceProportions] = None,
                 ranker: Optional[PairwiseRanker] = None, recent_sales: Optional[Counts] = None) -> None:
        self.rules = rules
        self.catalog = catalog
        self.bought = bought
        self.repeats = repeats if repeats is not None else RepeatPurchases()
        self.acceptance = acceptance if acceptance is not None else AcceptanceModel()
        self.rng = rng if rng is not None else random.Random(0)
        self.upgrades = upgrades if upgrades is not None else LearnedUpgrades()
        self.categories = categories if categories is not None else BoughtTogether(half_life=None)
        self.proportions = proportions if proportions is not None else PriceProportions()
        #: The learned order of a cross-sell's best candidates (None: the engine's order alone).
        self.ranker = ranker
        #: Orders per product, decayed over days: what sells now (a feature of the learned order).
        self.recent_sales = recent_sales
        self.profile_settings = rules.profile_settings()
        if rules.exploration_policy in ("uniform", "thompson"):
            self.name = rules.exploration_policy
        elif rules.exploration > 0:
            self.name = f"epsilon-greedy({rules.exploration:g})"
        else:
            self.name = "greedy"

    def decide(self, situation: Situation) -> Decision:
        """The one offer for the event's placement, or None and why: the anchor, then each kind
        the placement allows in turn (upsell first on a product page), its candidates ranked
        under the rules; the first kind with an eligible item wins.

        >>> from nextoffer.models.engine import OfferEngine
        >>> from nextoffer.models.events import Product
        >>> engine = OfferEngine(OfferRules())
        >>> engine.update_product(Product("s-128", 700.0, family="s", tier=1))
        >>> engine.update_product(Product("s-256", 800.0, family="s", tier=2))
        >>> view = ShopperEvent("clickstream", "view", "e1", "u1", 1.0, product_id="s-128")
        >>> decision = engine.policy.decide(Situation(view, ShopperState("u1"), (), 1.0, 1.0))
        >>> decision.reason, decision.offer.items[0].product_id, decision.records[0].kind
        ('offer', 's-256', 'upsell')
        >>> search = ShopperEvent("clickstream", "search", "e2", "u1", 2.0)
        >>> engine.policy.decide(Situation(search, ShopperState("u1"), (), 2.0, 2.0)).reason
        'no_placement'
        """
        placement = situation.event.placement
        if placement is None:
            return Decision(None, "no_placement")
        if in_control_group(situation.event.user_id, self.rules.control_share):
            return Decision(None, "control_group")
        situation = self._prepared(situation)
        anchor_id, context = self._anchor(placement, situation)
        if anchor_id is None:
            return Decision(None, "no_anchor")
        anchor = self.catalog.get(anchor_id)
        for kind in KIND_ORDER[placement]:
            accept = self._acceptance(kind, placement, anchor, situation)     # memoized: used twice
            value = self._value_function(kind, placement, anchor, situation, accept)   # likewise
            ranked = self._ranked(kind, placement, anchor_id, context, situation, accept=accept, value=value)
            if ranked:
                shortlist = (self._shortlist(ranked, value, accept)
                             if self.rules.decision_log or self.rules.exploration_policy == "thompson" else ())
                chosen, propensity, slots = self._explore(ranked, shortlist)
                records = tuple(item_record(c.product_id, kind.value, placement.value, c.source, c.score,
                                            c.price, anchor.price if anchor else None, n)
                                for n, c in enumerate(chosen))
                offer = self._offer(situation, placement, kind, anchor_id, chosen, propensity, slots)
                return Decision(offer, "offer", records, shortlist, situation.profile)
        return Decision(None, "nothing_relevant")

    def _shortlist(self, ranked: list[Candidate], value, accept) -> tuple[LoggedCandidate, ...]:
        """What the off-policy evaluation needs of the best ranked candidates: each one's value
        under this policy, its relevance, the acceptance model's P(accept), and the outcomes the
        model has learned for it."""
        seen, rounding = self.acceptance.outcomes, self.acceptance.rounding
        return tuple(LoggedCandidate(c.product_id, rounding(value(c), 6), rounding(c.score, 6),
                                     rounding(accept(c), 6), seen.get(c.product_id, 0))
                     for c in ranked[:self.rules.decision_log_size])

    def _prepared(self, s: Situation) -> Situation:
        """The situation with what every candidate's check reads computed once: profile, order
        set, and the cart's value where the rules read it."""
        profile, ordered, cart_value = s.profile, s.ordered, s.cart_value
        if profile is None:
            profile = view(s.shopper, s.now, self.profile_settings)
        if s.order and not ordered:
            ordered = frozenset(line.product_id for line in s.order)
        if cart_value is None and self._reads_cart_value(s.event.placement):
            cart_value = s.shopper.cart_value
        if profile is s.profile and ordered is s.ordered and cart_value is s.cart_value:
            return s
        return Situation(s.event, s.shopper, s.order, s.now, s.generated_at, profile, ordered, cart_value)

    def _reads_cart_value(self, placement: Optional[Placement]) -> bool:
        """Whether a decision on ``placement`` reads the cart's value: the free-shipping nudge on
        the cart and checkout pages, the price cap at checkout."""
        rules = self.rules
        return ((placement is Placement.CHECKOUT and rules.price_rules)
                or (rules.free_shipping_threshold > 0 and placement in (Placement.CART, Placement.CHECKOUT)))

    def _explore(self, ranked: list[Candidate], shortlist: Sequence["LoggedCandidate"]
                 ) -> tuple[list[Candidate], float, list[float]]:
        """The items to offer, the probability of that choice, and of each item in its position.

        ``epsilon_greedy``: the best items, the last one swapped at the exploration rate for another
        eligible one; ``uniform``: any eligible items; ``thompson``: the best by a value drawn from
        each item's posterior acceptance (:func:`thompson_choice`), the exploration rate of the
        lists drawn uniformly from the shortlist instead."""
        k, eps = self.rules.max_items, self.rules.exploration
        if self.rules.exploration_policy == "uniform":
            chosen = self.rng.sample(ranked, min(k, len(ranked)))
            return chosen, 1.0 / math.comb(len(ranked), len(chosen)), [1.0 / len(ranked)] * len(chosen)
        if self.rules.exploration_policy == "thompson":
            order, propensity, slots = thompson_choice(shortlist, k, self.rules.acceptance_weight,
                                                       self.rules.exploration_draws, self.rng.random(),
                                                       uniform_share=eps)
            return [ranked[i] for i in order], propensity, slots
        best, rest = ranked[:k], ranked[k:]
        if eps <= 0 or not rest:
            return best, 1.0, [1.0] * len(best)
        if self.rng.random() < eps:
            return best[:-1] + [self.rng.choice(rest)], eps / len(rest), [1.0] * (k - 1) + [eps / len(rest)]
        return best, 1.0 - eps, [1.0] * (k - 1) + [1.0 - eps]

    # -- the anchor and its context ------------------------------------------
    def _anchor(self, placement: Placement, s: Situation) -> tuple[Optional[str], list[str]]:
        limit = self.rules.max_context
        if placement in (Placement.PRODUCT_PAGE, Placement.CART):
            anchor = s.event.product_id
            if not limit:
                return anchor, []
            # the last ``limit`` other lines, read from the cart's end (it holds up to 200)
            recent = list(islice((pid for pid in reversed(s.shopper.cart) if pid != anchor), limit))
            return anchor, recent[::-1]
        lines = s.order if placement is Placement.POST_PURCHASE else [
            LineItem(pid, qty, price) for pid, (qty, price) in s.shopper.cart.items()]
        if not lines:
            return None, []
        ranked = sorted(lines, key=lambda line: (line.price or 0.0) * line.quantity, reverse=True)
        return ranked[0].product_id, [line.product_id for line in ranked[1:limit + 1]]

    # -- candidates, rules, ranking ------------------------------------------
    def _ranked(self, kind: Kind, placement: Placement, anchor_id: str, context: Sequence[str],
                s: Situation, trace: Optional[list] = None, accept=None, learning: bool = False,
                value=None) -> list[Candidate]:
        """Eligible candidates of one kind, best first (a few more than fit, for exploration).
        With ``trace``, every candidate looked at is appended as (candidate, verdict, value): the
        rule that removed it and None, or ``eligible`` and its value."""
        anchor = self.catalog.get(anchor_id)
        if kind is Kind.UPSELL:
            candidates = (upsells(anchor, self.catalog, self.bought, self.rules, s.now, self.upgrades, s.profile,
                                  self.upsell_band()) if anchor else [])
        else:
            candidates = self._cross_sell_candidates(anchor_id, context, placement, s, trace)
        priced = kind is Kind.CROSS_SELL
        # The learned order reorders the best ``depth`` eligible candidates, which may be more than
        # the shortlist: it brings up products the engine's fixed blend ranks lower.
        learned = kind is Kind.CROSS_SELL and self.ranker is not None and (self.ranker.updates or learning)
        wanted = max(self.rules.shortlist, self.ranker.depth) if learned else self.rules.shortlist
        stop_at = wanted if self.rules.exploration_policy != "uniform" else -1    # -1: all of them
        bounds: dict = {}      # the cap per candidate category: the same for all of a category
        if trace is None and eligible_candidates is not None and self.bought.compiled and type(candidates) is list:
            shopper, rules = s.shopper, self.rules           # _eligible's loop, in C (models/_kernels.c)
            eligible = eligible_candidates(
                candidates, stop_at, anchor_id, shopper.cart, shopper.purchases, s.ordered,
                self.catalog.products_by_id, shopper.declined, shopper.shown, s.now,
                (rules.repurchase_window, rules.min_stock, rules.decline_cooldown, rules.fatigue_window,
                 rules.max_impressions),
                self._price_rule(anchor, placement, s, bounds) if priced else None)
        else:
            eligible = self._eligible(candidates, stop_at, priced, anchor, anchor_id, placement, s, bounds, trace)
        if kind is Kind.CROSS_SELL:
            gap = self.free_shipping_gap(placement, s)
            eligible = [_nudge(c, gap) for c in eligible] if gap is not None else eligible
        value = value or self._value_function(kind, placement, anchor, s, accept)
        # a value function of _value_function values a whole list at once (in C where built)
        of_all = getattr(value, "of_all", None)
        values = of_all(eligible) if of_all is not None else [value(c) for c in eligible]
        ranked = [eligible[i] for i in sorted(range(len(eligible)), key=values.__getitem__, reverse=True)]
        if learned and self.ranker.updates:
            ranked = self._learned_order(ranked, anchor_id, s)
        if kind is Kind.CROSS_SELL and self.rules.new_item_slots:
            ranked = self._with_new_items(ranked, s.shopper)
        if trace is not None:
            trace.extend((c, "eligible", round(value(c), 4)) for c in ranked)
        if learned and not learning and self.rules.exploration_policy != "uniform":
            ranked = ranked[:self.rules.shortlist]      # what the ranker brought up, the rest below
        return ranked

    def _eligible(self, candidates: Sequence[Candidate], stop_at: int, priced: bool, anchor: Optional[Product],
                  anchor_id: str, placement: Placement, s: Situation, bounds: dict,
                  trace: Optional[list] = None) -> list[Candidate]:
        """The candidates no rule excludes, best first, stopping once ``stop_at`` are found (-1:
        all); with ``trace``, each one excluded or not looked at, and why."""
        eligible = []
        exclusion = self._exclusions(anchor_id, s)
        for n, c in enumerate(candidates):  # best first: stop once the tie-break has enough to reorder
            # The price cap is checked here, not over every candidate first: a cart's complements
            # run to hundreds, and only the best ``shortlist`` eligible ones are ranked.
            excluded = ("price_share" if priced and not self._price_share_ok(c, anchor, placement, s, bounds)
                        else exclusion(c.product_id))
            if excluded is None:
                eligible.append(c)
            elif trace is not None:
                trace.append((c, excluded, None))
            if len(eligible) >= stop_at >= 0:
                if trace is not None:
                    trace.extend((rest, "not_needed", None) for rest in candidates[n + 1:])
                break
        return eligible

    def _price_rule(self, anchor: Optional[Product], placement: Placement, s: Situation, bounds: dict):
        """:meth:`_price_share_ok` as ``_kernels.eligible_candidates`` takes it: None (no cap),
        ("cap", most) at checkout, or ("share", anchor price, bounds by category, bound_of)."""
        rules = self.rules
        if not rules.price_rules:
            return None
        if placement is Placement.CHECKOUT:
            return ("cap", rules.checkout_max_share * max(_cart_value(s), anchor.price if anchor else 0.0))
        if anchor is None:
            return None
        return ("share", anchor.price, bounds, lambda pid: self.cross_sell_bound(anchor, pid, s).value)

    def _ranking_features(self, ranked: Sequence[Candidate], anchor_id: str, s: Situation):
        shopper = s.shopper
        anchor_past = shopper.purchases.get(anchor_id)
        sold = self.recent_sales
        anchor_ts = anchor_past[1] if anchor_past else None
        if ranking_rows is not None and self.bought.compiled and type(ranked) is list:   # the same rows, in C
            sales = (sold.index, sold.covered(), sold.scale(s.now)) if sold is not None else ()
            repeats = self.repeats
            x = np.frombuffer(ranking_rows(ranked, shopper.purchases, shopper.orders, repeats.index,
                                           repeats.order_counts(), anchor_ts, s.now, AGE_SPAN, *sales),
                              dtype=float).reshape(len(ranked), len(FEATURES))
            if sold is not None and len(ranked):
                # the log of a contiguous copy, as of values_of's array: numpy may take another
                # path (and another last bit) for a strided column
                x[:, 11] = np.log1p(np.ascontiguousarray(x[:, 11])) / 5
            return x
        recent = sold.values_of([c.product_id for c in ranked], s.now) if sold is not None else None
        return self.ranker.features(ranked, shopper.purchases, shopper.orders, self.repeats.orders,
                                    anchor_ts, s.now, recent)

    def _learned_order(self, ranked: list[Candidate], anchor_id: str, s: Situation) -> list[Candidate]:
        """The best ``depth`` candidates in the order the ranker learned (:mod:`nextoffer.models.reranker`)."""
        top = ranked[:self.ranker.depth]
        order = self.ranker.order(self._ranking_features(top, anchor_id, s))
        return [top[i] for i in order] + ranked[len(top):]

    def ranking_example(self, shopper: ShopperState, order: Sequence[LineItem], now: float):
        """What the ranker learns from an order, before the shopper's state takes it in: the
        cross-sell candidates the engine would have offered on the cart page with the order's
        first line, as feature rows in the engine's order, and which of them the order held.
        None when there is nothing to learn (no candidate, or none or all of them bought)."""
        if len(order) < 2:
            return None
        first = order[0]
        event = ShopperEvent(CART, "add", "", shopper.user_id, now, product_id=first.product_id, price=first.price)
        # As when the first line went into the cart: the rest of the order is not in it yet
        # (else every product bought would be excluded as already in the cart).
        cart, shopper.cart = shopper.cart, {first.product_id: [first.quantity, first.price]}
        try:
            situation = self._prepared(Situation(event, shopper, (), now, now))
            ranked = self._ranked(Kind.CROSS_SELL, Placement.CART, first.product_id, [], situation,
                                  learning=True)
        finally:
            shopper.cart = cart
        top = ranked[:self.ranker.depth]
        bought = {line.product_id for line in order[1:]}
        labels = np.array([c.product_id in bought for c in top], dtype=bool)
        if not len(top) or labels.all() or not labels.any():
            return None
        return self._ranking_features(top, first.product_id, situation), labels

    def _with_new_items(self, ranked: list[Candidate], shopper: ShopperState) -> list[Candidate]:
        """``ranked`` with its best products new to the shopper moved up into the offer's last
        slots, so that at least ``new_item_slots`` of the items offered are new where possible.

        >>> policy = OfferPolicy(OfferRules(new_item_slots=1, max_items=2), Catalog(), BoughtTogether())
        >>> shopper = ShopperState("u1", purchases={"tea": [3, 0.0], "milk": [2, 0.0]})
        >>> ranked = [Candidate("tea", 0.9, ""), Candidate("milk", 0.8, ""), Candidate("mug", 0.1, "")]
        >>> [c.product_id for c in policy._with_new_items(ranked, shopper)]
        ['tea', 'mug', 'milk']
        """
        k = self.rules.max_items
        top = ranked[:k]
        missing = min(self.rules.new_item_slots, k) - sum(c.product_id not in shopper.purchases for c in top)
        if missing <= 0:
            return ranked
        newcomers = [c for c in ranked[k:] if c.product_id not in shopper.purchases][:missing]
        if not newcomers:
            return ranked
        # the lowest repeat buys of the top make room, the newcomers take the last slots
        repeats = [c for c in top if c.product_id in shopper.purchases]
        out = [c for c in top if c not in repeats[len(repeats) - len(newcomers):]] + newcomers
        return out + [c for c in ranked if c not in out]

    def explain(self, situation: Situation) -> "Explanation":
        """What :meth:`decide` looks at for this situation, and why each candidate is in or out.

        >>> from nextoffer.models.events import Product, ShopperEvent
        >>> c = Catalog()
        >>> for pid, price, tier in (("s-128", 700.0, 1), ("s-256", 800.0, 2), ("s-512", 900.0, 3)):
        ...     c.upsert(Product(pid, price, family="s", tier=tier, stock=0 if pid == "s-512" else 5))
        >>> policy = OfferPolicy(OfferRules(exploration=0.0), c, BoughtTogether())
        >>> event = ShopperEvent("clickstream", "view", "e1", "u1", 0.0, product_id="s-128")
        >>> x = policy.explain(Situation(event, ShopperState("u1"), (), 0.0, 0.0))
        >>> x.decision.reason, x.anchor, [(r.product_id, r.verdict) for r in x.rows]
        ('offer', 's-128', [('s-512', 'unavailable'), ('s-256', 'offered')])
        """
        placement = situation.event.placement
        situation = self._prepared(situation)
        decision = self.decide(situation)
        rows: list[ExplainedCandidate] = []
        anchor_id, context = (self._anchor(placement, situation) if placement is not None else (None, []))
        if anchor_id is None or decision.reason == "control_group":
            return Explanation(decision, anchor_id, list(context), rows)
        offered = set(decision.offer.product_ids) if decision.offer is not None else set()
        for kind in KIND_ORDER[placement]:
            trace: list = []
            self._ranked(kind, placement, anchor_id, context, situation, trace)
            chosen = decision.offer is not None and decision.offer.kind is kind
            for c, verdict, value in trace:
                if verdict == "eligible":
                    verdict = "offered" if chosen and c.product_id in offered else "ranked_lower"
                rows.append(ExplainedCandidate(kind.value, c.product_id, c.source, round(c.score, 4),
                                               c.price, value, verdict, c.reason))
            if chosen:
                break
        return Explanation(decision, anchor_id, list(context), rows)

    def _cross_sell_candidates(self, anchor_id: str, context: Sequence[str], placement: Placement,
                               s: Situation, trace: Optional[list] = None) -> list[Candidate]:
        """Complements of the anchor and its context, blended with the shopper's repeat buys."""
        rules = self.rules
        weighted = [(anchor_id, 1.0)] + [(pid, CONTEXT_WEIGHT) for pid in context]
        pool = 20 * rules.max_items
        candidates = cross_sells(weighted, self.catalog, self.bought, rules, s.now, pool)
        if rules.history_weight > 0 and s.shopper.purchases:
            candidates = with_repeat_buys(candidates, s.shopper, self.repeats, self.catalog, anchor_id,
                                          rules.history_half_life, rules.history_weight, self.bought.compiled)
        if len(candidates) < pool:   # thin evidence (a new or rare product): content fills the pool
            have = {c.product_id for c in candidates}
            extra = content_fallback(self.catalog.get(anchor_id), self.catalog, self.bought, self.categories,
                                     rules, s.now, pool)
            candidates = candidates + [c for c in extra if c.product_id not in have]
        threshold = rules.checkout_min_relevance if placement is Placement.CHECKOUT else rules.min_relevance
        if trace is not None:
            trace.extend((c, "below_relevance", None) for c in candidates if c.score < threshold)
        return [c for c in candidates if c.score >= threshold]

    def exclusion(self, pid: str, anchor_id: str, s: Situation) -> Optional[str]:
        """Why the hygiene rules forbid offering ``pid`` now, or None if they allow it.

        >>> policy = OfferPolicy(OfferRules(), Catalog(), BoughtTogether())
        >>> s = Situation(ShopperEvent("cart", "add", "e1", "u1", 0.0, product_id="tea"),
        ...               ShopperState("u1", cart={"tea": [1, 2.0]}), (), 0.0, 0.0)
        >>> [policy.exclusion(pid, "tea", s) for pid in ("tea", "mug")]
        ['anchor', None]
        """
        return self._exclusions(anchor_id, s)(pid)

    def _exclusions(self, anchor_id: str, s: Situation) -> Callable[[str], Optional[str]]:
        """:meth:`exclusion` for one decision's anchor and situation, its rules' values and the
        shopper's records read once (a decision checks up to a few hundred candidates)."""
        rules, shopper, now = self.rules, s.shopper, s.now
        product_of, cart, ordered = self.catalog.get, shopper.cart, s.ordered
        bought_at, declined, times_shown = shopper.bought_at, shopper.declined.get, shopper.times_shown
        repurchase, min_stock, cooldown = rules.repurchase_window, rules.min_stock, rules.decline_cooldown
        fatigue, max_impressions = rules.fatigue_window, rules.max_impressions

        def exclusion(pid: str) -> Optional[str]:
            if pid == anchor_id:
                return "anchor"
            if pid in cart:
                return "in_cart"
            past = bought_at(pid)
            if past is not None and now - past < repurchase:
                return "just_bought"
            if pid in ordered:
                return "just_bought"
            product = product_of(pid)
            if product is not None and not product.available(min_stock):
                return "unavailable"
            declined_at = declined(pid)
            if declined_at is not None and now - declined_at < cooldown:
                return "declined"
            if times_shown(pid, now, fatigue) >= max_impressions:
                return "frequency_cap"
            return None
        return exclusion

    def _price_share_ok(self, c: Candidate, anchor, placement: Placement, s: Situation,
                        bounds: Optional[dict] = None) -> bool:
        """The cross-sell price cap: at most the share of the anchor's price that this store's
        shoppers buy together (:meth:`cross_sell_bound`), smaller for first-time buyers, who get
        cheaper, lower-risk add-ons; at checkout a share of the cart."""
        if not self.rules.price_rules or c.price is None:
            return True
        if placement is Placement.CHECKOUT:
            return c.price <= self.rules.checkout_max_share * max(_cart_value(s), anchor.price if anchor else 0.0)
        if anchor is None:
            return True
        bounds = {} if bounds is None else bounds
        product = self.catalog.get(c.product_id)
        category = product.category if product else None
        bound = bounds.get(category)
        if bound is None:     # the bound depends on the candidate only through its category
            bound = bounds[category] = self.cross_sell_bound(anchor, c.product_id, s).value
        return c.price <= bound * anchor.price

    def cross_sell_bound(self, anchor: Product, pid: str, s: Situation) -> Bound:
        """Most a cross-sell ``pid`` may cost with ``anchor``, as a ratio to the anchor's price:
        learned from the store's orders (the category pair's, else the store's), the configured
        share until there is evidence; for first-time buyers the lower of that and what first
        orders held."""
        product = self.catalog.get(pid)
        learned, rules = self.proportions, self.rules
        bound = learned.cross_sell_bound(anchor.category, product.category if product else None,
                                         rules.cross_sell_max_share)
        if s.profile is not None and s.profile.segment == "first_time":
            first = learned.first_time_bound(rules.first_time_max_share)
            bound = first if first.value < bound.value else bound
        return bound

    def price_bounds(self, anchor_id: Optional[str]) -> dict[str, Bound]:
        """The price rules' bounds in force for this anchor, with their evidence (what
        ``explain`` shows): the cross-sell share (store-wide; a category pair with enough
        evidence has its own), the first-time buyers' share and the upsell band."""
        anchor = self.catalog.get(anchor_id) if anchor_id else None
        learned, rules = self.proportions, self.rules
        low, high = self._upsell_bounds()
        return {"cross_sell_max_share": learned.cross_sell_bound(anchor.category if anchor else None, None,
                                                                 rules.cross_sell_max_share),
                "first_time_max_share": learned.first_time_bound(rules.first_time_max_share),
                "upsell_min_step": low, "upsell_max_step": high}

    def upsell_band(self) -> tuple[float, float]:
        """The upsell's price step above the anchor: learned from the steps of the upgrades this
        store's shoppers chose, the configured steps until there is evidence."""
        low, high = self._upsell_bounds()
        return low.value, high.value

    def _upsell_bounds(self) -> tuple[Bound, Bound]:
        return self.proportions.upsell_band((self.rules.upsell_min_step, self.rules.upsell_max_step))

    def free_shipping_gap(self, placement: Placement, s: Situation) -> Optional[float]:
        """What the cart lacks for free shipping, when it is close enough for a nudge (else None)."""
        threshold = self.rules.free_shipping_threshold
        if threshold <= 0 or placement not in (Placement.CART, Placement.CHECKOUT):
            return None
        gap = threshold - _cart_value(s)
        return gap if 0 < gap <= self.rules.free_shipping_window * threshold else None

    def _value_function(self, kind: Kind, placement: Placement, anchor, s: Situation, accept=None):
        """Relevance, reordered by learned acceptance, the shopper's segment, the free-shipping
        nudge and, near ties, margin. With ``ranking=expected_value``: acceptance probability x
        price x margin (each where known)."""
        rules, profile = self.rules, s.profile
        tilt = rules.segment_tilt * SEGMENT_TILT.get(profile.segment if profile else "", 0.0)
        gap = self.free_shipping_gap(placement, s) if kind is Kind.CROSS_SELL else None
        learned = rules.acceptance_weight and self.acceptance.updates
        accept = accept or self._acceptance(kind, placement, anchor, s)

        # The rules' values read once: a decision values up to the learned order's depth (40).
        product_of, catalog = self.catalog.get, self.catalog
        expected = rules.ranking == "expected_value"
        margin_weight, weight = rules.margin_weight, rules.acceptance_weight
        relevance_weight, boost = 1.0 - weight, 1.0 + rules.free_shipping_boost

        known: dict[str, float] = {}     # a candidate's value, by product: the shortlist reads it again

        def value(c: Candidate) -> float:
            v = known.get(c.product_id)
            if v is None:
                v = known[c.product_id] = worth(c)
            return v

        def of_all(candidates: list[Candidate]) -> list[float]:
            """The value of each candidate (a decision's whole list at once: in C where built)."""
            if candidate_values is not None and self.bought.compiled and type(candidates) is list:
                values = candidate_values(
                    candidates, catalog.products_by_id, catalog.category_median, known,
                    (bool(learned), expected, margin_weight, relevance_weight, weight, tilt, gap, boost),
                    accept.known, accept.score, accept.score.terms() if learned else None, accept.anchor_price)
                if values is not None:
                    return values
            return [value(c) for c in candidates]
        value.of_all = of_all

        def worth(c: Candidate) -> float:
            product = product_of(c.product_id)
            margin = product.margin if product is not None and product.margin is not None else None
            if learned or expected:
                p = accept(c) if learned else min(1.0, c.score)
            if expected:
                return p * (c.price or 1.0) * (margin if margin is not None else 1.0)
            v = c.score * (1.0 + margin_weight * (margin or 0.0))
            if learned:   # geometric blend: 0 = relevance alone, 1 = learned acceptance alone
                v = v ** relevance_weight * p ** weight
            if tilt:
                position = price_position(product, catalog) if product is not None else None
                if position is not None:
                    v *= math.exp(tilt * max(-1.0, min(1.0, position)))   # premium or cheaper, near ties
            if gap is not None and c.price is not None and c.price >= gap:
                v *= boost
            return v
        return value

    def _acceptance(self, kind: Kind, placement: Placement, anchor, s: Situation):
        """c -> the acceptance model's P(accept) of the candidate for this shopper and placement
        (each candidate's computed once)."""
        anchor_price = anchor.price if anchor else None
        known: dict[str, float] = {}
        score = self.acceptance.scorer(kind.value, placement.value, s.profile)

        def accept(c: Candidate) -> float:
            p = known.get(c.product_id)
            if p is None:
                product = self.catalog.get(c.product_id)
                position = price_position(product, self.catalog) if product is not None else None
                p = known[c.product_id] = score(c.source, c.score, c.price, anchor_price, product, position)
            return p
        # what candidate_values reads and fills in C
        accept.known, accept.score, accept.anchor_price = known, score, anchor_price
        return accept

    def _offer(self, s: Situation, placement: Placement, kind: Kind, anchor_id: str,
               chosen: list[Candidate], propensity: float, slots: Sequence[float] = ()) -> Offer:
        slots = list(slots) or [None] * len(chosen)
        items = tuple(OfferItem(c.product_id, c.score, c.reason, c.price,
                                None if p is None else round(p, 6)) for c, p in zip(chosen, slots))
        return Offer(
            offer_id=offer_id_for(s.event.event_id, placement),
            user_id=s.event.user_id, placement=placement, kind=kind, anchor_product_id=anchor_id,
            items=items, event_id=s.event.event_id, generated_at=s.generated_at,
            expires_at=s.generated_at + self.rules.offer_ttl, policy=self.name,
            propensity=round(propensity, 6), event_ts=s.event.ts)
