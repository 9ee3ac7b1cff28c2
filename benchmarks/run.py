"""``nextoffer bench``: one run, one table, one JSON file.

1. ceiling: a do-nothing Faust agent draining a pre-filled backlog (events/s);
2. throughput: the full pipeline draining the same backlog with one worker, then two;
3. freshness: event produced -> offer readable, p50/p95/p99, at fixed rates;
4. lookup: HGET of offers under load beside GET of a plain key of the same size;
5. memory: worker bytes per active shopper and Redis bytes per shopper, at 100k and 1M.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import redis
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from nextoffer.benchmarks import memory
from nextoffer.benchmarks.pipeline import (ROOT, STARTED, Deployment, drain_rate, freshness, lookup_under_load,
                                 redis_as_left)
from nextoffer.benchmarks.workload import Workload
from nextoffer.models.bought_together import kernels_label
from nextoffer.streams.io.admin import remove_deployment
from nextoffer.streams.io.settings import Settings


#: Seconds of events at the first rate before the freshness runs, not counted.
WARM_UP_SECONDS = 5.0


@dataclass
class BenchConfig:
    users: int = 100_000
    products: int = 10_000
    backlog: int = 150_000
    window: float = 25.0
    rates: tuple[float, ...] = (500.0, 1000.0, 2000.0, 5000.0)
    rate_seconds: float = 15.0
    lookups: int = 3000
    memory_users: tuple[int, ...] = (100_000, 1_000_000)
    out: Path = field(default_factory=lambda: ROOT / "reports" / "bench.json")
    replay: Optional[Path] = None       # a store's order export: the real-workload run instead
    replay_orders: Optional[int] = None
    large_carts: bool = False           # the large-cart mix (20 to 60 lines, ``products`` products) instead
    learners: tuple[int, ...] = ()      # catalog sizes: memory of the shared learners instead
    learner_orders: Optional[int] = None   # orders learned per catalog size (default: a tenth of it)
    learner_workers: int = 1            # with learners: one worker of this many (partitioned learning)
    core_events: Optional[int] = None   # with replay or large_carts: the core alone on this many events


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = next(int(line.split()[1]) // 1024 for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal"))
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_mib": mem, "python": platform.python_version(),
            "os": platform.platform(),
            "kernels": kernels_label(Settings.from_env().learners.compiled_kernels)}


def run(config: BenchConfig, console: Console) -> dict:
    subprocess.run(["bash", str(ROOT / "deploy" / "stack.sh"), "up"], check=True, capture_output=True)
    base = {**os.environ}
    run_id = uuid.uuid4().hex[:6]
    logs = ROOT / ".run" / f"bench-{run_id}"
    logs.mkdir(parents=True, exist_ok=True)
    result: dict = {"machine": machine(), "config": {k: str(v) if isinstance(v, Path) else v
                                                      for k, v in asdict(config).items()}}
    deployments: list[Deployment] = []
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,.0f}/"
                  "{task.total:,.0f}"), TimeElapsedColumn(), console=console) as progress:
        workload = Workload(config.users, config.products)
        # 1-2: ceiling and throughput on one pre-filled backlog (each its own consumer group).
        a = Deployment(base, f"bench-{run_id}a.", workload, logs)
        deployments.append(a)
        fill = progress.add_task("filling the backlog", total=config.backlog)
        a.fill(config.backlog, lambda n: progress.advance(fill, n))
        progress.update(fill, completed=config.backlog)
        result["ceiling_events_per_s"] = _drain(progress, a, "ceiling", "nextoffer.streams.worker.ceiling", 1, config)
        result["pipeline_events_per_s"] = _drain(progress, a, "nextoffer", "nextoffer.streams.ops.cli", 1, config)
        result["ratio_to_ceiling"] = round(result["pipeline_events_per_s"] / result["ceiling_events_per_s"], 3)
        b = Deployment(base, f"bench-{run_id}b.", workload, logs)
        deployments.append(b)
        b.fill(config.backlog, lambda n: None)
        result["two_workers_events_per_s"] = _drain(progress, b, "nextoffer", "nextoffer.streams.ops.cli", 2, config)
        # 3-4: freshness at fixed rates and storefront reads, on a worker that has caught up.
        c = Deployment(base, f"bench-{run_id}c.", workload, logs)
        deployments.append(c)
        worker = c.worker("fresh-worker")
        worker.wait_for("shared learners ready")
        result["freshness"] = _freshness_runs(progress, c, config)
        task = progress.add_task("lookups under load at 1,000 events/s", total=config.rate_seconds)
        result["lookup"] = _timed(progress, task, lambda: lookup_under_load(
            c, 1000.0, config.rate_seconds, config.lookups, seed=99))
        result["worker_rss_mib_after_freshness"] = round(worker.rss_bytes() / 2**20, 1)
        result["redis_as_left"] = redis_as_left(c)
        worker.stop()
        # 5: memory per shopper.
        result["memory"] = []
        settings = Settings.from_env(base)
        offers = memory.engine_offers()      # what the engine offers on this workload
        for users in config.memory_users:
            task = progress.add_task(f"memory with {users:,} shoppers", total=2)
            worker_bytes = memory.worker_bytes_per_user(users)
            progress.advance(task)
            redis_bytes, offer_bytes = memory.redis_bytes_per_user(settings.redis_url, f"bench-{run_id}m.",
                                                                   users, offers=offers)
            worst_bytes, worst_offer = memory.redis_bytes_per_user(settings.redis_url, f"bench-{run_id}w.", users)
            progress.advance(task)
            result["memory"].append({"users": users, "worker_bytes_per_user": round(worker_bytes),
                                     "redis_bytes_per_user": round(redis_bytes), "offer_bytes": offer_bytes,
                                     "redis_bytes_per_user_largest_offers": round(worst_bytes),
                                     "largest_offer_bytes": worst_offer, "placements_per_user": 2})
    _remove(deployments, base)
    return result


def _remove(deployments: list[Deployment], base: dict) -> None:
    """Delete the benchmark deployments' topics and keys."""
    lookup = redis.Redis.from_url(Settings.from_env(base).redis_url)
    for d in deployments:
        remove_deployment(d.settings, lookup)
    lookup.close()


