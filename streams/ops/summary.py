"""Adds up the workers' status snapshots into the dashboard's figures, and keeps their series.

>>> a = {"ts": 10.0, "worker": "w1", "stats": {"events.cart.add": 4, "offers.cross_sell.cart": 2},
...      "tally": {"orders.treated": 2, "order_value.treated": 30.0, "orders.control": 1,
...                "order_value.control": 10.0}, "dead_letters": {"not_json": 1},
...      "lag": {"cart[0]": 3}, "latency": {"p50": 0.01, "p95": 0.02, "p99": 0.05, "count": 2},
...      "complements": [["tea", "teapot", 0.5, 3.0]], "upgrades": []}
>>> b = {**a, "worker": "w2", "lag": {"cart[1]": 2}, "latency": {"p50": 0.02, "p95": 0.04, "p99": 0.09, "count": 2}}
>>> s = merge_snapshots([a, b])
>>> s["events"], s["offers"], s["lag"], s["latency"]["p99"], s["aov"], s["aov_lift"]
(8, 4, 5, 0.09, {'treated': 15.0, 'control': 10.0}, 0.5)
"""
from __future__ import annotations

import collections
from typing import Iterable, Optional

from nextoffer.streams.io.figures import Figures


def merge_snapshots(snapshots: Iterable[dict]) -> dict:
    """One view of every worker: totals, rates, lag, worst latency quantiles, top pairs."""
    snapshots = list(snapshots)
    stats, tally, dead = collections.Counter(), collections.Counter(), collections.Counter()
    lag: dict[str, int] = {}
    complements: dict[tuple, list] = {}
    upgrades: collections.Counter = collections.Counter()
    latency = {"p50": None, "p95": None, "p99": None}
    for snap in snapshots:
        stats.update(snap.get("stats", {}))
        tally.update(snap.get("tally", {}))
        dead.update(snap.get("dead_letters", {}))
        lag.update(snap.get("lag", {}))
        for row in snap.get("complements", []):
            complements[(row[0], row[1])] = row
        for a, b, n in snap.get("upgrades", []):
            upgrades[(a, b)] += n
        for q in latency:   # the slowest worker's quantile: what a storefront may see
            value = snap.get("latency", {}).get(q)
            if value is not None and (latency[q] is None or value > latency[q]):
                latency[q] = value
    return {
        "ts": max((s.get("ts", 0.0) for s in snapshots), default=None),
        "workers": sorted(s.get("worker", "?") for s in snapshots),
        "events": sum(v for k, v in stats.items() if k.startswith("events.") and k != "events.duplicate"),
        "events_by_type": _grouped(stats, "events.", 2),
        "duplicates": stats.get("events.duplicate", 0),
        "offers": sum(v for k, v in stats.items() if k.startswith("offers.")),
        "offers_by_kind": _grouped(stats, "offers.", 1),
        "offers_by_placement": _by_placement(stats),
        "no_offer": _grouped(stats, "no_offer.", 1),
        "dead_letters": sum(dead.values()),
        "dead_letters_by_reason": dict(dead),
        "lag": sum(lag.values()),
        "lag_by_partition": dict(sorted(lag.items())),
        "latency": latency,
        **_rates(tally),
        "complements": sorted(complements.values(), key=lambda r: r[2] * r[3] ** 0.2, reverse=True)[:10],
        "upgrades": [[a, b, n] for (a, b), n in upgrades.most_common(10)],
    }


def _by_placement(stats: dict) -> dict:
    out: collections.Counter = collections.Counter()
    for key, value in stats.items():
        if key.startswith("offers.") and key.count(".") == 2:
            out[key.rsplit(".", 1)[1]] += value
    return dict(out)


def _grouped(counts: dict, prefix: str, parts: int) -> dict:
    out: collections.Counter = collections.Counter()
    for key, value in counts.items():
        if key.startswith(prefix):
            pieces = key[len(prefix):].split(".")
            if len(pieces) >= parts:
                out[".".join(pieces[:parts]) if parts > 1 else pieces[0]] += value
    return dict(out)


def _rounded(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value, 4)


def _rates(tally: dict) -> dict:
    """The workers' rates, computed as each worker's metrics compute them, over the summed tally."""
    f = Figures({}, tally, {})
    aov = {g: _rounded(f.aov(g)) for g in ("treated", "control")}
    lift = _rounded((aov["treated"] - aov["control"]) / aov["control"]) \
        if aov["treated"] is not None and aov["control"] else None
    return {"acceptance_rate": _rounded(f.acceptance_rate()), "attach_rate": _rounded(f.attach_rate("treated")),
            "orders": {g: tally.get(f"orders.{g}", 0) for g in ("treated", "control")},
            "aov": aov, "aov_lift": lift,
            "model_updates": {k[len("updates."):]: v for k, v in tally.items() if k.startswith("updates.")}}


class History:
    """The dashboard's time series: one point per sample, rates from the change between samples.

    >>> h = History(keep=10)
    >>> h.add({"ts": 0.0, "events": 0, "offers": 0, "lag": 0, "latency": {"p99": None}})
    >>> h.add({"ts": 2.0, "events": 100, "offers": 40, "lag": 7, "latency": {"p99": 0.03}})
    >>> h.points()[-1]["events_per_s"], h.points()[-1]["offers_per_s"], h.points()[-1]["lag"]
    (50.0, 20.0, 7)
    """

    def __init__(self, keep: int = 900) -> None:
        self._points: collections.deque = collections.deque(maxlen=keep)
        self._last: Optional[dict] = None

    def add(self, summary: dict) -> None:
        ts = summary.get("ts")
        if ts is None:
            return
        last = self._last
        if last is not None and ts <= last["ts"]:
            return                          # no worker has written since the last sample
        dt = ts - last["ts"] if last else None
        rate = (lambda key: round(max(summary.get(key, 0) - last.get(key, 0), 0) / dt, 2)) if dt else \
            (lambda key: None)
        self._points.append({"ts": ts, "events_per_s": rate("events"), "offers_per_s": rate("offers"),
                             "lag": summary.get("lag", 0), "p99": summary.get("latency", {}).get("p99"),
                             "acceptance_rate": summary.get("acceptance_rate"),
                             "attach_rate": summary.get("attach_rate"), "aov_lift": summary.get("aov_lift")})
        self._last = summary

    def points(self) -> list[dict]:
        return list(self._points)
