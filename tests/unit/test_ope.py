"""Exploration that logs its propensities, and the off-policy estimators that use them."""
from __future__ import annotations

import asyncio
import random

import orjson
import pytest

from nextoffer.models.engine import Basket, OfferEngine
from nextoffer.models.events import LineItem, Product
from nextoffer.models.exploration import slot_draws, slot_probabilities, thompson_choice
from nextoffer.models.ope import LoggedDecision, evaluate, policy_named
from nextoffer.models.policy import LoggedCandidate
from nextoffer.models.rules import OfferRules
from nextoffer.streams.io.codecs import Limits
from nextoffer.streams.io.store import MemoryOfferStore
from nextoffer.streams.tools.ope import join
from nextoffer.streams.worker.pipeline import OfferWriter, Outputs, ShopperPipeline

T0 = 1_700_000_000.0
P = {"a": 0.30, "b": 0.20, "c": 0.10, "d": 0.05}      # true acceptance of each item in position 0
BIAS = (1.0, 0.6)


def shortlist(seen: int = 0) -> tuple:
    return tuple(LoggedCandidate(pid, 1.0 - n / 10, 1.0 - n / 10, 0.5, seen) for n, pid in enumerate("dcba"))


def test_thompson_sampling_explores_what_it_knows_little_of_and_exploits_what_it_knows():
    unsure = slot_probabilities(shortlist(0), 2, 0.5, 2000, seed=0.2)
    assert unsure.min() > 0.05, "every item has its chance when nothing is known"
    assert abs(unsure.sum(axis=0) - 1).max() < 1e-9, "each position holds one item"
    sure = slot_probabilities(shortlist(100_000), 2, 0.5, 2000, seed=0.2)
    assert sure[0, 0] > 0.99 and sure[1, 1] > 0.99, "with evidence it ranks by value"
    order, propensity, slots = thompson_choice(shortlist(0), 2, 0.5, 500, seed=0.7)
    assert len(order) == 2 and 0 < propensity <= min(slots) <= 1


def test_slot_propensities_from_few_draws_are_near_a_long_count():
    """The propensity of an item in its position comes from the other items' draws and the item's
    own posterior (Rao-Blackwellised): from 200 draws it is nearer a count over 100,000 draws
    than a count over the same 200 draws is (about half the error); divided by, a noisy
    propensity biases the estimates up."""
    rng = random.Random(3)
    mixed = tuple(LoggedCandidate(f"p{i}", rng.uniform(0.1, 1), rng.uniform(0.1, 1), rng.uniform(0.05, 0.6),
                                  rng.randrange(200)) for i in range(12))
    exact = slot_probabilities(mixed, 3, 0.5, 100_000, seed=0.9)
    blackwell, counted = [], []
    for n in range(20):
        seed = n / 20 + 0.01
        order, _, slots = thompson_choice(mixed, 3, 0.5, 200, seed=seed)
        ranks = slot_draws(mixed, 3, 0.5, 200, seed)[1:]      # the same further draws, counted
        for j, (i, p) in enumerate(zip(order, slots)):
            blackwell.append(abs(p - exact[i, j]))
            counted.append(abs(float((ranks[:, j] == i).mean()) - exact[i, j]))
    assert sum(blackwell) < 0.6 * sum(counted)
    assert max(blackwell) < 0.05


def _logs(n: int, seed: int = 1) -> list[LoggedDecision]:
    """A uniform logging policy over four items, two positions; the shopper takes the first item
    that appeals (position bias), as in the simulator."""
    rng, out = random.Random(seed), []
    for i in range(n):
        offered = tuple(rng.sample("abcd", 2))
        accepted = next((pid for j, pid in enumerate(offered) if rng.random() < P[pid] * BIAS[j]), None)
        out.append(LoggedDecision(f"o{i}", shortlist(), offered, (0.25, 0.25), accepted))
    return out


@pytest.mark.parametrize("name,slate", [("acceptance", None), ("relevance", "dc"), ("random", None)])
def test_the_estimators_recover_a_policys_acceptance_from_uniform_logs(name, slate):
    logs = _logs(20_000)
    est = evaluate(logs, policy_named(name), resamples=200)
    if name == "random":
        truth = sum(d.accepted is not None for d in logs) / len(logs)
    else:
        order = slate or "dcba"[:2]        # every logged accept is 0.5: ties keep the logged order
        truth = 1 - (1 - P[order[0]] * BIAS[0]) * (1 - P[order[1]] * BIAS[1])
    for e in ("ips", "snips", "dr"):
        assert est[e].low < est[e].high
        assert abs(est[e].value - truth) < 0.02, (e, est[e], truth)


def test_dr_follows_the_cascade_where_position_by_position_estimates_fall_short():
    """Logs whose first item is mostly the strongest: the items below it are reached less often
    than under a weaker list, so position by position a weaker ranking's second item is
    under-counted. DR's reward model reads the list top down (a cascade) and, with the
    acceptance model right, recovers the weaker ranking's acceptance."""
    def marginal(pid: str, j: int) -> float:        # P(pid in position j) under the logging policy
        if j == 0:
            return 0.7 + 0.3 / 4 if pid == "a" else 0.3 / 4
        return 0.3 / 4 if pid == "a" else 0.7 / 3 + 0.3 / 4
    rng, logs = random.Random(5), []
    known = tuple(LoggedCandidate(pid, 1.0 - n / 10, 1.0 - n / 10, P[pid], 0) for n, pid in enumerate("dcba"))
    for i in range(40_000):
        offered = ("a", rng.choice("bcd")) if rng.random() < 0.7 else tuple(rng.sample("abcd", 2))
        accepted = next((pid for j, pid in enumerate(offered) if rng.random() < P[pid] * BIAS[j]), None)
        logs.append(LoggedDecision(f"o{i}", known, offered, tuple(marginal(p, j) for j, p in enumerate(offered)),
                                   accepted))
    truth = 1 - (1 - P["d"] * BIAS[0]) * (1 - P["c"] * BIAS[1])          # relevance offers d, then c
    est = evaluate(logs, policy_named("relevance"), resamples=100)
    assert est["dr"].contains(truth) and abs(est["dr"].value - truth) < 0.005, (est["dr"], truth)
    assert est["ips"].value < truth - 0.01, "position by position, the second item is under-counted"


