"""``nextoffer status``: brokers, topics, lag, workers and Redis of one deployment, at a glance."""
from __future__ import annotations

from typing import Any

import orjson
import redis

from nextoffer.streams.io.topics import SHOPPER_INPUTS
from nextoffer.streams.io.admin import admin_client, input_lag, partition_counts
from nextoffer.streams.io.settings import Settings


def gather(settings: Settings) -> dict[str, Any]:
    """Everything ``status`` shows, as plain data (also printed as JSON with ``--json``)."""
    out: dict[str, Any] = {"kafka": {"bootstrap": settings.kafka_bootstrap_servers}, "redis": {}}
    admin = admin_client(settings)
    try:
        cluster = admin.describe_cluster()
        out["kafka"]["brokers"] = [f"{b['host']}:{b['port']} (id {b.get('broker_id', b.get('node_id'))})"
                                   for b in cluster["brokers"]]
        group = settings.topic(settings.app_id)
        described = admin.describe_groups([group]).get(group, {})
        out["group"] = {"name": group, "state": described.get("group_state"),
                        "members": [f"{m.get('client_id')} at {m.get('client_host', '').lstrip('/')}: "
                                    + _assigned(m) for m in described.get("members", [])]}
    finally:
        admin.close()
    out["topics"] = partition_counts(settings)
    lag = input_lag(settings)
    out["lag"] = {"total": sum(lag.values()),
                  "by_topic": {t: sum(v for (tt, _), v in lag.items() if tt == t) for t, _ in lag},
                  "by_partition": {f"{t}[{p}]": v for (t, p), v in sorted(lag.items()) if v}}
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    try:
        info = client.info()
        out["redis"] = {"version": info.get("redis_version"), "used_memory": info.get("used_memory_human"),
                        "keys": client.dbsize(), "appendonly": bool(info.get("aof_enabled"))}
        workers = []
        for key in client.scan_iter(match=settings.status_key("*"), count=500):
            raw = client.get(key)
            if raw:
                snap = orjson.loads(raw)
                stats = snap.get("stats", {})
                workers.append({"worker": snap.get("worker"), "partitions": len(snap.get("partitions", [])),
                                "events": sum(v for k, v in stats.items()
                                              if k.startswith("events.") and k != "events.duplicate"),
                                "offers": sum(v for k, v in stats.items() if k.startswith("offers.")),
                                "dead_letters": stats.get("dead_letter", 0),
                                "pair_updates": snap.get("tally", {}).get("updates.pairs", 0),
                                "latency_p99_ms": None if snap.get("latency", {}).get("p99") is None
                                else round(1000 * snap["latency"]["p99"], 1)})
        out["workers"] = sorted(workers, key=lambda w: w["worker"] or "")
    finally:
        client.close()
    return out


def _assigned(member: dict) -> str:
    parts = (member.get("member_assignment") or {}).get("assigned_partitions", [])
    inputs = sum(len(p["partitions"]) for p in parts if any(p["topic"].endswith(t) for t in SHOPPER_INPUTS))
    return f"{inputs} input partitions"


def render(status: dict[str, Any], console) -> None:
    from rich.table import Table
    k = status["kafka"]
    console.print(f"[bold]Kafka[/] {k['bootstrap']}: brokers {', '.join(k.get('brokers', [])) or 'none'}")
    g = status.get("group", {})
    console.print(f"[bold]Consumer group[/] {g.get('name')}: {g.get('state')}, {len(g.get('members', []))} member(s)")
    for member in g.get("members", []):
        console.print(f"  {member}")
    topics = Table(title="topics", show_edge=False)
    for col in ("topic", "partitions", "lag (not committed)"):
        topics.add_column(col, justify="left" if col == "topic" else "right")
    for name, count in sorted(status["topics"].items()):
        topics.add_row(name, str(count), str(status["lag"]["by_topic"].get(name, "")))
    console.print(topics)
    r = status["redis"]
    console.print(f"[bold]Redis[/] {r.get('version')}: {r.get('keys')} keys, {r.get('used_memory')} used, "
                  f"append-only {'on' if r.get('appendonly') else 'off'}")
    workers = Table(title="workers reporting", show_edge=False)
    for col in ("worker", "partitions", "events", "offers", "dead letters", "pair updates", "latency p99 ms"):
        workers.add_column(col, justify="left" if col == "worker" else "right")
    for w in status["workers"]:
        workers.add_row(str(w["worker"]), str(w["partitions"]), f"{w['events']:,}", f"{w['offers']:,}",
                        f"{w['dead_letters']:,}", f"{w.get('pair_updates', 0):,}", str(w["latency_p99_ms"] or "–"))
    console.print(workers if status["workers"] else "[yellow]no worker reporting[/] (start one: nextoffer worker)")
