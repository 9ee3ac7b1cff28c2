"""Thompson sampling over a decision's shortlist, with the propensities it logs.

Each candidate's acceptance is uncertain in proportion to how little the model has learned of
it: its posterior is Beta(1 + p·n, 1 + (1 - p)·n), with p the acceptance model's prediction for
this shopper and n the outcomes learned for the product. One value is drawn from each posterior;
the candidate's value under the policy (relevance^(1-w) x p^w) is rescaled by (draw / p)^w, and
the best ``k`` by the rescaled value are offered. A product rarely shown is drawn widely and so
gets its chances; a product with many outcomes is ranked by what the model predicts.

The probability of a choice has no closed form: ``draws`` more sets of draws estimate it, the
chance of the offered list as a whole and of each item in its position, which is what the
off-policy estimators (:mod:`nextoffer.models.ope`) divide by. The chance of an item in its
position is Rao-Blackwellised: for each further draw of the *other* items it takes the exact
probability, from the item's Beta distribution, that its value falls between the j-th and the
(j + 1)-th of theirs. Counting how often the item came out in that position instead gives a
noisy estimate, and the estimators divide by it: 1 / p-hat is biased upwards where p is small,
which over-estimated rankings far from the logged one. River's bandit policies pull one
arm from per-arm rewards with no context; a list of items ranked with a contextual model needs
the draws above, so they are made here with numpy.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np


def beta_cdf(a, b, x: np.ndarray) -> np.ndarray:
    """The Beta(a, b) distribution function at ``x`` (the regularised incomplete beta function),
    by its continued fraction (modified Lentz), on whichever side converges fast; ``a`` and ``b``
    are numbers or arrays that broadcast against ``x``. The core keeps to numpy, so this is not
    scipy's.

    >>> beta_cdf(1.0, 1.0, np.array([0.0, 0.25, 1.0])).round(6).tolist()
    [0.0, 0.25, 1.0]
    >>> round(float(beta_cdf(2.0, 5.0, np.array([0.3]))[0]), 6)      # 1 - 0.7^6 - 6 * 0.3 * 0.7^5
    0.579825
    """
    x = np.clip(np.asarray(x, dtype=float), 0.0, 1.0)
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    lgamma = np.vectorize(math.lgamma, otypes=[float])
    log_norm = np.broadcast_to(lgamma(a + b) - lgamma(a) - lgamma(b), x.shape)   # on a and b as given: few
    a, b = np.broadcast_to(a, x.shape), np.broadcast_to(b, x.shape)
    out = np.where(x >= 1.0, 1.0, 0.0)
    inside = (x > 0.0) & (x < 1.0)
    if not inside.any():
        return out
    xi, ai, bi = x[inside], a[inside], b[inside]
    front = np.exp(log_norm[inside] + ai * np.log(xi) + bi * np.log1p(-xi))
    # the fraction converges fast below the mean-ish point; above it, use I_x(a, b) = 1 - I_(1-x)(b, a)
    direct = xi < (ai + 1.0) / (ai + bi + 2.0)
    fa, fb, fx = np.where(direct, ai, bi), np.where(direct, bi, ai), np.where(direct, xi, 1.0 - xi)
    part = front * _beta_fraction(fa, fb, fx) / fa
    out[inside] = np.clip(np.where(direct, part, 1.0 - part), 0.0, 1.0)
    return out


def _beta_fraction(a: np.ndarray, b: np.ndarray, x: np.ndarray, steps: int = 300, tiny: float = 1e-300) -> np.ndarray:
    """The continued fraction of the incomplete beta function (Numerical Recipes' betacf), to a
    relative 1e-10: far finer than the propensities need."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = np.ones_like(x)
    d = 1.0 - qab * x / qap
    d = 1.0 / np.where(np.abs(d) < tiny, tiny, d)
    h = d.copy()
    for m in range(1, steps + 1):
        m2 = 2 * m
        even = m * (b - m) * x / ((qam + m2) * (a + m2))
        odd = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        for num in (even, odd):
            d = 1.0 / (1.0 + num * d + tiny)
            c = 1.0 + num / c + tiny
            step = d * c
            h *= step
        if np.abs(step - 1.0).max() < 1e-10:
            break
    return h


#: The least chance given to an item in its position (it was drawn there, so it is not 0).
SLOT_FLOOR = 1e-6


def slot_draws(shortlist: Sequence, k: int, weight: float, draws: int, seed: float) -> np.ndarray:
    """``draws + 1`` Thompson rankings of the shortlist: an array (draws + 1, min(k, n)) of
    candidate indices, best first; row 0 is the one to offer.

    >>> from nextoffer.models.policy import LoggedCandidate
    >>> known = [LoggedCandidate("a", 0.9, 0.9, 0.5, 10_000), LoggedCandidate("b", 0.1, 0.1, 0.5, 10_000)]
    >>> slot_draws(known, 1, 0.5, 20, seed=0.1)[:, 0].tolist() == [0] * 21     # no doubt left: greedy
    True
    """
    sampled, _ = _sampled(shortlist, weight, draws, seed)
    return np.argsort(-sampled, axis=1, kind="stable")[:, :min(k, len(shortlist))]


class _Posterior(NamedTuple):
    value: np.ndarray     # each candidate's value under the policy
    p: np.ndarray         # its predicted acceptance
    a: np.ndarray         # its Beta posterior's parameters
    b: np.ndarray


def _sampled(shortlist: Sequence, weight: float, draws: int, seed: float) -> tuple[np.ndarray, _Posterior]:
    """``draws + 1`` rows of each candidate's value rescaled by its drawn acceptance."""
    n = len(shortlist)
    value = np.array([c.value for c in shortlist], dtype=float)
    p = np.clip(np.array([c.accept for c in shortlist], dtype=float), 1e-3, 1 - 1e-3)
    seen = np.array([c.outcomes for c in shortlist], dtype=float)
    a, b = 1.0 + p * seen, 1.0 + (1.0 - p) * seen
    rng = np.random.default_rng(int(seed * 2**32))
    theta = rng.beta(a, b, size=(draws + 1, n))
    return value * (theta / p) ** weight, _Posterior(value, p, a, b)


def _slot_chances(sampled: np.ndarray, post: _Posterior, chosen: np.ndarray, weight: float) -> np.ndarray:
    """P(chosen[j] in position j), per j, given the other candidates' ``sampled`` rows: in each row,
    the chance that the item's value lies between the j-th and (j + 1)-th best of the others',
    from its Beta posterior (value = v (theta / p)^w, so value < x when theta < p (x / v)^(1/w))."""
    rows = len(sampled)
    bounds = np.zeros((len(chosen), 2, rows))        # per position: the others' values above and below
    for j, i in enumerate(chosen):
        others = -np.sort(-np.delete(sampled, i, axis=1), axis=1)
        bounds[j, 0] = others[:, j - 1] if j > 0 else np.inf
        bounds[j, 1] = others[:, j] if j < others.shape[1] else 0.0
    v, p = post.value[chosen][:, None, None], post.p[chosen][:, None, None]
    theta = p * (np.maximum(bounds, 0.0) / np.where(v > 0, v, 1.0)) ** (1.0 / weight)
    cdf = beta_cdf(post.a[chosen][:, None, None], post.b[chosen][:, None, None], theta)
    out = (cdf[:, 0] - cdf[:, 1]).mean(axis=1)
    # an item of value 0 is 0 whatever is drawn: the rows where 0 lies between the others' count
    zero = post.value[chosen] <= 0
    out[zero] = ((bounds[zero, 1] < 0) & (0 < bounds[zero, 0])).mean(axis=1)
    return out


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
    sampled, post = _sampled(shortlist, weight, draws, seed)
    ranks = np.argsort(-sampled, axis=1, kind="stable")[:, :min(k, len(shortlist))]
    n, width = len(shortlist), ranks.shape[1]
    chosen, others = ranks[0], ranks[1:]
    rng = np.random.default_rng(int(seed * 2**32) + 1)
    if uniform_share > 0 and rng.random() < uniform_share:
        chosen = rng.permutation(n)[:width]
    # Estimated from the other draws only: counting the offered one too would bias small
    # propensities up (and the importance weights that divide by them down).
    same_slot = others == chosen
    drawn_list = float(same_slot.all(axis=1).mean())
    drawn_slots = (_slot_chances(sampled[1:], post, chosen, weight) if weight > 0
                   else same_slot.mean(axis=0))      # weight 0: the ranking ignores the draws
    if uniform_share > 0:
        lists = math.perm(n, width)
        return (chosen.tolist(), uniform_share / lists + (1 - uniform_share) * drawn_list,
                [uniform_share / n + (1 - uniform_share) * float(p) for p in drawn_slots])
    floor = 1.0 / len(others)     # the offered list was drawn: its chance is not 0
    return chosen.tolist(), max(drawn_list, floor), [max(float(p), SLOT_FLOOR) for p in drawn_slots]


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