def test_a_better_policy_is_estimated_better():
    logs = [LoggedDecision(d.offer_id, d.candidates, d.offered, d.propensities, d.accepted,
                           {"truth": P}) for d in _logs(20_000, seed=3)]
    best = evaluate(logs, policy_named("score:truth"), resamples=100)["snips"]
    worst = evaluate(logs, policy_named("relevance"), resamples=100)["snips"]
    assert best.low > worst.high


def test_decision_records_and_feedback_are_joined_by_offer():
    records = [{"offer_id": "o1", "offered": [["a", 0.5], ["b", 0.5]], "candidates": [["a", 1, 1, .2, 0], ["b", 1, 1, .2, 0]]},
               {"type": "impression", "offer_id": "o1"}, {"type": "accept", "offer_id": "o1"},
               {"offer_id": "o2", "offered": [["a", 1.0]], "candidates": [["a", 1, 1, .2, 0]]},
               {"type": "decline", "offer_id": "o2"}]
    logs = {d.offer_id: d for d in join(records)}
    assert logs["o1"].accepted == "a", "an accept naming no item is the offer's first"
    assert logs["o2"].accepted is None and logs["o2"].propensities == (1.0,)


def test_the_worker_logs_each_offers_decision_after_the_offer():
    sent: list = []

    def collect(name):
        async def send(key, value):
            sent.append((name, orjson.loads(value)))
        return send
    engine = OfferEngine(OfferRules(exploration_policy="thompson"))
    for pid, price in (("pot", 30.0), ("tea", 3.0), ("cup", 4.0)):   # within a first order's share
        engine.update_product(Product(pid, price))
    for n in range(4):
        engine.learn_basket(Basket(f"h{n}", T0 + n, (LineItem("pot", 1, 30.0), LineItem("tea", 1, 3.0),
                                                      LineItem("cup", 1, 4.0))))
        engine.learn_basket(Basket(f"x{n}", T0 + n, (LineItem("bread", 1, 2.0),)))
    pipeline = ShopperPipeline(engine, {}, OfferWriter(MemoryOfferStore(ttl=60)),
                               Outputs(collect("offers"), collect("dead_letters"), collect("baskets"),
                                       decisions=collect("decisions")), Limits())
    pipeline.apply("cart", 0, 0, b"u1", orjson.dumps({"event_id": "e1", "type": "add", "user_id": "u1",
                                                      "product_id": "pot", "price": 30.0, "ts": T0 + 10}))
    asyncio.run(pipeline.flush())
    assert [name for name, _ in sent] == ["offers", "decisions"]
    offer, decision = sent[0][1], sent[1][1]
    assert decision["offer_id"] == offer["offer_id"] and offer["policy"] == "thompson"
    assert [pid for pid, _ in decision["offered"]] == [i["product_id"] for i in offer["items"]]
    assert all(0 < i["propensity"] <= 1 for i in offer["items"])
    assert {c[0] for c in decision["candidates"]} >= {"tea", "cup"}


def test_the_command_reads_a_decision_log_file_and_prints_every_estimator(tmp_path):
    import subprocess
    import sys
    path = tmp_path / "log.jsonl"
    lines = []
    for d in _logs(2_000):
        lines.append({"offer_id": d.offer_id, "offered": [[p, 0.25] for p in d.offered],
                      "candidates": [list(c) for c in d.candidates]})
        lines.append({"type": "impression", "offer_id": d.offer_id})
        if d.accepted:
            lines.append({"type": "accept", "offer_id": d.offer_id, "product_id": d.accepted})
    path.write_bytes(b"\n".join(orjson.dumps(x) for x in lines))
    run = subprocess.run([sys.executable, "-m", "nextoffer.streams.ops.cli", "ope", "--file", str(path),
                          "--policy", "relevance", "--policy", "random", "--resamples", "50", "--json"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    report = orjson.loads(run.stdout)
    assert report["decisions"] == 2_000 and set(report["policies"]) == {"relevance", "random"}
    random_ips = report["policies"]["random"]["ips"]
    assert random_ips["low"] <= report["logged_acceptance"] <= random_ips["high"], "uniform logs: random is the log"
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    run = subprocess.run([sys.executable, "-m", "nextoffer.streams.ops.cli", "ope", "--file", str(empty)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and "no logged decision with an outcome" in run.stderr


def test_the_simulator_validation_reports_each_ranking_against_its_simulated_acceptance():
    from nextoffer.streams.tools.ope import validate
    report = validate(impressions=1_500, seed=3, shoppers=200, resamples=50)
    assert set(report["rankings"]) == {"learned", "untrained", "random", "oracle"}
    truths = {name: row["truth"] for name, row in report["rankings"].items()}
    assert truths["oracle"] > truths["learned"] > truths["random"], "the hidden tastes rank the rankings"
    for row in report["rankings"].values():
        assert all(0 <= row[e]["low"] <= row[e]["value"] <= row[e]["high"] for e in ("ips", "snips", "dr"))
    # what the logged lists earned and what the hidden tastes say they should have earned agree
    # within the luck of the outcomes (about four standard errors)
    n = report["decisions"]
    assert abs(report["logged_acceptance"] - report["logged_expected"]) <= 4 * (0.25 / n) ** 0.5