def _workload(config: BenchConfig):
    """The real workload asked for and its name: the large-cart mix, or the store's orders replayed."""
    from nextoffer.benchmarks import large_carts
    from nextoffer.benchmarks.replay import load
    if config.large_carts:
        return (large_carts.workload(config.products, config.replay_orders or 6_000),
                f"the large-cart mix ({config.products:,}-product catalog)")
    return load(config.replay, config.replay_orders), config.replay.name


def run_replay(config: BenchConfig, console: Console) -> dict:
    """The real-workload run: a store's orders replayed as views, adds per line, checkouts and
    purchases (:mod:`nextoffer.benchmarks.replay`): drain rate of the do-nothing agent and of one
    worker, and freshness at fixed rates on a worker that has caught up."""
    subprocess.run(["bash", str(ROOT / "deploy" / "stack.sh"), "up"], check=True, capture_output=True)
    base, run_id = {**os.environ}, uuid.uuid4().hex[:6]
    logs = ROOT / ".run" / f"bench-{run_id}"
    logs.mkdir(parents=True, exist_ok=True)
    workload, name = _workload(config)
    result: dict = {"machine": machine(), "workload": {
        "file": name, "orders": len(workload.orders), "products": len(workload.catalog),
        "shoppers": workload.users, "lines_per_order": round(workload.lines / max(1, len(workload.orders)), 1)},
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()}}
    deployments: list[Deployment] = []
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,.0f}/"
                      "{task.total:,.0f}"), TimeElapsedColumn(), console=console) as progress:
            a = Deployment(base, f"bench-{run_id}r.", workload, logs)
            deployments.append(a)
            fill = progress.add_task("filling the backlog with the replay", total=config.backlog)
            a.fill(config.backlog, lambda n: progress.advance(fill, n))
            progress.update(fill, completed=config.backlog)
            result["ceiling_events_per_s"] = _drain(progress, a, "ceiling", "nextoffer.streams.worker.ceiling", 1,
                                                    config)
            result["pipeline_events_per_s"] = _drain(progress, a, "nextoffer", "nextoffer.streams.ops.cli", 1, config)
            result["ratio_to_ceiling"] = round(result["pipeline_events_per_s"] / result["ceiling_events_per_s"], 3)
            b = Deployment(base, f"bench-{run_id}r2.", workload, logs)   # two workers split the learning
            deployments.append(b)
            b.fill(config.backlog, lambda n: None)
            result["two_workers_events_per_s"] = _drain(progress, b, "nextoffer", "nextoffer.streams.ops.cli", 2,
                                                        config)
            c = Deployment(base, f"bench-{run_id}rf.", workload, logs)   # the same catalog and orders
            deployments.append(c)
            worker = c.worker("replay-fresh-worker")
            worker.wait_for("shared learners ready")
            result["freshness"] = _freshness_runs(progress, c, config)
            worker.stop()
    finally:
        _remove(deployments, base)
    return result


