"""``nextoffer feedback-loop``: the storefront simulation of :mod:`nextoffer.streams.tools.storefront`, four ways.

The same simulated shoppers (same seed) meet four rankings under the same rules:

* **learned**: the configured policy, its acceptance model learning from the loop;
* **untrained**: relevance alone (acceptance weight 0, no exploration);
* **random**: items drawn at random among the eligible ones (the ``uniform`` policy);
* **oracle**: ranked by the shoppers' hidden tastes, the upper bound.

Prints a table, writes ``feedback_loop.json`` and ``feedback_loop.png`` (acceptance rate per
window of impressions, one line per ranking).
"""
from __future__ import annotations

import dataclasses
import json
import platform
import time
from pathlib import Path
from typing import Callable, Optional

from nextoffer.models.rules import OfferRules
from nextoffer.streams.tools.storefront import LoopResult, run_loop
from nextoffer.streams.tools.plots import save_lines

#: The simulation's control group when none is configured: large, so its AOV is not all noise.
DEFAULT_CONTROL = 0.3


def rankings(rules: OfferRules) -> list[tuple[str, OfferRules, bool]]:
    """(name, rules, oracle) of the four runs; a control group of 30% unless one is configured."""
    base = rules if rules.control_share > 0 else dataclasses.replace(rules, control_share=DEFAULT_CONTROL)
    return [("learned", base, False),
            ("untrained", dataclasses.replace(base, acceptance_weight=0.0, exploration=0.0), False),
            ("random", dataclasses.replace(base, exploration_policy="uniform"), False),
            ("oracle", dataclasses.replace(base, exploration=0.0), True)]


def run_all(rules: OfferRules, impressions: int, shoppers: int, seed: int, window: int,
            progress: Optional[Callable[[str], None]] = None) -> dict:
    started = time.perf_counter()
    results: dict[str, LoopResult] = {}
    for name, r, oracle in rankings(rules):
        if progress:
            progress(name)
        results[name] = run_loop(r, impressions, seed, shoppers, window, name, oracle=oracle)
    control = rankings(rules)[0][1].control_share
    return report(results, control, impressions, shoppers, seed, window, time.perf_counter() - started)


def report(results: dict[str, LoopResult], control_share: float, impressions: int, shoppers: int,
           seed: int, window: int, seconds: float) -> dict:
    rows = {}
    for name, r in results.items():
        treated, control = r.aov("treated"), r.aov("control")
        rows[name] = {
            "impressions": r.impressions, "accepted": r.accepted,
            "acceptance_rate": round(r.acceptance_rate, 4), "late_acceptance_rate": round(r.late_rate(), 4),
            "by_kind": {k: {"shown": v[0], "rate": round(v[1] / v[0], 4)} for k, v in r.by_kind.items()},
            "by_placement": {k: {"shown": v[0], "rate": round(v[1] / v[0], 4)} for k, v in r.by_placement.items()},
            "item_acceptance_by_segment": {k: round(a / (a + d), 4) for k, (a, d) in r.by_segment.items() if a + d},
            "orders": {g: {"orders": n, "aov": round(v / n, 2) if n else None} for g, (n, v) in r.orders.items()},
            "aov_lift": round(treated / control - 1, 4) if control else None,
            "cooldown_violations": r.cooldown_violations, "events": r.events, "curve": r.curve}
    late = {name: row["late_acceptance_rate"] for name, row in rows.items()}
    return {"impressions": impressions, "shoppers": shoppers, "seed": seed, "window": window,
            "control_share": control_share, "rankings": rows,
            "learned_vs_random": round(late["learned"] / late["random"], 3) if late["random"] else None,
            "learned_vs_untrained": round(late["learned"] / late["untrained"], 3) if late["untrained"] else None,
            "seconds": round(seconds, 1),
            "machine": f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}"}


def write_plot(result: dict, path: Path) -> None:
    """Acceptance rate per window of impressions, one line per ranking."""
    window, rows = result["window"], result["rankings"]
    lines = [(f"{name} (last quarter {row['late_acceptance_rate']:.3f})",
              [window * (n + 1) for n in range(len(row["curve"]))], row["curve"],
              "--" if name == "oracle" else "-") for name, row in rows.items()]
    top = max(max(row["curve"] or [0]) for row in rows.values())
    save_lines(path, lines, "offers shown (impressions)", f"acceptance rate per {window:,} impressions",
               f"feedback loop: {result['shoppers']:,} simulated shoppers, seed {result['seed']}",
               (0, max(0.6, top + 0.05)), legend="lower right")


def save(result: dict, path: Path) -> None:
    path.write_text(json.dumps(result, indent=2) + "\n")
