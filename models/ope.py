"""Off-policy evaluation: the acceptance a candidate policy would have had, from logged offers.

Each logged decision holds the ranked shortlist (each candidate's value under the policy that
decided, its relevance and the acceptance model's P(accept)), the items offered with the
probability that the logging policy put each one in its position, and which item, if any, the
shopper accepted. A policy's acceptance is the expected number of accepted items per offer
(at most one is accepted, so it is the share of offers accepted).

The estimators work position by position, as the position-based click models of the ranking
literature do: the reward of position j depends on the item in it and on j. With w the ratio of
the candidate policy's probability of the logged item in position j to the logging policy's:

- **IPS**: the mean over offers of sum_j w_j r_j; unbiased where the logging policy could have
  shown what the candidate shows;
- **SNIPS** (self-normalised): per position sum(w r) / sum(w), lower variance, a little bias;
- **DR** (doubly robust): a reward model q(item, j) = P(accept) x c_j, with c_j each position's
  calibration, plus the IPS correction of its error: right if either part is.

Intervals are percentile bootstrap intervals over offers. Candidate policies rank the logged
candidates: ``logged`` (the logging policy's values, greedily), ``relevance``, ``acceptance``,
``blend:W`` (relevance^(1-W) x P(accept)^W), ``random``, ``thompson:W``, or ``score:NAME``, a
score the log carries (the simulator logs ``oracle``, the shoppers' hidden acceptance).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

from nextoffer.models.exploration import slot_probabilities

ESTIMATORS = ("ips", "snips", "dr")


@dataclass(frozen=True)
class LoggedDecision:
    """One logged offer: the shortlist, what was offered, with what probability, and the outcome."""

    offer_id: str
    candidates: tuple            # LoggedCandidate-like: product_id, value, relevance, accept, outcomes
    offered: tuple[str, ...]     # the items, in their positions
    propensities: tuple[float, ...]   # P(item in its position) under the logging policy
    accepted: Optional[str] = None    # the product accepted, if any
    extra: dict = field(default_factory=dict)   # score name -> {product_id: score} (e.g. oracle)

    def rewards(self) -> np.ndarray:
        return np.array([1.0 if pid == self.accepted else 0.0 for pid in self.offered])


@dataclass(frozen=True)
class Estimate:
    """One estimator's value for one policy, with its bootstrap interval."""

    estimator: str
    value: float
    low: float
    high: float

    def contains(self, truth: float) -> bool:
        return self.low <= truth <= self.high


#: A policy: (decision, positions) -> array (n candidates, positions) of P(candidate in position).
Policy = Callable[[LoggedDecision, int], np.ndarray]


def ranking(score: Callable[[LoggedDecision], np.ndarray]) -> Policy:
    """The deterministic policy that offers the best candidates by ``score`` (ties: logged order)."""
    def probabilities(d: LoggedDecision, k: int) -> np.ndarray:
        order = np.argsort(-score(d), kind="stable")[:k]
        out = np.zeros((len(d.candidates), k))
        out[order, np.arange(len(order))] = 1.0
        return out
    return probabilities


def policy_named(name: str, draws: int = 400) -> Policy:
    """A candidate policy by name (see the module's docstring).

    >>> policy_named("blend:0.5") is not None, policy_named("random") is not None
    (True, True)
    >>> policy_named("sideways")
    Traceback (most recent call last):
    ...
    ValueError: unknown policy 'sideways': logged, relevance, acceptance, blend:W, random, thompson:W, or score:NAME (a score the log carries)
    """
    def column(i: int):
        return lambda d: np.array([c[i] for c in d.candidates], dtype=float)
    if name == "logged":
        return ranking(column(1))
    if name == "relevance":
        return ranking(column(2))
    if name == "acceptance":
        return ranking(column(3))
    if name.startswith("blend:"):
        w = float(name.split(":", 1)[1])
        return ranking(lambda d: column(2)(d) ** (1 - w) * np.clip(column(3)(d), 1e-9, 1) ** w)
    if name == "random":
        def uniform(d: LoggedDecision, k: int) -> np.ndarray:
            return np.full((len(d.candidates), k), 1.0 / len(d.candidates))
        return uniform
    if name.startswith("thompson:"):
        w = float(name.split(":", 1)[1])
        return lambda d, k: slot_probabilities(d.candidates, k, w, draws, seed=_seed(d.offer_id))
    if name.startswith("score:"):
        extra = name.split(":", 1)[1]
        return ranking(lambda d: np.array([d.extra.get(extra, {}).get(c[0], 0.0) for c in d.candidates]))
    raise ValueError(f"unknown policy {name!r}: logged, relevance, acceptance, blend:W, random, "
                     "thompson:W, or score:NAME (a score the log carries)")


