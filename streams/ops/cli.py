"""The ``nextoffer`` command: run a worker, manage topics, replay data, run the demo, read offers."""
from __future__ import annotations

import argparse
import itertools
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Iterator, Optional

from nextoffer.models.offer import Placement

PLACEMENTS = tuple(p.value for p in Placement)
EPILOG = ("Connection: KAFKA_BOOTSTRAP_SERVERS, REDIS_URL, NEXTOFFER_TOPIC_PREFIX. "
          "Every other setting: 'nextoffer settings'.")


def main(argv: Optional[list[str]] = None) -> int:
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if rest and args.command != "worker":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        return args.func(args, rest) or 0
    except Exception as exc:  # settings and topic errors say what to do; show them plainly
        from nextoffer.streams.io.admin import TopicError
        from nextoffer.streams.io.settings import SettingsError
        if isinstance(exc, (SettingsError, TopicError, FileNotFoundError, ValueError)):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nextoffer", description="Real-time next-best-offer engine: "
                                "upsell and cross-sell offers from live shopping events.", epilog=EPILOG)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    w = sub.add_parser("worker", help="run a worker (a Faust worker; run several to share partitions)",
                       description="Run a worker. It creates missing topics, recovers shopper state "
                       "from the changelog, learns the shared models, then processes events. Extra "
                       "options go to Faust's worker (e.g. --loglevel debug).", epilog=EPILOG)
    w.add_argument("--no-restart", action="store_true",
                   help="run the worker in this process; without it a small supervisor runs the worker "
                   "and starts it again when it exits stuck (code 75, see NEXTOFFER_STALL_RESTART)")
    w.set_defaults(func=cmd_worker)

    t = sub.add_parser("topics", help="create or list the topics", epilog=EPILOG)
    t.add_argument("action", choices=("create", "list"))
    t.add_argument("--partitions", type=int, help="partition count (default NEXTOFFER_PARTITIONS)")
    t.set_defaults(func=cmd_topics)

    s = sub.add_parser("settings", help="print every setting, its value and meaning", epilog=EPILOG)
    s.add_argument("--markdown", action="store_true", help="print the reference table of docs/settings.md")
    s.set_defaults(func=cmd_settings)

    for name, helptext in (("replay", "replay a data file into the input topics, with a progress bar"),
                           ("simulate", "run the storefront simulator into the input topics (a "
                                        "catalog, then shoppers browsing, adding and buying)"),
                           ("demo", "live demo: a worker, a replay of a data file (or the storefront "
                                    "simulator) and a live view of the offers")):
        r = sub.add_parser(name, help=helptext, description=helptext, epilog=EPILOG)
        if name != "simulate":
            r.add_argument("file", nargs="?", type=Path, help="data file (.csv, .csv.gz, .jsonl); "
                           + ("required" if name == "replay" else "without one the simulator runs"))
            r.add_argument("--format", choices=("auto",) + _formats(), default="auto")
            _add_column_options(r)
            r.add_argument("--warm-up-orders", type=int, default=0 if name == "replay" else 12000,
                           help="Online Retail: send the first N orders as purchases only, fast, so "
                                "the models have learned before the live part")
        r.add_argument("--rate", type=float, default={"replay": 0.0, "simulate": 200.0}.get(name, 300.0),
                       help="events per second (0 = as fast as possible)")
        if name == "demo":
            r.add_argument("--limit", type=int, default=40_000,
                           help="stop after this many messages (default 40,000: a few minutes; 0 = all)")
        else:
            r.add_argument("--limit", type=int, help="stop after this many messages")
        r.add_argument("--run-id", help="prefix of event ids (default: new per run, so a second "
                       "replay of a file is new traffic rather than duplicates)")
        if name == "demo":
            r.add_argument("--prefix", help="topic and Redis key prefix of this demo (default: "
                           "NEXTOFFER_TOPIC_PREFIX if set, else a new 'demo-<id>.' per run, so runs "
                           "on different data never mix)")
        if name != "replay":
            r.add_argument("--seed", type=int, default=7, help="simulator seed")
            r.add_argument("--shoppers", type=int, default=2000, help="simulator shoppers")
            r.add_argument("--malformed-share", type=float, default=0.002 if name == "demo" else 0.0,
                           help="simulator: share of malformed events (to see the dead-letter topic)")
        r.set_defaults(func=cmd_demo if name == "demo" else cmd_replay, file=None)

    ev = sub.add_parser("evaluate", help="replay a data set through the offer engine and score it "
                        "against baselines (hit rate @3), with a plot",
                        description="Offline evaluation, the protocol of the shared data sets: orders in "
                        "time order, the first 80% only teach, in the rest each order with 2+ products is "
                        "scored: its first line is the anchor, a hit is any other product of the order "
                        "among the offered. The configured rules (NEXTOFFER_*) are scored as they are and "
                        "with price rules off.", epilog=EPILOG)
    ev.add_argument("file", type=Path, help="Online Retail or REES46 CSV (.csv or .csv.gz); for "
                    "REES46 every event is also replayed, for the share of events offered by kind")
    _add_column_options(ev)
    ev.add_argument("--warm-up", type=float, default=0.8, help="share of orders that only teach")
    ev.add_argument("--limit", type=int, help="use only the first N orders (a quick look)")
    ev.add_argument("--live", action="store_true", help="also replay through Kafka, a worker and Redis "
                    "(a fresh prefix; the broker and Redis must be running) and score offers read from Redis")
    ev.add_argument("--out", type=Path, default=Path("reports"), help="folder for evaluation.json "
                    "and evaluation.png (default ./reports)")
    ev.set_defaults(func=cmd_evaluate)

    fl = sub.add_parser("feedback-loop", help="simulate shoppers reacting to offers: acceptance as the "
                        "model learns, against random and untrained rankings; cool-downs; control AOV",
                        description="Simulated shoppers with hidden tastes and price levels browse, add and buy, "
                        "see every offer the engine makes and accept, decline, dismiss or ignore it; their "
                        "feedback trains the acceptance model. The same shoppers meet four rankings under the "
                        "configured rules (NEXTOFFER_*): learned, untrained (relevance alone), random among "
                        "eligible items, and an oracle that knows the hidden tastes. Reports acceptance over "
                        "time, cool-down violations (must be 0) and the AOV of treated shoppers against a "
                        "control group.", epilog=EPILOG)
    fl.add_argument("--impressions", type=int, default=30_000, help="offers shown per ranking (default 30000)")
    fl.add_argument("--shoppers", type=int, default=500, help="simulated shoppers (default 500)")
    fl.add_argument("--seed", type=int, default=7, help="seed of the simulated store and shoppers")
    fl.add_argument("--window", type=int, default=1000, help="impressions per point of the curve")
    fl.add_argument("--out", type=Path, default=Path("reports"), help="folder for feedback_loop.json "
                    "and feedback_loop.png (default ./reports)")
    fl.set_defaults(func=cmd_feedback_loop)

    op = sub.add_parser("ope", help="estimate, from logged offers and outcomes, the acceptance other offer "
                        "policies would have had (IPS, SNIPS, doubly robust, with intervals)",
                        description="Off-policy evaluation. Reads the decision log (the internal "
                        "nextoffer-decisions topic, or --file, JSON lines of its records and offer-feedback "
                        "events) and the outcomes (the offer-feedback topic), and estimates each --policy's "
                        "acceptance (share of shown offers accepted) with inverse propensity scoring, its "
                        "self-normalised form and a doubly robust estimator, each with a 95%% bootstrap "
                        "interval. Policies: logged (the logging policy, greedily), relevance, acceptance, "
                        "blend:W (relevance^(1-W) x P(accept)^W), random, thompson:W, score:NAME (a score the "
                        "log carries). Estimates are trustworthy where the logging policy explored: log with "
                        "NEXTOFFER_EXPLORATION_POLICY=thompson (or uniform). --validate checks the estimators "
                        "in the feedback-loop simulation, where the truth is known.", epilog=EPILOG)
    op.add_argument("--file", help="a JSON-lines decision log instead of the topics")
    op.add_argument("--policy", action="append", dest="policies", metavar="NAME",
                    help="a candidate policy (repeat; default: logged, relevance, acceptance, blend:0.5, random)")
    op.add_argument("--resamples", type=int, default=500, help="bootstrap resamples of the intervals (default 500)")
    op.add_argument("--validate", action="store_true", help="log the learned ranking in the simulated store and "
                    "compare the estimates of its four rankings with their simulated acceptance")
    op.add_argument("--impressions", type=int, default=20_000, help="with --validate: offers logged (default 20000)")
    op.add_argument("--seed", type=int, default=7, help="with --validate: seed of the simulated store")
    op.add_argument("--json", action="store_true", help="print the report as JSON")
    op.set_defaults(func=cmd_ope)

    lk = sub.add_parser("lookup", help="read a shopper's offers from Redis, as a storefront does",
                        epilog=EPILOG)
    lk.add_argument("user_id")
    lk.add_argument("--placement", choices=PLACEMENTS)
    lk.add_argument("--prefix", help="topic and key prefix (default NEXTOFFER_TOPIC_PREFIX)")
    lk.set_defaults(func=cmd_lookup)

    sv = sub.add_parser("serve", help="serve the dashboard, the HTTP offer lookup and the feedback "
                        "endpoint", epilog=EPILOG, description=(
                            "Serves the live dashboard at /, GET /offers/{user_id}[?placement=], POST "
                            "/feedback (into the offer-feedback topic) and /openapi.json on "
                            "NEXTOFFER_HTTP_HOST:NEXTOFFER_HTTP_PORT. Shopper data and feedback need "
                            "'Authorization: Bearer <NEXTOFFER_HTTP_TOKEN>'; without that setting a "
                            "random token is made and printed."))
    sv.add_argument("--port", type=int, help="port (default NEXTOFFER_HTTP_PORT)")
    sv.add_argument("--host", help="address to listen on (default NEXTOFFER_HTTP_HOST)")
    sv.set_defaults(func=cmd_serve)

    st = sub.add_parser("status", help="brokers, topics, partitions, lag, workers and Redis at a glance",
                        epilog=EPILOG)
    st.add_argument("--json", action="store_true", help="print JSON instead of tables")
    st.set_defaults(func=cmd_status)

    ex = sub.add_parser("explain", help="why a shopper gets their offer: candidates, scores, and which "
                        "rule removed what", epilog=EPILOG, description=(
                            "Rebuilds the shared learners and the shopper's state from Kafka (read-only) "
                            "and runs the policy on the shopper's next event at a placement: the cart's "
                            "checkout if the cart has items, else a view of the last viewed product."))
    ex.add_argument("user_id")
    ex.add_argument("--placement", choices=PLACEMENTS)
    ex.add_argument("--product", help="the product viewed, added or bought (default: the shopper's latest)")
    ex.add_argument("--json", action="store_true", help="print JSON instead of tables")
    ex.set_defaults(func=cmd_explain)

    b = sub.add_parser("bench", help="benchmark the live pipeline against its ceiling: throughput, "
                       "freshness, lookup latency, memory", epilog=EPILOG, description=(
                           "Starts (or uses) the local broker and Redis, measures a do-nothing Faust "
                           "agent (the ceiling), the pipeline with one and two workers, freshness at "
                           "fixed rates, storefront reads under load and memory per shopper; prints a "
                           "table and writes JSON. Takes about 10 minutes with the defaults."))
    b.add_argument("--users", type=int, default=100_000, help="shoppers in the workload (default 100,000)")
    b.add_argument("--products", type=int, default=10_000, help="catalog size (default 10,000)")
    b.add_argument("--backlog", type=int, default=150_000,
                   help="events pre-filled for the throughput runs (default 150,000)")
    b.add_argument("--window", type=float, default=25.0,
                   help="seconds each throughput run is measured over (default 25)")
    b.add_argument("--rates", default="500,1000,2000,5000",
                   help="freshness rates in events/s, comma-separated (default 500,1000,2000,5000)")
    b.add_argument("--seconds", type=float, default=15.0, help="seconds per freshness rate (default 15)")
    b.add_argument("--memory-users", default="100000,1000000",
                   help="shopper counts for the memory figures (default 100000,1000000)")
    b.add_argument("--replay", type=Path, metavar="FILE", help="a real workload instead of the synthetic one: "
                   "the store's orders in FILE (Online Retail's columns) replayed as a view, an add per line, "
                   "a checkout and the purchase; reports drain rate (one and two workers), ratio to the ceiling and "
                   "freshness")
    b.add_argument("--large-carts", action="store_true", help="the large-cart mix instead: carts of 20 to 60 "
                   "lines over a long-tail catalog of --products products (give 100000 or more), each order "
                   "replayed like --replay's; reports the same figures")
    b.add_argument("--orders", type=int, help="with --replay: use only the first N orders; with --large-carts: "
                   "orders generated (default 6,000); with --learners: orders learned per size")
    b.add_argument("--learners", metavar="SIZES", help="memory of the shared learners instead, no broker: "
                   "for each catalog size (comma-separated, e.g. 100000,1000000), the catalog loaded and "
                   "large-cart orders learned (default a tenth of the size); resident MiB, pairs, "
                   "bytes per pair, orders learned per second")
    b.add_argument("--workers", type=int, default=1, help="with --learners: measure one worker of this many "
                   "(partitioned learning over 8 learning partitions: its own anchors' pairs counted, the "
                   "others' rows adopted; default 1, a worker that counts every pair)")
    b.add_argument("--core", type=int, metavar="EVENTS", help="with --replay or --large-carts: the core "
                   "alone instead, no broker: EVENTS events decoded, applied to their shopper's state, "
                   "decided and encoded as a worker does, each order learned; events/s on one core "
                   "(a quick A/B of a change to the core)")
    b.add_argument("--out", type=Path, default=Path("reports/bench.json"), help="JSON output "
                   "(default reports/bench.json)")
    b.set_defaults(func=cmd_bench)
    return p


