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
- **DR** (doubly robust): a reward model, plus the IPS correction of its error: right if either
  part is. The model is a cascade: the shopper reads the offer top down and takes the item in
  position j with P(accept) x b_j if nothing above was taken (b_j fitted per position on the
  logs), so it knows that a strong first item leaves less for the ones below.

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
    accept_logged = np.zeros((len(logs), k))  # the acceptance model's P(accept) of the logged item
    accept_target = np.zeros((len(logs), k))  # ... and its expectation under the policy
    has = np.zeros((len(logs), k), dtype=bool)
    for n, d in enumerate(logs):
        slots = len(d.offered)
        probs = policy(d, slots)
        index = {c[0]: i for i, c in enumerate(d.candidates)}
        accept = np.array([c[3] for c in d.candidates], dtype=float)
        for j, (pid, mu) in enumerate(zip(d.offered, d.propensities)):
            i = index.get(pid)
            w[n, j] = probs[i, j] / mu if i is not None and mu > 0 else 0.0
            accept_logged[n, j] = accept[i] if i is not None else 0.0
            accept_target[n, j] = float(probs[:, j] @ accept)
        r[n, :slots] = d.rewards()
        has[n, :slots] = True
    q_logged, q_target = _cascade_reward_model(r, has, accept_logged, accept_target)
    ips_n = (w * r).sum(axis=1)
    dr_n = (q_target + w * (r - q_logged)).sum(axis=1)
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


def _cascade_reward_model(r: np.ndarray, has: np.ndarray, accept_logged: np.ndarray,
                          accept_target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reward model of DR under a cascade: the shopper reads the offer top down and takes at
    most one item, the item in position j with P = b_j x P(accept), if none above was taken.

    Each position's factor b_j is fitted in turn on the logs (the accepts in position j over the
    expected ones given the logged items above). Returns the model's reward of the logged item in
    each position, and its expectation under the candidate policy, whose items above make
    position j's survival (exact for a ranking; for a random policy, the mean P(accept) of each
    position stands in for its items).

    >>> r = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
    >>> has = np.ones_like(r, dtype=bool)
    >>> a = np.full_like(r, 0.5)
    >>> q_logged, q_target = _cascade_reward_model(r, has, a, a)
    >>> q_logged.sum(axis=0).round(3).tolist()      # one accept in each position, as logged
    [1.0, 1.0]
    """
    n, k = r.shape
    survive_logged, survive_target = np.ones(n), np.ones(n)
    q_logged, q_target = np.zeros((n, k)), np.zeros((n, k))
    for j in range(k):
        at_risk = has[:, j]
        expected = (accept_logged[at_risk, j] * survive_logged[at_risk]).sum()
        b = min(r[at_risk, j].sum() / expected, 1.0 / max(accept_logged.max(), 1e-9)) if expected > 0 else 0.0
        q_logged[:, j] = np.where(at_risk, b * accept_logged[:, j] * survive_logged, 0.0)
        q_target[:, j] = np.where(at_risk, b * accept_target[:, j] * survive_target, 0.0)
        survive_logged = survive_logged - q_logged[:, j]       # nothing taken up to and with j
        survive_target = survive_target - q_target[:, j]
    return q_logged, q_target


def _seed(offer_id: str) -> float:
    """A fixed draw seed per decision, so an estimate does not move between runs."""
    return zlib.crc32(offer_id.encode()) / 2**32
