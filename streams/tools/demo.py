"""The live demo: a worker, a feeder replaying events, and a terminal view of the offers.

Runs against the broker and Redis of the settings (``deploy/demo.sh`` starts local
ones). The view shows each offer beside the event that triggered it; at the end a
summary of events, offers by kind and placement, dead letters, and a storefront
lookup read back from Redis.
"""
from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterable, Optional

import orjson
import redis
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from nextoffer.streams.io.records import Record
from nextoffer.streams.io.producer import produce
from nextoffer.streams.io.readers import consumer_at_end
from nextoffer.streams.io.settings import Settings
from nextoffer.streams.io.topics import DEAD_LETTER, OFFERS

#: Logs go beside the worker's own files (NEXTOFFER_DATA_DIR, .run/faust): under the working directory.
RUN = Path(".run")


class DemoState:
    """What the view shows; filled by the feeder and the offers reader threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: dict[str, Record] = {}
        self.names: dict[str, str] = {}
        self.sent = 0
        self.offers: collections.deque = collections.deque(maxlen=14)
        self.offer_count: collections.Counter = collections.Counter()
        self.dead_letters: collections.deque = collections.deque(maxlen=3)
        self.dead_count = 0
        self.started = time.monotonic()
        self.feeding = True
        self.ready = threading.Event()   # set once the offers reader sits at the topics' ends

    def on_record(self, record: Record) -> None:
        with self.lock:
            self.sent += 1
            if record.topic == "catalog":
                self.names[record.key] = record.value.get("name") or record.key
            else:
                self.events[str(record.value.get("event_id"))] = record
                if len(self.events) > 200_000:
                    self.events.pop(next(iter(self.events)))


def _start_worker(settings: Settings, log_path: Path) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    out = open(log_path, "wb")
    return subprocess.Popen([sys.executable, "-m", "nextoffer.streams.ops.cli", "worker"], stdout=out,
                            stderr=subprocess.STDOUT, env=dict(os.environ), start_new_session=True)


def _read_outputs(settings: Settings, state: DemoState, stop: threading.Event) -> None:
    consumer = consumer_at_end(settings, (OFFERS, DEAD_LETTER))
    state.ready.set()
    while not stop.is_set():
        for tp, batch in consumer.poll(timeout_ms=200).items():
            for msg in batch:
                data = orjson.loads(msg.value)
                with state.lock:
                    if tp.topic == settings.topic(OFFERS):
                        state.offers.append(data)
                        state.offer_count[(data["kind"], data["placement"])] += 1
                    else:
                        state.dead_count += 1
                        state.dead_letters.append(data)
    consumer.close()


def _render(state: DemoState, settings: Settings, lookup: Optional[str]) -> Group:
    with state.lock:
        elapsed = max(time.monotonic() - state.started, 1e-6)
        total_offers = sum(state.offer_count.values())
        head = Text.assemble(
            ("nextoffer live demo  ", "bold"),
            f"events sent {state.sent:,} ({state.sent / elapsed:,.0f}/s)   offers {total_offers:,}   ",
            " ".join(f"{k}@{p}:{n}" for (k, p), n in sorted(state.offer_count.items())),
            f"   dead letters {state.dead_count}")
        table = Table(expand=True, show_lines=False)
        for col in ("shopper", "event", "placement", "kind", "offer (score, reason)"):
            table.add_column(col, overflow="fold")
        for offer in list(state.offers)[::-1]:
            record = state.events.get(offer["event_id"])
            event = "?"
            if record:
                pid = record.value.get("product_id")
                event = f"{record.value['type']} {state.names.get(pid, pid) if pid else ''}".strip()
            items = "\n".join(f"{state.names.get(i['product_id'], i['product_id'])}"
                              f"{' ' + format(i['price'], '.2f') if i.get('price') is not None else ''}"
                              f" ({i['score']:.2f}: {i['reason']})" for i in offer["items"])
            table.add_row(offer["user_id"], event, offer["placement"], offer["kind"], items)
        parts = [head, table]
        for dl in state.dead_letters:
            parts.append(Text(f"dead-letter {dl['source_topic']}[{dl['partition']}]@{dl['offset']}: "
                              f"{dl['error']}", style="yellow"))
        if lookup:
            parts.append(Text(lookup, style="green"))
    return Group(*parts)


def _lookup_line(settings: Settings, state: DemoState, client: redis.Redis) -> Optional[str]:
    with state.lock:
        if not state.offers:
            return None
        last = state.offers[-1]
    start = time.perf_counter()
    value = client.hget(settings.redis_key(last["user_id"]), last["placement"])
    ms = (time.perf_counter() - start) * 1000
    return (f"storefront lookup: HGET {settings.redis_key(last['user_id'])} {last['placement']} -> "
            f"{'offer ' + orjson.loads(value)['offer_id'][:8] if value else 'nothing'} in {ms:.2f} ms")


def run_demo(settings: Settings, records: Iterable[Record], rate: float, limit: Optional[int],
             console: Optional[Console] = None) -> dict:
    """Run worker + feeder + view until the records (or ``limit``) are sent; return a summary."""
    console = console or Console()
    if not console.is_terminal:
        console = Console(width=160)  # logs and CI: wide lines rather than a wrapped table
    state = DemoState()
    stop = threading.Event()
    worker = _start_worker(settings, RUN / "demo-worker.log")
    reader = threading.Thread(target=_read_outputs, args=(settings, state, stop), daemon=True)
    reader.start()
    if not state.ready.wait(30):
        _stop_worker(worker)
        raise SystemExit("could not read the offers topic within 30 s; is the broker up?")
    feeder_error: list[BaseException] = []

    def feed() -> None:
        try:
            produce(settings, records, rate=rate, limit=limit, on_record=state.on_record)
        except BaseException as exc:  # noqa: BLE001 - reported below
            feeder_error.append(exc)
        finally:
            state.feeding = False

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    client = redis.Redis.from_url(settings.redis_url)
    live = console.is_terminal
    last_print = 0
    try:
        with Live(_render(state, settings, None), console=console, refresh_per_second=4,
                  transient=False) if live else _NoLive() as view:
            quiet_since = None
            while True:
                time.sleep(0.25)
                lookup = _lookup_line(settings, state, client)
                if live:
                    view.update(_render(state, settings, lookup))
                elif time.monotonic() - last_print > 5:
                    last_print = time.monotonic()
                    _print_progress(console, state)
                if worker.poll() is not None:
                    raise SystemExit(f"the worker stopped (exit {worker.returncode}); "
                                     f"see .run/demo-worker.log")
                if not state.feeding:
                    count = sum(state.offer_count.values())
                    if quiet_since is None or count != quiet_since[0]:
                        quiet_since = (count, time.monotonic())
                    elif time.monotonic() - quiet_since[1] > 5:
                        break  # the worker has had 5 s without a new offer after the feed ended
    except KeyboardInterrupt:
        console.print("interrupted")
    finally:
        stop.set()
        _stop_worker(worker)
    if feeder_error:
        raise SystemExit(f"feeding failed: {feeder_error[0]}")
    last = state.offers[-1] if state.offers else None
    summary = {"events_sent": state.sent, "offers": sum(state.offer_count.values()),
               "offers_by_kind_placement": {f"{k}@{p}": n for (k, p), n in sorted(state.offer_count.items())},
               "dead_letters": state.dead_count, "lookup": _lookup_line(settings, state, client),
               "example_user": (last["user_id"], last["placement"]) if last else None}
    if not live:
        console.print(_render(state, settings, summary["lookup"]))
    return summary


def _print_progress(console: Console, state: DemoState) -> None:
    with state.lock:
        last = state.offers[-1] if state.offers else None
        console.print(f"sent {state.sent:,} events, {sum(state.offer_count.values()):,} offers, "
                      f"{state.dead_count} dead letters"
                      + (f"; latest: {last['user_id']} {last['placement']} {last['kind']} "
                         f"{[state.names.get(i['product_id'], i['product_id']) for i in last['items']]}"
                         if last else ""))


def _stop_worker(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)


class _NoLive:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