def _add_column_options(parser) -> None:
    parser.add_argument("--columns", metavar="FIELD=COLUMN,...", help="read a store's own export (CSV, "
                        ".csv.gz or Parquet, one row per order line): which column holds user, order, "
                        "product, price and time, optionally quantity, category, brand, and event (an "
                        "event-type column whose 'purchase' rows are the order lines)")
    parser.add_argument("--preset", choices=("online-retail", "rees46"),
                        help="the column mapping of a known export (--columns overrides single fields)")


def cmd_serve(args, rest) -> int:
    import dataclasses
    import logging
    from nextoffer.streams.io.settings import Settings
    from nextoffer.streams.ops.web import serve
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] [%(levelname)s] %(message)s")
    settings = Settings.from_env()
    changes = {k: v for k, v in (("http_port", args.port), ("http_host", args.host)) if v is not None}
    serve(dataclasses.replace(settings, **changes), print_=lambda text: print(text, flush=True))
    return 0


def cmd_status(args, rest) -> int:
    from nextoffer.streams.ops.status import gather, render
    return _show(gather(_settings()), render, args.json)


def cmd_explain(args, rest) -> int:
    from nextoffer.streams.ops.explain import explain, render
    return _show(explain(_settings(), args.user_id, args.placement, args.product), render, args.json)


