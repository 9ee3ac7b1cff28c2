"""The live measurements: ceiling, throughput, scaling, freshness and lookup, against the real
broker and Redis, with real worker processes."""
from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import orjson
import redis
from kafka import KafkaConsumer, TopicPartition

from nextoffer.benchmarks.workload import Workload, make_workload
from nextoffer.streams.io.admin import ensure_topics, group_offsets
from nextoffer.streams.io.topics import OFFERS, SHOPPER_INPUTS
from nextoffer.streams.io.producer import make_producer
from nextoffer.streams.io.security import kafka_python_client
from nextoffer.streams.io.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
#: Every process the benchmark started, so that a failed run leaves none behind.
STARTED: list["Process"] = []


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank.

    >>> percentile([1, 2, 3, 4], 50), percentile([1, 2, 3, 4], 99)
    (2, 4)
    """
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))]


@dataclass
class Process:
    """A worker (or the ceiling app) in its own process, with its log."""

    proc: subprocess.Popen
    log: Path

    @classmethod
    def start(cls, module: str, env: dict, log: Path) -> "Process":
        # The worker itself, not its supervisor: memory is measured on this process.
        args = [sys.executable, "-m", module, "worker"] + (["--without-web"] if "ceiling" in module
                                                             else ["--no-restart"])
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=open(log, "wb"),
                                stderr=subprocess.STDOUT, start_new_session=True)
        return cls(proc, log)

    def wait_for(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.log.name}: never logged {text!r}:\n"
                                   f"{self.log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class Deployment:
    """One benchmark deployment: its prefix, topics, catalog, and helpers to load and watch it."""

    def __init__(self, base_env: dict, prefix: str, workload: Workload, logs: Path) -> None:
        self.env = {**base_env, "NEXTOFFER_TOPIC_PREFIX": prefix, "NEXTOFFER_LOG_LEVEL": "info",
                    "NEXTOFFER_DATA_DIR": str(logs / "faust")}
        self.settings = Settings.from_env(self.env)
        self.workload = workload
        self.logs = logs
        ensure_topics(self.settings)
        self.producer = make_producer(self.settings)
        for product in workload.catalog:
            self.producer.send(self.settings.topic("catalog"), key=product["product_id"], value=product)
        self.producer.flush()

    def fill(self, count: int, progress: Callable[[int], None]) -> None:
        """Send ``count`` workload events as fast as the producer goes."""
        topic = self.settings.topic
        for n in range(count):
            name, key, event = self.workload.next_event()
            self.producer.send(topic(name), key=key, value=event)
            if n % 5000 == 4999:
                progress(5000)
        self.producer.flush()

    def committed(self, group: str) -> int:
        """Input events the consumer group ``group`` (after the prefix) has committed."""
        offsets = group_offsets(self.settings, self.settings.topic(group))
        inputs = {self.settings.topic(t) for t in SHOPPER_INPUTS}
        return sum(o.offset for tp, o in offsets.items() if tp.topic in inputs and o.offset > 0)

    def worker(self, name: str, module: str = "nextoffer.streams.ops.cli", **env) -> Process:
        process = Process.start(module, {**self.env, **env}, self.logs / f"{name}.log")
        STARTED.append(process)
        return process


def drain_rate(d: Deployment, group: str, total: int, window: float,
               tick: Callable[[int], None]) -> float:
    """Events per second the group commits, from the first commit seen over at most ``window``
    seconds (or until everything is committed)."""
    first = last = None
    deadline = None
    while True:
        now, done = time.monotonic(), d.committed(group)
        if done > 0 and first is None:
            first, deadline = (now, done), now + window
        if first is not None:
            tick(done)
            last = (now, done)
            if done >= total or now >= deadline:
                break
        time.sleep(0.5)
    return (last[1] - first[1]) / max(last[0] - first[0], 1e-9)


def _paced_producer(env: dict, rate: float, seconds: float, spec: tuple, seed: int, ready) -> None:
    """A child process: workload events at ``rate``/s; each event_id carries its send time."""
    settings = Settings.from_env(env)
    workload = make_workload(spec, seed)
    producer = make_producer(settings)
    ready.set()
    start = time.time()
    n = 0
    while time.time() - start < seconds:
        name, key, event = workload.next_event()
        event["event_id"] = f"{seed}-{n}@{time.time():.6f}"
        producer.send(settings.topic(name), key=key, value=event)
        n += 1
        ahead = start + n / rate - time.time()
        if ahead > 0:
            time.sleep(ahead)
    producer.flush()


def freshness(d: Deployment, rate: float, seconds: float, seed: int) -> dict:
    """Produce at ``rate`` for ``seconds``; latency from each event's send to its offer's arrival
    on the offers topic (Redis is written before the topic, so the offer was readable by then),
    with every 20th offer read back from Redis to check it."""
    s = d.settings
    consumer = KafkaConsumer(**kafka_python_client(s), group_id=None, enable_auto_commit=False)
    parts = [TopicPartition(s.topic(OFFERS), p) for p in range(s.partitions)]
    consumer.assign(parts)
    consumer.seek_to_end(*parts)
    for tp in parts:
        consumer.position(tp)
    lookup = redis.Redis.from_url(s.redis_url)
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    child = ctx.Process(target=_paced_producer, args=(d.env, rate, seconds, d.workload.spec, seed, ready))
    child.start()
    ready.wait(60)
    latencies, checked, missing = [], 0, 0
    quiet_since = time.monotonic()
    while child.is_alive() or time.monotonic() - quiet_since < 5:
        batches = consumer.poll(timeout_ms=200)
        now = time.time()
        for records in batches.values():
            for record in records:
                quiet_since = time.monotonic()
                offer = orjson.loads(record.value)
                event_id = offer["event_id"]
                if not event_id.startswith(f"{seed}-"):
                    continue
                latencies.append(now - float(event_id.rsplit("@", 1)[1]))
                if len(latencies) % 20 == 0:
                    checked += 1
                    missing += lookup.hget(s.redis_key(offer["user_id"]), offer["placement"]) is None
    child.join()
    consumer.close()
    lookup.close()
    def ms(q: float) -> Optional[float]:      # None when no offer came (nothing to offer yet)
        return round(percentile(latencies, q) * 1000, 1) if latencies else None
    return {"rate": rate, "offers": len(latencies), "offers_per_s": round(len(latencies) / seconds),
            "p50_ms": ms(50), "p95_ms": ms(95), "p99_ms": ms(99),
            "redis_checked": checked, "redis_missing": missing, "sustained": sustained(latencies)}


def sustained(latencies: list[float], slack: float = 0.1, most: float = 0.5) -> bool:
    """Whether the worker kept up. A worker that falls behind builds a backlog: the offers of
    the run's last quarter wait longer than those of its first (by more than ``slack`` s at the
    median), or, at its limit, all wait in a queue that never empties (a median over ``most``
    s). ``latencies`` in the order the offers arrived.

    >>> sustained([0.02, 0.03, 0.02, 0.04] * 10), sustained([0.02 * n for n in range(40)])
    (True, False)
    >>> sustained([1.5, 1.6] * 20)
    False
    """
    quarter = len(latencies) // 4
    if quarter == 0:
        return False
    late = percentile(latencies[-quarter:], 50)
    return late <= percentile(latencies[:quarter], 50) + slack and late <= most


def _lookups(url: str, keys: list[tuple[str, str]], plain_key: str, count: int, out) -> None:
    """A child process: alternating HGET of offers and GET of a plain key of the same size."""
    client = redis.Redis.from_url(url)
    rng = random.Random(3)
    hget, get = [], []
    for _ in range(count):
        key, field = rng.choice(keys)
        t = time.perf_counter()
        client.hget(key, field)
        hget.append(time.perf_counter() - t)
        t = time.perf_counter()
        client.get(plain_key)
        get.append(time.perf_counter() - t)
        time.sleep(0.001)
    out.put((hget, get))


def lookup_under_load(d: Deployment, rate: float, seconds: float, count: int, seed: int) -> dict:
    """Storefront reads while the pipeline runs at ``rate``, beside plain reads of the same size."""
    s = d.settings
    client = redis.Redis.from_url(s.redis_url)
    keys = []
    for key in client.scan_iter(f"{s.topic_prefix}nbo:*", count=1000):
        keys.extend((key.decode(), f.decode()) for f in client.hkeys(key))
        if len(keys) >= 5000:
            break
    sample = client.hget(*keys[0])
    plain_key = f"{s.topic_prefix}bench-plain"
    client.set(plain_key, b"x" * len(sample), ex=600)
    client.close()
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    reader = ctx.Process(target=_lookups, args=(s.redis_url, keys, plain_key, count, out))
    reader.start()
    under = freshness(d, rate, seconds, seed)
    hget, get = out.get(timeout=300)
    reader.join()
    ratio = percentile(hget, 99) / percentile(get, 99)
    return {"load_rate": rate, "reads": count, "offer_bytes": len(sample),
            "hget_p50_ms": round(percentile(hget, 50) * 1000, 3),
            "hget_p99_ms": round(percentile(hget, 99) * 1000, 3),
            "get_p50_ms": round(percentile(get, 50) * 1000, 3),
            "get_p99_ms": round(percentile(get, 99) * 1000, 3),
            "p99_ratio": round(ratio, 2), "freshness_during": under,
            "mean_hget_ms": round(statistics.fmean(hget) * 1000, 3)}


def redis_as_left(d: Deployment, sample: int = 2000) -> dict:
    """Redis bytes per shopper as the pipeline left them: ``MEMORY USAGE`` of up to ``sample`` of
    their keys (key, hash and offers; not the few dozen bytes of the key's expiry entry), with
    the placements each holds, as the workload's events made them."""
    client = redis.Redis.from_url(d.settings.redis_url)
    keys = []
    for key in client.scan_iter(d.settings.redis_key("*"), count=1000):
        keys.append(key)
        if len(keys) >= sample:
            break
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
        pipe.hlen(key)
    replies = pipe.execute()
    client.close()
    sizes, placements = replies[0::2], replies[1::2]
    n = max(len(keys), 1)
    return {"shoppers_sampled": len(keys), "bytes_per_shopper": round(sum(sizes) / n),
            "placements_per_shopper": round(sum(placements) / n, 2)}