def evaluate(logs: Sequence[LoggedDecision], policy: Policy, resamples: int = 500,
             seed: int = 0, level: float = 0.95) -> dict[str, Estimate]:
    """IPS, SNIPS and DR estimates of ``policy``'s acceptance over ``logs``, with intervals.

    >>> from nextoffer.models.policy import LoggedCandidate
    >>> logs = [LoggedDecision(f"o{n}", (LoggedCandidate("a", .9, .9, .3, 0), LoggedCandidate("b", .1, .1, .1, 0)),
    ...                        ("a",) if n % 2 else ("b",), (0.5,), "a" if n % 4 == 1 else None) for n in range(400)]
    >>> est = evaluate(logs, policy_named("relevance"))        # always offers a: accepted half the time
    >>> round(est["ips"].value, 2), round(est["snips"].value, 2), est["ips"].contains(0.5)
    (0.5, 0.5, True)
    """
    k = max(len(d.offered) for d in logs)
    w = np.zeros((len(logs), k))              # importance weight of the logged item in each position
    r = np.zeros((len(logs), k))
    q_logged = np.zeros((len(logs), k))       # the reward model's P(accept) of the logged item
    q_target = np.zeros((len(logs), k))       # ... and its expectation under the policy
    has = np.zeros((len(logs), k), dtype=bool)
    for n, d in enumerate(logs):
        slots = len(d.offered)
        probs = policy(d, slots)
        index = {c[0]: i for i, c in enumerate(d.candidates)}
        accept = np.array([c[3] for c in d.candidates], dtype=float)
        for j, (pid, mu) in enumerate(zip(d.offered, d.propensities)):
            i = index.get(pid)
            w[n, j] = probs[i, j] / mu if i is not None and mu > 0 else 0.0
            q_logged[n, j] = accept[i] if i is not None else 0.0
            q_target[n, j] = float(probs[:, j] @ accept)
        r[n, :slots] = d.rewards()
        has[n, :slots] = True
    calibration = np.array([r[has[:, j], j].sum() / max(q_logged[has[:, j], j].sum(), 1e-9) for j in range(k)])
    ips_n = (w * r).sum(axis=1)
    dr_n = (calibration * q_target + w * (r - calibration * q_logged)).sum(axis=1)
    share = has.mean(axis=0)                  # offers with a j-th position (the same under any policy)

    def snips(rows: np.ndarray) -> float:
        num, den = (w[rows] * r[rows]).sum(axis=0), w[rows].sum(axis=0)
        return float(sum(share[j] * num[j] / den[j] for j in range(k) if den[j] > 0))
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(logs), size=(resamples, len(logs)))
    tail = (1 - level) / 2
    out = {}
    for name, point, boot in (
            ("ips", ips_n.mean(), ips_n[picks].mean(axis=1)),
            ("snips", snips(np.arange(len(logs))), np.array([snips(p) for p in picks])),
            ("dr", dr_n.mean(), dr_n[picks].mean(axis=1))):
        low, high = np.quantile(boot, [tail, 1 - tail])
        out[name] = Estimate(name, round(float(point), 5), round(float(low), 5), round(float(high), 5))
    return out


def _seed(offer_id: str) -> float:
    """A fixed draw seed per decision, so an estimate does not move between runs."""
    return zlib.crc32(offer_id.encode()) / 2**32