def _settings():
    """The settings from the environment, with the partition count of the deployment's existing
    topics when NEXTOFFER_PARTITIONS is not set (commands that talk to Kafka use this)."""
    import os
    from nextoffer.streams.io.admin import adopt_partitions
    from nextoffer.streams.io.settings import Settings
    return adopt_partitions(Settings.from_env(), explicit="NEXTOFFER_PARTITIONS" in os.environ)


def _show(report: dict, render, as_json: bool) -> int:
    """Print a command's report as JSON, or as tables for people."""
    import orjson
    from rich.console import Console
    if as_json:
        print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    else:
        render(report, Console())
    return 0


def cmd_bench(args, rest) -> int:
    from nextoffer.benchmarks.run import BenchConfig, main as bench
    if args.core and not (args.replay or args.large_carts):
        print("nextoffer bench: --core runs the core on a store's events: give --replay FILE or --large-carts",
              file=sys.stderr)
        return 2
    return bench(BenchConfig(
        users=args.users, products=args.products, backlog=args.backlog, window=args.window,
        rates=tuple(float(r) for r in args.rates.split(",") if r.strip()), rate_seconds=args.seconds,
        memory_users=tuple(int(u) for u in args.memory_users.split(",") if u.strip()), out=args.out,
        replay=args.replay, replay_orders=args.orders, large_carts=args.large_carts,
        learners=tuple(int(n) for n in (args.learners or "").split(",") if n.strip()),
        learner_orders=args.orders if args.learners else None, learner_workers=args.workers,
        core_events=args.core))


