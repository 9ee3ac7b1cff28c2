"""The feedback loop: simulated shoppers with hidden tastes react to offers; the model learns."""
import json
import subprocess
import sys
from pathlib import Path

from nextoffer.models.rules import OfferRules
from nextoffer.streams.tools.storefront import HiddenTaste, Storefront, run_loop
from nextoffer.models.offer import Kind


def test_hidden_tastes_decide_acceptance():
    store = Storefront(seed=1, shoppers=5)
    taste = store.shoppers[0]
    liked = next(p for p in store.products.values() if p.brand in taste.brands and p.category in taste.accessories)
    other = next(p for p in store.products.values()
                 if p.brand not in taste.brands and p.category.endswith("accessory0")
                 and p.category not in taste.accessories)
    assert taste.accept_probability(liked, taste.level, Kind.CROSS_SELL) > \
        3 * taste.accept_probability(other, taste.level, Kind.CROSS_SELL)
    assert isinstance(taste, HiddenTaste)


def test_the_learned_ranking_beats_random_and_untrained_and_honours_cool_downs():
    runs = {name: run_loop(rules, impressions=12_000, seed=11, shoppers=300, window=1000)
            for name, rules in (("learned", OfferRules(control_share=0.2)),
                                ("untrained", OfferRules(control_share=0.2, acceptance_weight=0.0, exploration=0.0)),
                                ("random", OfferRules(control_share=0.2, exploration_policy="uniform")))}
    late = {name: r.late_rate() for name, r in runs.items()}
    assert late["learned"] > 1.2 * late["random"]
    assert late["learned"] > 1.2 * late["untrained"]
    assert runs["learned"].curve[-1] > runs["learned"].curve[0]          # it climbs as the model learns
    for r in runs.values():
        assert r.cooldown_violations == 0
        assert r.declined > 0                                            # the check had something to check
        assert r.orders["control"][0] > 0 and r.orders["treated"][0] > 0


def test_the_command_writes_its_report_and_plot(tmp_path):
    out = subprocess.run([sys.executable, "-m", "nextoffer.streams.ops.cli", "feedback-loop", "--impressions", "1500",
                          "--shoppers", "100", "--window", "500", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "feedback_loop.json").read_text())
    assert set(report["rankings"]) == {"learned", "untrained", "random", "oracle"}
    assert all(row["cooldown_violations"] == 0 for row in report["rankings"].values())
    assert (tmp_path / "feedback_loop.png").stat().st_size > 10_000
    assert "learned / random" in out.stdout