def report_replay(result: dict, console: Console) -> None:
    w = result["workload"]
    table = Table(title=f"nextoffer bench on {w['file']}: {w['orders']:,} orders replayed ({w['lines_per_order']} "
                        f"lines each on average), {w['products']:,} products, {w['shoppers']:,} shoppers")
    for col in ("measure", "figure", "target", "met"):
        table.add_column(col)
    table.add_row("ceiling (do-nothing Faust agent)", f"{result['ceiling_events_per_s']:,} events/s", "", "")
    table.add_row("pipeline, 1 worker", f"{result['pipeline_events_per_s']:,} events/s", ">= 2,000",
                  _ok(result["pipeline_events_per_s"] >= 2000))
    table.add_row("pipeline / ceiling", f"{result['ratio_to_ceiling']:.2f}", "", "")
    if "two_workers_events_per_s" in result:
        table.add_row("pipeline, 2 workers", f"{result['two_workers_events_per_s']:,} events/s", "", "")
    for point in result["freshness"]:
        target, met = ("p99 <= 100 ms", _within(point, 100)) if point["rate"] == 1000 else ("", "")
        table.add_row(f"freshness at {point['rate']:,.0f}/s ({point['offers_per_s']:,} offers/s"
                      f"{'' if point['sustained'] else ', not kept up with'})",
                      f"p50 {point['p50_ms']} / p95 {point['p95_ms']} / p99 {point['p99_ms']} ms", target, met)
    console.print(table)


def _freshness_runs(progress: Progress, d: Deployment, config: BenchConfig) -> list[dict]:
    """Freshness at each configured rate, after a warm-up that is not counted (a worker's first
    offers pay for its connections and topic metadata)."""
    task = progress.add_task("warming up the worker", total=WARM_UP_SECONDS)
    _timed(progress, task, lambda: freshness(d, config.rates[0], WARM_UP_SECONDS, seed=0))
    points = []
    for n, rate in enumerate(config.rates):
        task = progress.add_task(f"freshness at {rate:,.0f} events/s", total=config.rate_seconds)
        points.append(_timed(progress, task, lambda: freshness(d, rate, config.rate_seconds, seed=n + 1)))
    return points


#: Seconds the workers are given, once each is ready, to finish the rebalance their starts began:
#: the drain is measured on the settled group, not across a second worker's late join.
SETTLE_SECONDS = 3.0


def _settled(procs: list) -> None:
    """Wait until every worker has its partitions and its shared learners, then the settling time."""
    for p in procs:
        p.wait_for("shared learners ready")
    time.sleep(SETTLE_SECONDS)


def _drain(progress: Progress, d: Deployment, group: str, module: str, workers: int,
           config: BenchConfig) -> float:
    label = "ceiling (do-nothing agent)" if module.endswith("ceiling") else f"pipeline, {workers} worker(s)"
    task = progress.add_task(label, total=config.backlog)
    procs = [d.worker(f"{group}-{workers}w-{n}", module) for n in range(workers)]
    try:
        if not module.endswith("ceiling"):
            _settled(procs)
        rate = drain_rate(d, group, config.backlog, config.window,
                          lambda done: progress.update(task, completed=done))
    finally:
        for p in procs:
            p.stop()
    progress.update(task, description=f"{label}: {rate:,.0f} events/s")
    return round(rate)