def _formats() -> tuple[str, ...]:
    from nextoffer.streams.tools.datasets import FORMATS
    return FORMATS


def cmd_worker(args, rest: list[str]) -> int:
    if not args.no_restart:
        from nextoffer.streams.worker.supervisor import supervise
        return supervise([sys.executable, "-m", "nextoffer.streams.ops.cli", "worker", "--no-restart", *rest])
    from nextoffer.streams.worker.faust_internals import check_version
    check_version()   # before the app: its internals are only known for the tested range
    import os
    adopted = _settings().partitions
    os.environ["NEXTOFFER_PARTITIONS"] = str(adopted)   # the worker's app reads it when imported
    from nextoffer.streams.io.admin import ensure_topics
    from nextoffer.streams.worker.app import app, prepare_datadir, settings
    import nextoffer.streams.worker.agents  # noqa: F401 - registers the agents

    prepare_datadir(settings)

    created = ensure_topics(settings)
    if created:
        print(f"created topics: {', '.join(created)}")
    if not any(a.startswith(("-l", "--loglevel")) for a in rest):
        rest = ["--loglevel", settings.log_level] + rest
    if not any(a in ("--with-web", "--without-web") for a in rest):
        # Faust's worker command serves HTTP unless told not to; the setting decides.
        rest = ["--with-web" if settings.web_enabled else "--without-web"] + rest
    if settings.web_enabled and not any(a.startswith(("-p", "--web-port")) for a in rest):
        rest = ["--web-port", str(settings.web_port)] + rest
    sys.argv = ["nextoffer", "worker", *rest]
    app.main()
    return 0


