"""``nextoffer ope``: compare offer policies on logged offers before one ships.

Reads the decision log (the internal ``nextoffer-decisions`` topic, or a JSON-lines file of its
records) and the outcomes (the ``offer-feedback`` topic, or feedback events in the same file),
joins them by ``offer_id`` and estimates each candidate policy's acceptance with IPS,
self-normalised IPS and doubly robust estimators (:mod:`nextoffer.models.ope`).

An offer counts as accepted when an ``accept`` event names it (with ``product_id``, that item;
without, its first item). Only decisions whose offer was seen (an ``impression``, ``click``,
``accept``, ``decline`` or ``dismiss``) are evaluated: an offer the storefront never showed has
no outcome to learn from.

:func:`validate` checks the estimators in the feedback-loop simulation, where the truth is known.
"""
from __future__ import annotations

import dataclasses
import math
import random
from typing import Iterable, Optional

import orjson

from nextoffer.models.ope import ESTIMATORS, LoggedDecision, evaluate, policy_named
from nextoffer.models.policy import LoggedCandidate
from nextoffer.models.rules import OfferRules
from nextoffer.streams.io.settings import Settings
from nextoffer.streams.io.topics import DECISIONS, FEEDBACK

#: The policies ``nextoffer ope`` compares when none is named.
DEFAULT_POLICIES = ("logged", "relevance", "acceptance", "blend:0.5", "random")
#: The feedback types that say the shopper saw the offer.
SEEN = ("impression", "click", "accept", "decline", "dismiss")


def join(records: Iterable[dict]) -> list[LoggedDecision]:
    """Decision records and feedback events (in any order) -> the decisions seen, with outcomes.

    >>> logs = join([{"offer_id": "o1", "offered": [["a", 0.5]], "candidates": [["a", 1, 1, 0.2, 0]]},
    ...              {"type": "impression", "offer_id": "o1"},
    ...              {"type": "accept", "offer_id": "o1", "product_id": "a"},
    ...              {"offer_id": "o2", "offered": [["a", 1.0]], "candidates": [["a", 1, 1, 0.2, 0]]}])
    >>> [(d.offer_id, d.accepted) for d in logs]                # o2 was never shown
    [('o1', 'a')]
    """
    decisions: dict[str, dict] = {}
    seen: set[str] = set()
    accepted: dict[str, Optional[str]] = {}
    for record in records:
        if "candidates" in record:
            decisions[record["offer_id"]] = record
        elif record.get("type") in SEEN and record.get("offer_id"):
            seen.add(record["offer_id"])
            if record["type"] == "accept":
                accepted[record["offer_id"]] = record.get("product_id") or ""
    out = []
    for offer_id, d in decisions.items():
        if offer_id not in seen or not d["candidates"]:
            continue
        offered = tuple(pid for pid, _ in d["offered"])
        taken = accepted.get(offer_id)
        out.append(LoggedDecision(
            offer_id, tuple(LoggedCandidate(*c) for c in d["candidates"]), offered,
            tuple(float(p) for _, p in d["offered"]),
            (taken or offered[0]) if offer_id in accepted else None, d.get("extra", {})))
    return out


def read_file(path: str) -> list[dict]:
    """A JSON-lines file of decision records and feedback events."""
    with open(path, "rb") as f:
        return [orjson.loads(line) for line in f if line.strip()]


def read_topics(settings: Settings) -> list[dict]:
    """Everything on the decisions and offer-feedback topics so far."""
    from kafka import TopicPartition
    from nextoffer.streams.io.readers import read_to_end
    records: list[dict] = []
    parts = [TopicPartition(settings.topic(t), p) for t in (DECISIONS, FEEDBACK) for p in range(settings.partitions)]

    def keep(_tp, record) -> None:
        try:
            records.append(orjson.loads(record.value))
        except (orjson.JSONDecodeError, TypeError):
            pass       # a malformed feedback message: the worker dead-lettered it
    read_to_end(settings, parts, keep)
    return records


def report(logs: list[LoggedDecision], policies: Iterable[str], resamples: int = 500) -> dict:
    """Each policy's estimates: {policy: {estimator: {value, low, high}}}, and the logged rate."""
    if not logs:
        raise ValueError("no logged decision with an outcome: the decision log is empty or no offer "
                         "was reported seen (send impression, accept, decline events to offer-feedback)")
    rows = {}
    for name in policies:
        est = evaluate(logs, policy_named(name), resamples=resamples)
        rows[name] = {e: dataclasses.asdict(est[e]) for e in ESTIMATORS}
    return {"decisions": len(logs), "logged_acceptance": round(sum(d.accepted is not None for d in logs) / len(logs), 5),
            "policies": rows}


# -- validation in the simulator ------------------------------------------------------------------
#: The four rankings of the feedback loop, as candidate policies over a decision log.
RANKINGS = {"learned": "logged", "untrained": "relevance", "random": "random", "oracle": "score:oracle"}


