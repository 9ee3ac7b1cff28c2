"""The rules that keep offers helpful instead of pushy, with their defaults.

Every threshold of the domain guide is a field here; ``nextoffer.streams.io.settings`` fills
them from the environment (``NEXTOFFER_<FIELD>``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from nextoffer.models.profile import ProfileSettings

DAY = 86_400.0
EXPLORATION_POLICIES = ("epsilon_greedy", "uniform", "thompson")
RANKINGS = ("relevance", "expected_value")


def _doc(text: str, **kw):
    return field(metadata={"doc": text}, **kw)


@dataclass(frozen=True, slots=True)
class OfferRules:
    """Thresholds of the offer policy. Defaults follow the domain guide.

    >>> OfferRules().max_items
    3
    >>> OfferRules.relevance_only().price_rules
    False
    """

    max_items: int = _doc("Most items in one offer (the guide: at most 3).", default=3)
    min_relevance: float = _doc(
        "Cross-sell relevance threshold: an item scoring below it is not offered (better nothing "
        "than a bad offer).", default=0.02)
    min_support: float = _doc(
        "Fewest orders a pair must share before it counts as bought together. Counts decay, so "
        "1.5 means two orders within about half a half-life.", default=1.5)
    min_lift: float = _doc(
        "A cross-sell's lift (how much likelier B is with A than alone) must exceed this; 1.0 "
        "means better than chance.", default=1.0)
    history_weight: float = _doc(
        "Weight of the shopper's own purchase history (items they buy again, by each product's "
        "learned repeat rate) beside 'bought together' in a cross-sell's score; 0 turns it off.",
        default=2.0)
    new_item_slots: int = _doc(
        "Of a cross-sell's items, at least this many are products the shopper has not bought before, "
        "where any such candidate is eligible (their best by value): a loyal customer's repeat buys "
        "would otherwise fill every slot; 0 turns it off.", default=0)
    learned_ranking: bool = _doc(
        "Learn the order of a cross-sell's best candidates from what shoppers then buy "
        "(pairwise, at every purchase; it starts as the engine's order); off keeps the engine's "
        "fixed blend.", default=True)
    learned_ranking_share: float = _doc(
        "Share of orders the learned order learns from (each costs one more cross-sell ranking "
        "at the purchase); 1 learns from every order.", default=1.0)
    learned_ranking_depth: int = _doc(
        "How many of a cross-sell's best eligible candidates the learned order reorders (the best "
        "NEXTOFFER_SHORTLIST of its order are then offered or explored).", default=40)
    history_half_life: float = _doc(
        "Seconds after which a past purchase counts half as a repeat-buy candidate.", default=60 * DAY)
    max_context: int = _doc(
        "Other cart or order lines, besides the anchor, whose complements count (the most "
        "recent in a cart, the most valuable in an order).", default=8)
    price_rules: bool = _doc(
        "Apply the price rules (upsell band, cross-sell share); off for data without reliable prices.",
        default=True)
    upsell_min_step: float = _doc("Upsell price at least this much above the anchor (0.2 = +20%) until "
                                  "the store's chosen upgrades give the band.", default=0.20)
    upsell_max_step: float = _doc("Upsell price at most this much above the anchor (0.4 = +40%) until "
                                  "the store's chosen upgrades give the band.", default=0.40)
    family_max_step: float = _doc(
        "Upper price step for tiers of the anchor's own product family, which the catalog declares "
        "as its upgrade ladder (1.0 = up to twice the price).", default=1.0)
    cross_sell_max_share: float = _doc(
        "Cross-sell item price at most this share of the anchor's price, until the store's own "
        "orders say what is bought together (NEXTOFFER_PROPORTION_*).", default=0.25)
    checkout_max_share: float = _doc(
        "At checkout, add-ons cost at most this share of the cart's value (small one-click items).",
        default=0.15)
    checkout_min_relevance: float = _doc(
        "At checkout only highly relevant add-ons: relevance at least this.", default=0.05)
    min_stock: int = _doc("Never promote an item with known stock below this.", default=1)
    decline_cooldown: float = _doc(
        "Seconds a declined or dismissed item is not offered again to that shopper.", default=7 * DAY)
    repurchase_window: float = _doc(
        "Seconds after a purchase during which the same item is not offered again ('just bought'); "
        "after it, items the shopper buys again may come back as replenishment.", default=DAY)
    max_impressions: int = _doc(
        "Frequency cap: times one item may be offered to one shopper within the fatigue window.",
        default=3)
    fatigue_window: float = _doc("Seconds of the frequency cap's window.", default=DAY)
    margin_weight: float = _doc(
        "Margin tie-break: score multiplied by (1 + margin_weight * margin), so only near-equal "
        "relevance is reordered.", default=0.05)
    acceptance_weight: float = _doc(
        "How much the learned acceptance probability p ranks items beside relevance r: by "
        "r^(1-w) x p^w; 0 = relevance alone, 1 = acceptance alone.", default=0.5)
    shortlist: int = _doc(
        "Eligible candidates (the most relevant first) that acceptance, segment and margin "
        "reorder before the best are offered.", default=20)
    exploration: float = _doc(
        "Epsilon-greedy: share of offers whose last item is swapped for another eligible one, to "
        "keep learning what works (recorded in each offer's policy and propensity); with Thompson "
        "sampling, the share of lists drawn uniformly from the shortlist.", default=0.05)
    exploration_policy: str = _doc(
        "`epsilon_greedy` (the best items, the last one explored at the exploration rate), "
        "`thompson` (Thompson sampling over the shortlist: the best by a value drawn from each item's "
        "posterior acceptance, so rarely shown items get their chances; logs the propensities "
        "`nextoffer ope` needs) or `uniform` (items drawn at random among the eligible ones: the "
        "random baseline of the feedback-loop simulation).", default="epsilon_greedy")
    exploration_draws: int = _doc(
        "Thompson sampling: draws that estimate the probability of each offered item in its position "
        "(logged as its propensity).", default=200)
    decision_log: bool = _doc(
        "Log each offer's ranked shortlist (value, relevance, P(accept)) to the internal "
        "nextoffer-decisions topic, for `nextoffer ope` to compare policies off-line.", default=True)
    decision_log_size: int = _doc(
        "Ranked candidates kept per logged decision (and the shortlist Thompson sampling draws from).",
        default=10)
    ranking: str = _doc(
        "`relevance`: relevance reordered by learned acceptance, segment, free-shipping nudge and "
        "margin; `expected_value`: acceptance probability x price x margin (where known).",
        default="relevance")
    segment_tilt: float = _doc(
        "Segment-aware choices: near-equal items are reordered by price within their category, "
        "towards cheaper ones for first-time buyers and premium ones for repeat and high-value "
        "customers; 0 turns it off.", default=0.1)
    first_time_max_share: float = _doc(
        "For first-time buyers, cross-sell item price at most this share of the anchor's price "
        "(cheaper, lower-risk add-ons), until the store's first orders say what is proportionate.",
        default=0.15)
    high_value_spend: float = _doc(
        "Total spend from which a shopper is in the high_value segment.", default=1000.0)
    new_shopper_for: float = _doc(
        "Seconds after their first event during which a shopper's lifecycle stage is new.",
        default=30 * DAY)
    at_risk_after: float = _doc(
        "A customer returning after this many seconds without events is at_risk for that session.",
        default=60 * DAY)
    affinity_half_life: float = _doc(
        "Seconds after which a shopper's category and brand interest counts half.", default=30 * DAY)
    free_shipping_threshold: float = _doc(
        "Cart value that ships free; 0 = no free-shipping nudge.", default=0.0)
    free_shipping_window: float = _doc(
        "The nudge applies when the cart is short of the threshold by at most this share of it.",
        default=0.25)
    free_shipping_boost: float = _doc(
        "How much an add-on that crosses the free-shipping threshold is preferred (1 + boost).",
        default=0.5)
    control_share: float = _doc(
        "Share of shoppers (a stable hash of user_id) in the control group that never gets offers, "
        "so acceptance and AOV lift can be measured against it; 0 = no control group.", default=0.0)
    offer_ttl: float = _doc("Seconds an offer stays valid (its expires_at).", default=3600.0)

    def __post_init__(self) -> None:
        if self.exploration_policy not in EXPLORATION_POLICIES:
            raise ValueError(f"NEXTOFFER_EXPLORATION_POLICY must be one of {', '.join(EXPLORATION_POLICIES)}, "
                             f"got {self.exploration_policy!r}")
        if self.ranking not in RANKINGS:
            raise ValueError(f"NEXTOFFER_RANKING must be one of {', '.join(RANKINGS)}, got {self.ranking!r}")

    def profile_settings(self) -> ProfileSettings:
        return ProfileSettings(self.affinity_half_life, self.high_value_spend, self.new_shopper_for,
                               self.at_risk_after)

    @classmethod
    def relevance_only(cls, **overrides) -> "OfferRules":
        """Hygiene rules on, price rules off: for data without categories or reliable prices."""
        return cls(price_rules=False, **overrides)