def cmd_topics(args, rest) -> int:
    from nextoffer.streams.io.admin import ensure_topics, partition_counts
    from nextoffer.streams.io.settings import Settings
    settings = _settings() if args.partitions is None else Settings.from_env()
    if args.action == "create":
        created = ensure_topics(settings, args.partitions)
        print(f"created: {', '.join(created) if created else 'nothing (all exist)'}")
    for name, count in sorted(partition_counts(settings).items()):
        print(f"{name}\t{count} partitions")
    return 0


def cmd_settings(args, rest) -> int:
    import os
    from nextoffer.streams.io.security import redact
    from nextoffer.streams.io.settings import Settings, describe, markdown_table
    if args.markdown:
        print(markdown_table(), end="")
        return 0
    Settings.from_env()  # fail early on a bad value
    for env, default, doc in describe():
        current = os.environ.get(env)
        shown = "(secret)" if current and ("PASSWORD" in env or "TOKEN" in env) else redact(current) if current else current
        print(f"{env}={shown if current is not None else default}" + ("" if current is None else
              f"   (default {default})"))
        print(f"    {doc}")
    return 0


def _records(args, settings, stats: Counter) -> Iterator:
    from nextoffer.streams.tools import datasets
    from nextoffer.streams.tools.storefront import storefront_records
    run_id = args.run_id
    if args.file is None:
        return storefront_records(seed=args.seed, shoppers=args.shoppers, start_ts=time.time(),
                                  malformed_share=args.malformed_share, run_id=run_id)
    if not args.file.exists():
        raise FileNotFoundError(f"{args.file} does not exist")
    columns = _columns(args)
    if columns is not None:
        from nextoffer.streams.tools.exports import read_orders
        invoices = list(read_orders(args.file, columns))
        return itertools.chain(datasets.catalog_records(invoices),
                               datasets.order_events(invoices, run_id, args.warm_up_orders))
    fmt = datasets.detect_format(args.file) if args.format == "auto" else args.format
    if fmt == "online-retail":
        return itertools.chain(datasets.online_retail_catalog(args.file),
                               datasets.online_retail_events(args.file, run_id, args.warm_up_orders, stats))
    if fmt == "rees46":
        return datasets.rees46_events(args.file, run_id, stats)
    return _jsonl(args.file)