def _timed(progress: Progress, task, work):
    import threading
    box: dict = {}
    thread = threading.Thread(target=lambda: box.setdefault("out", work()))
    thread.start()
    started = time.monotonic()
    while thread.is_alive():
        progress.update(task, completed=min(time.monotonic() - started, progress.tasks[task].total))
        thread.join(0.2)
    if "out" not in box:
        raise RuntimeError("a benchmark step failed; see the output above")
    return box["out"]


def report(result: dict, console: Console) -> None:
    m = result["machine"]
    console.print(f"\n[bold]nextoffer bench[/bold]: {m['cpu']}, {m['cores']} cores, "
                  f"{m['memory_mib']:,} MiB, Python {m['python']}, {m.get('kernels', '')}")
    table = Table("measure", "figure", "target", "met")
    ceiling, pipe = result["ceiling_events_per_s"], result["pipeline_events_per_s"]
    table.add_row("ceiling: do-nothing Faust agent", f"{ceiling:,} events/s", "", "")
    table.add_row("pipeline, 1 worker", f"{pipe:,} events/s", ">= 5,000", _ok(pipe >= 5000))
    table.add_row("pipeline / ceiling", f"{result['ratio_to_ceiling']:.2f}", ">= 0.5",
                  _ok(result["ratio_to_ceiling"] >= 0.5))
    table.add_row("pipeline, 2 workers", f"{result['two_workers_events_per_s']:,} events/s", "", "")
    for point in result["freshness"]:
        target, met = "", ""
        if point["rate"] == 1000:
            target, met = "p99 <= 50 ms", _within(point, 50)
        table.add_row(f"freshness at {point['rate']:,.0f}/s ({point['offers_per_s']:,} offers/s"
                      f"{'' if point['sustained'] else ', not kept up with'})",
                      f"p50 {point['p50_ms']} / p95 {point['p95_ms']} / p99 {point['p99_ms']} ms", target, met)
    kept = [p for p in result["freshness"] if p["sustained"]]
    if kept:
        top = max(kept, key=lambda p: p["rate"])
        table.add_row(f"freshness at the highest rate kept up with ({top['rate']:,.0f}/s)",
                      f"p99 {top['p99_ms']} ms", "p99 <= 250 ms", _ok(top["p99_ms"] <= 250))
    else:
        table.add_row("freshness at the highest rate kept up with", "none kept up with", "p99 <= 250 ms", "NO")
    lk = result["lookup"]
    table.add_row(f"lookup HGET ({lk['offer_bytes']} B offer) under 1,000/s",
                  f"p50 {lk['hget_p50_ms']} / p99 {lk['hget_p99_ms']} ms", "", "")
    table.add_row("plain GET, same size", f"p50 {lk['get_p50_ms']} / p99 {lk['get_p99_ms']} ms", "", "")
    table.add_row("lookup p99 / plain p99", f"{lk['p99_ratio']:.2f}", "<= 1.5", _ok(lk["p99_ratio"] <= 1.5))
    for mem in result["memory"]:
        table.add_row(f"worker memory per shopper ({mem['users']:,})", f"{mem['worker_bytes_per_user']:,} B",
                      "<= 2 KB", _ok(mem["worker_bytes_per_user"] <= 2048))
        table.add_row(f"Redis memory per shopper ({mem['users']:,}, 2 placements, "
                      f"{mem['offer_bytes']} B offers)",
                      f"{mem['redis_bytes_per_user']:,} B", "<= 1 KB", _ok(mem["redis_bytes_per_user"] <= 1024))
        table.add_row(f"  the same with {mem['largest_offer_bytes']} B offers (3 items, long reasons)",
                      f"{mem['redis_bytes_per_user_largest_offers']:,} B", "", "")
    left = result["redis_as_left"]
    table.add_row(f"Redis per shopper as the pipeline left them ({left['placements_per_shopper']} "
                  f"placements each)", f"{left['bytes_per_shopper']:,} B", "<= 1 KB",
                  _ok(left["bytes_per_shopper"] <= 1024))
    console.print(table)


def _ok(flag: bool) -> str:
    return "yes" if flag else "NO"


