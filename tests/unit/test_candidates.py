"""Candidate sources keep their offers when made faster: each is compared with the plain
version it replaced, on random stores."""
from __future__ import annotations

import random

import pytest

from nextoffer.models.bought_together import BoughtTogether
from nextoffer.models.candidates import (CATEGORY_SCORE, CONTENT_SCAN, CONTENT_SCORE, Candidate, content_fallback,
                                        reach, upsells)
from nextoffer.models.catalog import Catalog
from nextoffer.models.events import Product
from nextoffer.models.profile import ProfileView
from nextoffer.models.rules import OfferRules


def plain_content_fallback(anchor, catalog, bought, categories, rules, now, limit):
    """content_fallback as it was written first: a candidate and its reason for every product."""
    related = categories.complements([(anchor.category, 1.0)], now, rules.min_support, rules.min_lift, 3)
    out = []
    for rel in related:
        if rel.product_id == anchor.category:
            continue
        for pid in catalog.in_category(rel.product_id)[:CONTENT_SCAN]:
            p = catalog.get(pid)
            sold = bought.item_count(pid, now)
            same_brand = bool(anchor.brand and p.brand == anchor.brand)
            score = CONTENT_SCORE * rel.score * (0.5 + 0.5 * sold / (sold + 5.0)) * (1.2 if same_brand else 1.0)
            why = (f"same brand as {anchor.label}, " if same_brand else "") + \
                f"popular in {rel.product_id}, which is often bought with {anchor.category}"
            out.append(Candidate(pid, score, why, p.price, "content"))
    return sorted(out, key=lambda c: c.score, reverse=True)[:limit]


@pytest.mark.parametrize("seed", range(8))
def test_content_fallback_offers_what_it_did(seed):
    rng = random.Random(seed)
    catalog, bought, categories = Catalog(), BoughtTogether(), BoughtTogether()
    cats, brands = [f"c{n}" for n in range(6)], [None, "Acme", "Nova"]
    for n in range(900):
        catalog.upsert(Product(f"p{n}", round(rng.uniform(1, 50), 1), name=f"P {n}", category=cats[n % 6],
                               brand=rng.choice(brands)))
    for n in range(300):          # categories bought in pairs (c0 with c1, ...): lift between them
        pair = rng.randrange(3) * 2
        order = [k for k in rng.sample(range(900), 60) if k % 6 in (pair, pair + 1)][:rng.randint(2, 6)]
        bought.observe_basket([f"p{k}" for k in order], ts=n * 3600.0)
        categories.observe_basket([catalog.get(f"p{k}").category for k in order], ts=n * 3600.0)
    for _ in range(40):
        anchor = catalog.get(f"p{rng.randrange(900)}")
        now, limit = 300 * 3600.0 + rng.random() * 1e6, (5, 60, 700)[_ % 3]
        fast = content_fallback(anchor, catalog, bought, categories, OfferRules(), now, limit)
        slow = plain_content_fallback(anchor, catalog, bought, categories, OfferRules(), now, limit)
        assert [(c.product_id, c.score, c.reason, c.price, c.source) for c in fast] == \
               [(c.product_id, c.score, c.reason, c.price, c.source) for c in slow]
        assert fast, "the store is made so that every anchor has content candidates"
        if limit == 700:
            assert len({c.score for c in fast}) < len(fast), "ties (unsold products), whose order is compared too"


def plain_category_upsells(anchor, catalog, bought, rules, now, profile):
    """The same-category upgrades as they were written first (reach per upgrade, reasons as text)."""
    low = anchor.price * (1 + rules.upsell_min_step)
    high = anchor.price * (1 + rules.upsell_max_step)
    out = []
    for p in catalog.in_category_between(anchor.category, low, high):
        if p.product_id == anchor.product_id or p.price <= anchor.price:
            continue
        bought_count = bought.item_count(p.product_id, now)
        score = CATEGORY_SCORE + 0.5 * bought_count / (bought_count + 5.0)
        if anchor.brand and p.brand == anchor.brand:
            score += 0.1
        out.append(Candidate(p.product_id, score * reach(anchor, p, catalog, profile),
                             f"same category, {p.label}, +{p.price / anchor.price - 1:.0%}", p.price, "category"))
    return sorted(out, key=lambda c: c.score, reverse=True)


@pytest.mark.parametrize("seed", range(6))
def test_category_upsells_offer_what_they_did(seed):
    rng = random.Random(seed)
    catalog, bought = Catalog(), BoughtTogether()
    for n in range(600):
        catalog.upsert(Product(f"p{n}", round(rng.uniform(5, 60), 0), name=f"P {n}" if n % 2 else None,
                               category=f"c{n % 3}", brand=rng.choice([None, "Acme"])))
    for n in range(400):
        bought.observe_basket([f"p{k}" for k in rng.sample(range(600), 4)], ts=n * 3600.0)
    profiles = [None, ProfileView("repeat", "engaged", "buying", None, 0.5, {}),
                ProfileView("repeat", "engaged", "buying", -0.2, 0.9, {}),
                ProfileView("repeat", "engaged", "buying", 0.4, 0.1, {})]
    for _ in range(40):
        anchor, profile = catalog.get(f"p{rng.randrange(600)}"), rng.choice(profiles)
        now = 400 * 3600.0 + rng.random() * 1e6
        fast = upsells(anchor, catalog, bought, OfferRules(), now, profile=profile)
        slow = plain_category_upsells(anchor, catalog, bought, OfferRules(), now, profile)
        assert [(c.product_id, c.score, c.reason, c.price, c.source) for c in fast] == \
               [(c.product_id, c.score, c.reason, c.price, c.source) for c in slow]