def _columns(args):
    """The column mapping of ``--preset`` and ``--columns``, or None (the file's own format)."""
    from nextoffer.streams.tools.exports import PRESETS, ColumnMap
    preset, text = getattr(args, "preset", None), getattr(args, "columns", None)
    if text:
        return ColumnMap.parse(text, PRESETS.get(preset))
    return PRESETS[preset] if preset else None


def _jsonl(path: Path) -> Iterator:
    import orjson
    from nextoffer.streams.io.records import Record
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                data = orjson.loads(line)
                yield Record(data["topic"], str(data["key"]), data["value"])


def cmd_replay(args, rest) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from nextoffer.streams.io.admin import ensure_topics
    from nextoffer.streams.io.producer import produce
    settings = _settings()
    args.run_id = args.run_id if args.run_id is not None else uuid.uuid4().hex[:8] + "-"
    if args.file is None and args.command == "replay":
        raise ValueError("replay needs a data file ('nextoffer simulate' runs the simulator)")
    ensure_topics(settings)
    stats: Counter = Counter()
    with Progress(TextColumn("replaying {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[rate]:,.0f} events/s"), TimeElapsedColumn()) as bar:
        task = bar.add_task(args.file.name if args.file else "simulator", total=args.limit, rate=0.0)
        start = time.monotonic()

        def tick(_record) -> None:
            done = bar.tasks[0].completed + 1
            if done % 1000 == 0 or done == args.limit:
                bar.update(task, completed=done, rate=done / max(time.monotonic() - start, 1e-6))
            else:
                bar.tasks[0].completed = done
        sent = produce(settings, _records(args, settings, stats), args.rate, args.limit, tick)
        bar.update(task, completed=sent)
    print(f"sent {sent:,} messages" + (f"; skipped {dict(stats)}" if stats else ""))
    return 0