def _within(point: dict, p99_ms: float) -> str:
    """Whether a freshness run's p99 is within the bound (a run with no offer is not)."""
    return _ok(point["p99_ms"] is not None and point["p99_ms"] <= p99_ms)


def run_learners(config: BenchConfig, console: Console) -> dict:
    """Memory of the shared learners and the catalog at each catalog size, and learning speed
    (:mod:`nextoffer.benchmarks.learners`); no broker needed. Each size runs in its own process,
    so one size's memory is not counted in the next."""
    rows = []
    for products in config.learners:
        orders = config.learner_orders or max(1_000, products // 10)
        with console.status(f"{products:,} products: learning {orders:,} large-cart orders..."):
            out = subprocess.run([sys.executable, "-c", "import json, sys; from nextoffer.benchmarks.learners "
                                  "import learner_memory; print(json.dumps(learner_memory(int(sys.argv[1]), "
                                  "int(sys.argv[2]), workers=int(sys.argv[3]))))", str(products), str(orders),
                                  str(config.learner_workers)],
                                 check=True, capture_output=True, text=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {"machine": machine(), "learners": rows}


def run_core(config: BenchConfig, console: Console) -> dict:
    """The core alone on the replay's or the large-cart mix's events (:mod:`nextoffer.benchmarks.core`)."""
    from nextoffer.benchmarks.core import core_rate
    workload, name = _workload(config)
    settings = Settings.from_env()
    with console.status(f"{config.core_events:,} events of {name} through the core..."):
        figures = core_rate(workload, config.core_events, settings.rules, settings.learners)
    return {"machine": machine(), "workload": {"file": name, "orders": len(workload.orders),
                                               "products": len(workload.catalog), "shoppers": workload.users},
            "core": figures}


def report_core(result: dict, console: Console) -> None:
    core, w = result["core"], result["workload"]
    console.print(f"the core alone on {w['file']} ({w['orders']:,} orders, {w['products']:,} products): "
                  f"{core['events_per_s']:,} events/s on one core ({core['events']:,} events in "
                  f"{core['cpu_seconds']} CPU s; {core['offers']:,} offers, {core['orders_learned']:,} orders "
                  f"learned; {core['kernels']})")


def report_learners(result: dict, console: Console) -> None:
    workers = result["learners"][0].get("workers", 1) if result["learners"] else 1
    how = ("partitioned learning: its own anchors' pairs counted, the others' rows adopted" if workers > 1
           else "it counts every pair")
    table = Table(title=f"shared learners of one worker of {workers} ({how}): resident memory after learning "
                        "large-cart orders (20 to 60 lines)")
    for col in ("catalog", "orders learned", "products ordered", "pairs stored (counted here)", "catalog MiB",
                "learners MiB (counted rows / adopted rows)", "bytes / pair", "orders learned / s", "target"):
        table.add_column(col, justify="right")
    for r in result["learners"]:
        target = f"<= 300 MiB {_ok(r['total_mib'] <= 300)}" if r["products"] >= 1_000_000 else ""
        table.add_row(f"{r['products']:,}", f"{r['orders']:,}", f"{r['products_ordered']:,}",
                      f"{r['pairs_stored']:,} ({r.get('pairs_counted', r['pairs_stored']):,})",
                      f"{r['catalog_mib']:,}", f"{r['learners_mib']:,} ({_mib(r.get('counted_rows_mib'))} / {r.get('adopted_mib', 0):,})",
                      f"{r['bytes_per_pair']}", f"{r['orders_per_s']:,} ({r['lines_per_s']:,} lines)", target)
    console.print(table)


def _mib(value) -> str:
    return "-" if value is None else f"{value:,}"


def main(config: BenchConfig) -> int:
    console = Console()
    live = config.replay or config.large_carts
    try:
        if config.learners:
            result, show = run_learners(config, console), report_learners
        elif live and config.core_events:
            result, show = run_core(config, console), report_core
        elif live:
            result, show = run_replay(config, console), report_replay
        else:
            result, show = run(config, console), report
    finally:
        for process in STARTED:
            process.stop()
    config.out.parent.mkdir(parents=True, exist_ok=True)
    config.out.write_text(json.dumps(result, indent=2))
    show(result, console)
    console.print(f"figures written to {config.out}")
    return 0
