"""Thompson sampling over a decision's shortlist, with the propensities it logs.

Each candidate's acceptance is uncertain in proportion to how little the model has learned of
it: its posterior is Beta(1 + p·n, 1 + (1 - p)·n), with p the acceptance model's prediction for
this shopper and n the outcomes learned for the product. One value is drawn from each posterior;
the candidate's value under the policy (relevance^(1-w) x p^w) is rescaled by (draw / p)^w, and
the best ``k`` by the rescaled value are offered. A product rarely shown is drawn widely and so
gets its chances; a product with many outcomes is ranked by what the model predicts.

The probability of a choice has no closed form: ``draws`` more sets of draws estimate it, the
chance of the offered list as a whole and of each item in its position, which is what the
off-policy estimators (:mod:`nextoffer.models.ope`) divide by. River's bandit policies pull one
arm from per-arm rewards with no context; a list of items ranked with a contextual model needs
the draws above, so they are made here with numpy.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def slot_draws(shortlist: Sequence, k: int, weight: float, draws: int, seed: float) -> np.ndarray:
    """``draws + 1`` Thompson rankings of the shortlist: an array (draws + 1, min(k, n)) of
    candidate indices, best first; row 0 is the one to offer.

    >>> from nextoffer.models.policy import LoggedCandidate
    >>> known = [LoggedCandidate("a", 0.9, 0.9, 0.5, 10_000), LoggedCandidate("b", 0.1, 0.1, 0.5, 10_000)]
    >>> slot_draws(known, 1, 0.5, 20, seed=0.1)[:, 0].tolist() == [0] * 21     # no doubt left: greedy
    True
    """
    n = len(shortlist)
    value = np.array([c.value for c in shortlist], dtype=float)
    p = np.clip(np.array([c.accept for c in shortlist], dtype=float), 1e-3, 1 - 1e-3)
    seen = np.array([c.outcomes for c in shortlist], dtype=float)
    rng = np.random.default_rng(int(seed * 2**32))
    theta = rng.beta(1.0 + p * seen, 1.0 + (1.0 - p) * seen, size=(draws + 1, n))
    sampled = value * (theta / p) ** weight
    return np.argsort(-sampled, axis=1, kind="stable")[:, :min(k, n)]


def thompson_choice(shortlist: Sequence, k: int, weight: float, draws: int, seed: float,
                    uniform_share: float = 0.0) -> tuple[list[int], float, list[float]]:
    """The candidates to offer (indices into ``shortlist``), the estimated probability of that
    list, and of each of its items in its position. ``uniform_share`` of the lists are drawn
    uniformly instead (a defensive mixture): every candidate keeps at least that share over n of
    each position, so the estimators' importance weights stay bounded.

    >>> from nextoffer.models.policy import LoggedCandidate
    >>> fresh = [LoggedCandidate(pid, 0.5, 0.5, 0.5, 0) for pid in "abcd"]
    >>> order, propensity, slots = thompson_choice(fresh, 2, 0.5, 400, seed=0.3)
    >>> len(order), 0 < propensity < 0.3, all(0.1 < s < 0.5 for s in slots)   # nothing known: wide
    (2, True, True)
    >>> sure = [LoggedCandidate(pid, v, v, 0.5, 10**6) for pid, v in (("a", .9), ("b", .5), ("c", .1))]
    >>> thompson_choice(sure, 1, 0.5, 100, seed=0.3, uniform_share=0.06)[2][0] >= 0.02   # the floor
    True
    """
    ranks = slot_draws(shortlist, k, weight, draws, seed)
    n, width = len(shortlist), ranks.shape[1]
    chosen, others = ranks[0], ranks[1:]
    rng = np.random.default_rng(int(seed * 2**32) + 1)
    if uniform_share > 0 and rng.random() < uniform_share:
        chosen = rng.permutation(n)[:width]
    # Estimated from the other draws only: counting the offered one too would bias small
    # propensities up (and the importance weights that divide by them down).
    same_slot = others == chosen
    drawn_list, drawn_slots = float(same_slot.all(axis=1).mean()), same_slot.mean(axis=0)
    if uniform_share > 0:
        lists = math.perm(n, width)
        return (chosen.tolist(), uniform_share / lists + (1 - uniform_share) * drawn_list,
                [uniform_share / n + (1 - uniform_share) * float(p) for p in drawn_slots])
    floor = 1.0 / len(others)
    return chosen.tolist(), max(drawn_list, floor), [max(float(p), floor) for p in drawn_slots]


def slot_probabilities(shortlist: Sequence, k: int, weight: float, draws: int, seed: float,
                       uniform_share: float = 0.0) -> np.ndarray:
    """P(candidate i in position j) under Thompson sampling (with ``uniform_share`` of uniform
    lists): an array (n, min(k, n)).

    >>> from nextoffer.models.policy import LoggedCandidate
    >>> fresh = [LoggedCandidate(pid, 0.5, 0.5, 0.5, 0) for pid in "ab"]
    >>> slot_probabilities(fresh, 1, 0.5, 2000, seed=0.5).round(1).tolist()
    [[0.5], [0.5]]
    """
    ranks = slot_draws(shortlist, k, weight, draws, seed)
    out = np.zeros((len(shortlist), ranks.shape[1]))
    for j in range(ranks.shape[1]):
        out[:, j] = np.bincount(ranks[:, j], minlength=len(shortlist)) / len(ranks)
    return uniform_share / len(shortlist) + (1 - uniform_share) * out