def cmd_demo(args, rest) -> int:
    import dataclasses
    import os
    from nextoffer.streams.io.admin import ensure_topics
    from nextoffer.streams.tools.demo import run_demo
    from nextoffer.streams.io.settings import Settings
    run = uuid.uuid4().hex[:6]
    args.run_id = args.run_id if args.run_id is not None else run + "-"
    prefix = args.prefix if args.prefix is not None else os.environ.get("NEXTOFFER_TOPIC_PREFIX",
                                                                         f"demo-{run}.")
    from nextoffer.streams.io.admin import adopt_partitions
    settings = adopt_partitions(dataclasses.replace(Settings.from_env(), topic_prefix=prefix),
                                explicit="NEXTOFFER_PARTITIONS" in os.environ)
    os.environ["NEXTOFFER_TOPIC_PREFIX"] = prefix  # the demo's worker process reads it
    ensure_topics(settings)
    stats: Counter = Counter()
    summary = run_demo(settings, _records(args, settings, stats), args.rate, args.limit or None)
    if stats:
        summary["source"] = dict(stats)
    for key, value in summary.items():
        print(f"{key:>26}: {value}")
    if summary.get("example_user"):
        user, placement = summary["example_user"]
        print(f"\nRead it as a storefront does:  redis-cli HGET '{settings.redis_key(user)}' {placement}")
        print(f"or: .venv/bin/nextoffer lookup --prefix '{prefix}' '{user}'   (topic prefix {prefix!r})")
    return 0 if summary["offers"] > 0 else 1