def validate(impressions: int = 20_000, seed: int = 7, shoppers: int = 500, resamples: int = 500,
             rules: Optional[OfferRules] = None) -> dict:
    """Log the learned ranking (Thompson sampling) in the simulated store, then estimate from those
    logs each of the four rankings' acceptance, and compare with that ranking's acceptance on the
    same shoppers, computed directly from their hidden tastes (each ranking's list shown to the
    shopper of every logged decision: its expected acceptance under the simulation's click model)."""
    from nextoffer.streams.tools.storefront import POSITION_BIAS, run_loop
    base = rules or OfferRules()
    logging_rules = dataclasses.replace(base, exploration_policy="thompson", decision_log_size=base.shortlist)
    log: list = []
    run_loop(logging_rules, impressions, seed, shoppers, log=log)
    logs = join(log)
    truth = {name: _true_acceptance(logs, RANKINGS[name], POSITION_BIAS, seed) for name in RANKINGS}
    out = report(logs, RANKINGS.values(), resamples)
    rows = {}
    for name, policy in RANKINGS.items():
        est = out["policies"][policy]
        rows[name] = {"truth": round(truth[name], 5), **est,
                      "within": {e: est[e]["low"] <= truth[name] <= est[e]["high"] for e in ESTIMATORS}}
    return {"impressions": impressions, "seed": seed, "shoppers": shoppers, "decisions": len(logs),
            "logged_acceptance": out["logged_acceptance"],
            "logged_expected": round(_expected_acceptance(logs, POSITION_BIAS), 5), "rankings": rows}


def _expected_acceptance(logs: list[LoggedDecision], bias: tuple) -> float:
    """The acceptance the logged lists had in expectation, from the shoppers' hidden tastes: set
    beside the acceptance observed, it shows how much of an estimate's error is the luck of the
    logged outcomes, which every estimator shares.

    >>> d = LoggedDecision("o", (), ("a", "b"), (1.0, 1.0), extra={"oracle": {"a": 0.5, "b": 0.5}})
    >>> _expected_acceptance([d], (1.0, 0.5))      # 1 - (1 - 0.5) x (1 - 0.25)
    0.625
    """
    return sum(_cascade(d.extra["oracle"], d.offered, bias) for d in logs) / len(logs)


def _cascade(hidden: dict, slate: Iterable[str], bias: tuple) -> float:
    """P(the shopper takes an item of ``slate``) under the simulation's click model: each item in
    turn is taken with its hidden acceptance x its position's bias, the first taken ends the offer."""
    return 1 - math.prod(1 - hidden.get(pid, 0.0) * bias[min(j, len(bias) - 1)] for j, pid in enumerate(slate))


def _true_acceptance(logs: list[LoggedDecision], policy: str, bias: tuple, seed: int) -> float:
    """Mean over the logged decisions of P(the shopper accepts the policy's list), from the hidden
    acceptance of each item (the log's ``oracle``) and the simulation's position bias: each item
    in turn is taken with p x bias, and the first taken ends the offer (a cascade)."""
    rng = random.Random(seed)
    total = 0.0
    for d in logs:
        hidden = d.extra["oracle"]
        pids = [c[0] for c in d.candidates]
        k = len(d.offered)
        if policy == "random":
            slates = [rng.sample(pids, k) for _ in range(32)]
        else:
            probs = policy_named(policy)(d, k)
            slates = [[pids[int(probs[:, j].argmax())] for j in range(k)]]
        total += sum(_cascade(hidden, s, bias) for s in slates) / len(slates)
    return total / len(logs)


def render(report: dict, console) -> None:
    from rich.table import Table
    table = Table(title=f"estimated acceptance of each policy, from {report['decisions']:,} logged offers "
                        f"(accepted as logged: {report['logged_acceptance']:.3f})")
    for col in ("policy", *ESTIMATORS):
        table.add_column(col, justify="left" if col == "policy" else "right")
    for name, row in report["policies"].items():
        table.add_row(name, *(f"{row[e]['value']:.3f} [{row[e]['low']:.3f}, {row[e]['high']:.3f}]" for e in ESTIMATORS))
    console.print(table)


def render_validation(report: dict, console) -> None:
    from rich.table import Table
    table = Table(title=f"off-policy estimates from {report['decisions']:,} offers the learned ranking logged "
                        f"(Thompson sampling; seed {report['seed']}; accepted {report['logged_acceptance']:.3f}, "
                        f"expected from the shoppers' tastes {report['logged_expected']:.3f}) "
                        f"against each ranking's simulated acceptance")
    for col in ("ranking", "simulated", *ESTIMATORS):
        table.add_column(col, justify="left" if col == "ranking" else "right")
    for name, row in report["rankings"].items():
        table.add_row(name, f"{row['truth']:.3f}", *(
            f"{row[e]['value']:.3f} [{row[e]['low']:.3f}, {row[e]['high']:.3f}] {'in' if row['within'][e] else 'OUT'}"
            for e in ESTIMATORS))
    console.print(table)
