"""The shared learners' memory benchmark measures what it says (small sizes: figures are the
benchmark's, not the test's)."""
import json
import subprocess
import sys

from nextoffer.benchmarks.large_carts import large_cart_orders


def test_large_carts_are_long_tailed_and_within_their_sizes():
    orders = large_cart_orders(products=5_000, orders=300, seed=2, lines=(20, 60))
    sizes = [len(o.lines) for o in orders]
    assert min(sizes) >= 20 and max(sizes) <= 60
    counts: dict[str, int] = {}
    for o in orders:
        for line in o.lines:
            counts[line.product_id] = counts.get(line.product_id, 0) + 1
    once = sum(1 for c in counts.values() if c == 1)
    assert once > len(counts) / 4, "most products are rarely bought: a long tail"
    assert max(counts.values()) > 20, "and a few are bought often"


def _measured(products: int, orders: int, workers: int = 1) -> dict:
    """In a fresh process, as the benchmark runs each size: a process that has allocated and
    freed before reuses that memory, and its resident set does not grow."""
    out = subprocess.run([sys.executable, "-c", "import json, sys; from nextoffer.benchmarks.learners import "
                          "learner_memory; print(json.dumps(learner_memory(int(sys.argv[1]), int(sys.argv[2]), "
                          "workers=int(sys.argv[3]))))", str(products), str(orders), str(workers)],
                         check=True, capture_output=True, text=True, timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_learner_memory_counts_pairs_and_grows_with_them():
    small, large = _measured(2_000, 100), _measured(2_000, 400)
    assert 0 < small["pairs_stored"] < large["pairs_stored"]
    assert small["products_ordered"] <= small["products"] == 2_000
    assert large["learners_mib"] > small["learners_mib"] >= 0
    from nextoffer.models.bought_together import PairRow
    if PairRow is not None:     # the counted rows' arrays, exactly: more with more pairs
        assert 0 < small["counted_rows_mib"] < large["counted_rows_mib"]
    else:
        assert large["counted_rows_mib"] is None


def test_one_worker_of_two_counts_about_half_the_pairs_and_adopts_the_rest():
    alone, split = _measured(2_000, 200), _measured(2_000, 200, workers=2)
    assert 0.3 < split["pairs_counted"] / alone["pairs_stored"] < 0.7
    # The other rows adopted with only the pairs decisions read: fewer than their owner counts.
    assert split["pairs_counted"] < split["pairs_stored"] < alone["pairs_stored"]
    assert 0.3 < split["pair_updates"] / alone["pair_updates"] < 0.7
    assert split["adopted_mib"] >= 0 and split["bytes_per_adopted_pair"] is not None


def test_the_pair_updates_metric_counts_what_learning_an_order_costs():
    from nextoffer.models.engine import Basket, OfferEngine
    from nextoffer.models.events import LineItem
    from nextoffer.models.rules import OfferRules
    engine = OfferEngine(OfferRules())
    lines = tuple(LineItem(f"p{n}", 1, 5.0) for n in range(5))
    engine.learn_basket(Basket("u1", 1.0, lines + lines[:2]))             # 5 distinct products
    assert engine.tally["updates.pairs"] == 5 * 4
    huge = tuple(LineItem(f"q{n}", 1, 5.0) for n in range(engine.bought.max_basket + 40))
    engine.learn_basket(Basket("u2", 2.0, huge))                          # only the first max_basket pair
    assert engine.tally["updates.pairs"] == 20 + engine.bought.max_basket * (engine.bought.max_basket - 1)


def test_the_core_benchmark_runs_a_stores_events_through_the_core(tmp_path):
    """``nextoffer bench --large-carts --core N``: N events through the core, no broker; the
    figures written as JSON."""
    from nextoffer.streams.ops.cli import main
    out = tmp_path / "core.json"
    assert main(["bench", "--large-carts", "--products", "3000", "--orders", "40", "--core", "600",
                 "--out", str(out)]) == 0
    core = json.loads(out.read_text())["core"]
    assert core["events"] == 600 and core["events_per_s"] > 0
    assert core["orders_learned"] > 0 and core["offers"] > 0
    again = tmp_path / "again.json"      # the events' times are fixed: the same offers every run
    assert main(["bench", "--large-carts", "--products", "3000", "--orders", "40", "--core", "600",
                 "--out", str(again)]) == 0
    timings = ("cpu_seconds", "events_per_s")
    repeat = json.loads(again.read_text())["core"]
    assert {k: v for k, v in repeat.items() if k not in timings} == {k: v for k, v in core.items() if k not in timings}
    assert main(["bench", "--core", "10", "--out", str(out)]) == 2      # the core needs a store's events


def test_the_worker_memory_figure_is_measured_on_realistic_shoppers():
    """The synthetic benchmark's worker bytes per shopper (small: the figure is the benchmark's)."""
    from nextoffer.benchmarks.memory import realistic_state, worker_bytes_per_user
    import random as _random
    shopper = realistic_state(1, _random.Random(1), 1_700_000_000.0)
    assert len(shopper.offers) == 3 and shopper.orders == 1
    assert 200 < worker_bytes_per_user(300) < 20_000