def cmd_evaluate(args, rest) -> int:
    from rich.console import Console
    from rich.table import Table
    from nextoffer.streams.tools.evaluation_report import (event_shares, load_orders, rounded, run_evaluation, save,
                                                           write_plot)
    from nextoffer.streams.io.settings import Settings
    settings = Settings.from_env()
    console = Console()
    orders = load_orders(args.file, args.limit, _columns(args))
    with console.status(f"replaying {args.file.name} through every method..."):
        report = run_evaluation(args.file, orders, settings.rules, args.warm_up, learners=settings.learners)
    if args.live:
        from nextoffer.streams.tools.live_eval import run_live
        with console.status("replaying through Kafka, a worker and Redis...") as status:
            live, info = run_live(settings, orders, args.warm_up,
                                  progress=lambda n, total: status.update(
                                      f"live replay: {n:,}/{total:,} orders") if n % 500 == 0 else None)
        report["methods"].append({"name": live.name, "hit_rate": round(live.hit_rate, 4), "hits": live.hits,
                                  "coverage": round(live.coverage, 4),
                                  "repeat_hit_rate": rounded(live.repeat_hit_rate),
                                  "new_hit_rate": rounded(live.new_hit_rate), **info})
        report["curves"][live.name] = live.curve
    shares = (event_shares(args.file, settings.rules, learners=settings.learners) if _columns(args) is None
              else None)
    if shares is not None:
        report["event_shares"] = shares
        _print_shares(console, shares)
    table = Table(title=f"hit rate @3 on {report['scored_orders']:,} scored orders "
                        f"(after {report['warm_up_orders']:,} warm-up orders)")
    for col in ("method", "hit rate @3", "repeat items", "new items", "hits", "offered at all"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for m in report["methods"]:
        table.add_row(m["name"], f"{m['hit_rate']:.3f}", _rate(m.get("repeat_hit_rate")),
                      _rate(m.get("new_hit_rate")), f"{m['hits']:,}", f"{m['coverage']:.1%}")
    console.print(table)
    for name, rate in report["core_events_per_second"].items():
        console.print(f"engine speed ({name}): {rate:,} events/s on one core ({report['machine']})")
    args.out.mkdir(parents=True, exist_ok=True)
    save(report, args.out / "evaluation.json")
    write_plot(report, args.out / "evaluation.png")
    console.print(f"wrote {args.out / 'evaluation.json'} and {args.out / 'evaluation.png'} "
                  f"({report['seconds']} s)")
    return 0


def _print_shares(console, shares: dict) -> None:
    """The event replay's table: share of events offered, by placement and kind, for each rule set."""
    from rich.table import Table
    table = Table(title="share of events that got an offer (every event replayed through the engine)")
    for col in ("rules", "placement", "events", "offered", "upsell", "cross-sell"):
        table.add_column(col, justify="left" if col in ("rules", "placement") else "right")
    for rules, placements in shares.items():
        for placement, row in placements.items():
            table.add_row(rules, placement, f"{row['events']:,}", f"{row['offered']:.1%}",
                          f"{row['upsell']:.1%}", f"{row['cross_sell']:.1%}")
    console.print(table)


def _rate(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def cmd_feedback_loop(args, rest) -> int:
    from rich.console import Console
    from rich.table import Table
    from nextoffer.streams.tools.feedback_loop import run_all, save, write_plot
    from nextoffer.streams.io.settings import Settings
    settings = Settings.from_env()
    console = Console()
    if args.impressions < args.window:
        raise SystemExit(f"--impressions ({args.impressions}) must be at least --window ({args.window})")
    with console.status("simulating...") as status:
        result = run_all(settings.rules, args.impressions, args.shoppers, args.seed, args.window,
                         progress=lambda name: status.update(f"simulating: {name} ranking, "
                                                             f"{args.impressions:,} impressions"))
    table = Table(title=f"offer acceptance after {args.impressions:,} impressions "
                        f"({args.shoppers:,} simulated shoppers, seed {args.seed})")
    for col in ("ranking", "acceptance", "last quarter", "upsell", "cross-sell", "cool-down violations",
                "AOV treated", "AOV control", "AOV lift"):
        table.add_column(col, justify="left" if col == "ranking" else "right")
    for name, row in result["rankings"].items():
        kinds, orders = row["by_kind"], row["orders"]
        table.add_row(name, f"{row['acceptance_rate']:.3f}", f"{row['late_acceptance_rate']:.3f}",
                      f"{kinds.get('upsell', {}).get('rate', 0):.3f}", f"{kinds.get('cross_sell', {}).get('rate', 0):.3f}",
                      str(row["cooldown_violations"]), f"{orders['treated']['aov'] or 0:,.2f}",
                      f"{orders['control']['aov'] or 0:,.2f}",
                      f"{row['aov_lift']:+.1%}" if row["aov_lift"] is not None else "-")
    console.print(table)
    console.print(f"learned / random: {result['learned_vs_random']}x; learned / untrained: "
                  f"{result['learned_vs_untrained']}x (last quarter of the impressions)")
    args.out.mkdir(parents=True, exist_ok=True)
    save(result, args.out / "feedback_loop.json")
    write_plot(result, args.out / "feedback_loop.png")
    console.print(f"wrote {args.out / 'feedback_loop.json'} and {args.out / 'feedback_loop.png'} "
                  f"({result['seconds']} s)")
    violations = sum(row["cooldown_violations"] for row in result["rankings"].values())
    return 0 if violations == 0 else 1


def cmd_ope(args, rest) -> int:
    from nextoffer.streams.tools import ope
    from nextoffer.streams.io.settings import Settings
    if args.validate:
        from rich.console import Console
        with Console().status(f"simulating {args.impressions:,} logged offers..."):
            report = ope.validate(args.impressions, args.seed, resamples=args.resamples,
                                  rules=Settings.from_env().rules)
        return _show(report, ope.render_validation, args.json)
    records = ope.read_file(args.file) if args.file else ope.read_topics(_settings())
    try:
        report = ope.report(ope.join(records), args.policies or ope.DEFAULT_POLICIES, args.resamples)
    except ValueError as exc:
        raise SystemExit(f"nextoffer ope: {exc}") from None
    return _show(report, ope.render, args.json)


def cmd_lookup(args, rest) -> int:
    import orjson
    import redis
    from nextoffer.streams.io.settings import Settings
    settings = Settings.from_env()
    client = redis.Redis.from_url(settings.redis_url)
    key = (args.prefix if args.prefix is not None else settings.topic_prefix) + f"nbo:{args.user_id}"
    values = {args.placement: client.hget(key, args.placement)} if args.placement else client.hgetall(key)
    found = {(k.decode() if isinstance(k, bytes) else k): orjson.loads(v) for k, v in values.items() if v}
    if not found:
        print(f"no offers for {args.user_id!r} (key {key})")
        return 1
    print(orjson.dumps(found, option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
