"""Faults injected under load against the real broker and Redis: crash, rebalance, Redis outage,
broker restart. Each compares what the workers persisted with the state computed directly from
the input log, and prints its figures (events in, applied, lost, duplicated, time to recover)."""
from __future__ import annotations

import os
import signal
import subprocess
import time

import orjson
import pytest
import redis

from nextoffer.streams.io.admin import ensure_topics, input_lag
from nextoffer.streams.io.settings import Settings
from tests.integration.conftest import BOOTSTRAP, ROOT
from tests.integration.steady import (CATALOG, T0, SteadyProducer, compare_states, expected_states,
                                      first_difference, group_lag, shopper_log, stored_states,
                                      wait_until)

pytestmark = pytest.mark.integration

USERS, PER_USER, RATE = 300, 8, 300.0
FAST_FAILOVER = {"NEXTOFFER_SESSION_TIMEOUT": "10", "NEXTOFFER_STALL_TIMEOUT": "5", "NEXTOFFER_STALL_RESTART": "45"}


def seeded(d):
    ensure_topics(Settings.from_env(d.env))
    for product in CATALOG:
        d.send("catalog", product, key=product["product_id"])
    d.flush()
    return d


def drained(d, log, timeout: float = 180) -> float:
    """Waits until the group has committed every input event and each shopper's last event has its
    offer on the topic; returns the seconds it took."""
    last = {event["user_id"]: event["event_id"] for _, event in log}
    start = time.monotonic()
    try:
        wait_until(lambda: group_lag(d) == 0, timeout, "the workers to commit every input event")
    except AssertionError as exc:
        lag = {tp: n for tp, n in input_lag(Settings.from_env(d.env)).items() if n}
        offers = d.read("offers", until=lambda got: _has_all(got, last), timeout=5)
        raise AssertionError(f"{exc}; uncommitted: {lag}; latest events with their offer: "
                             f"{sum(_has_all(offers, {u: e}) for u, e in last.items())} of {len(last)}")
    offers = d.read("offers", until=lambda got: _has_all(got, last), timeout=timeout)
    missing = [u for u, e in last.items() if not any(o["event_id"] == e for o in offers)]
    assert not missing, f"{len(missing)} shoppers have no offer for their latest event: {missing[:5]}"
    return time.monotonic() - start


def _has_all(offers, last) -> bool:
    seen = {o["event_id"] for o in offers}
    return all(e in seen for e in last.values())


def check_exactly_once(d, log, label: str, workers=(), **figures) -> dict:
    """Every event applied exactly once to its shopper; every state equal, field by field, to the
    one computed from the input log, unless the workers had to re-read records Faust dropped
    (those are applied after the shopper's later events: docs/reliability.md)."""
    expected = expected_states(log)
    stored = stored_states(d.prefix)
    rereads = sum(w.progress(final=True).get("rereads", 0) for w in workers)
    restarts = sum(w.text().count("worker stuck:") for w in workers)   # each one re-read records
    report = {**compare_states(expected, stored), "events_in": len(log), "rereads": rereads,
              "stuck_restarts": restarts, **figures}
    print(f"\n[fault] {label}: {orjson.dumps(report).decode()}")
    assert report["exactly_once"] == report["users"], first_difference(expected, stored, ("e", "n"))
    if rereads == 0 and restarts == 0:
        assert report["match"] == report["users"], first_difference(expected, stored)
    return report


def test_kill_9_mid_stream_loses_nothing_and_applies_nothing_twice(deployment):
    d = seeded(deployment())
    log = shopper_log(USERS, PER_USER)
    worker = d.start_worker(**FAST_FAILOVER).wait_ready()
    producer = SteadyProducer(d, log, RATE)
    producer.start()
    producer.wait_sent(len(log) // 2)
    worker.stop(signal.SIGKILL)
    killed_at = time.monotonic()
    second = d.start_worker(**FAST_FAILOVER).wait_ready()
    restarted = time.monotonic() - killed_at
    producer.finish()
    took = drained(d, log)
    seen = second.progress(final=True)
    check_exactly_once(d, log, "kill -9", workers=d.workers, killed_after_events=len(log) // 2,
                       restart_s=round(restarted, 1), drain_after_last_event_s=round(took, 1),
                       redelivered_and_skipped=seen["duplicates"], applied_by_restarted=seen["events"])
    assert seen["events"] + seen["duplicates"] >= len(log) // 2


def test_a_rebalance_under_load_keeps_every_shopper_once(deployment):
    d = seeded(deployment())
    log = shopper_log(USERS, PER_USER, seed=11)
    first = d.start_worker(**FAST_FAILOVER).wait_ready()
    producer = SteadyProducer(d, log, RATE)
    producer.start()
    producer.wait_sent(len(log) // 3)
    d.start_worker(**FAST_FAILOVER).wait_ready()
    producer.wait_sent(2 * len(log) // 3)
    first.stop(signal.SIGTERM)
    producer.finish()
    took = drained(d, log)
    check_exactly_once(d, log, "rebalance (second worker joins, first leaves)", workers=d.workers,
                       drain_after_last_event_s=round(took, 1))


@pytest.fixture
def own_redis(tmp_path):
    """A Redis server of the test's own, on another port, that the test may stop and start."""
    env = {**os.environ, "NEXTOFFER_REDIS_PORT": "6391", "NEXTOFFER_RUN_DIR": str(tmp_path / "run"),
           "NEXTOFFER_REDIS_APPENDONLY": "yes"}
    script = str(ROOT / "deploy" / "redis.sh")

    def run(action: str) -> None:
        subprocess.run(["bash", script, action], env=env, check=True, capture_output=True)
    run("start")
    yield run
    run("stop")


def test_a_redis_outage_keeps_offers_flowing_and_leaves_no_stale_offer(deployment, own_redis):
    url = "redis://127.0.0.1:6391/0"
    d = seeded(deployment())
    log = shopper_log(USERS, PER_USER, seed=13)
    d.start_worker(REDIS_URL=url).wait_ready()
    producer = SteadyProducer(d, log, RATE)
    producer.start()
    producer.wait_sent(len(log) // 4)
    own_redis("stop")
    down_from = producer.sent
    time.sleep(4)
    down_until = producer.sent
    offers_during = len(d.read("offers", until=lambda got: False, timeout=2))
    own_redis("start")
    back = time.monotonic()
    producer.finish()
    drained(d, log)
    offers = d.read("offers", until=lambda got: False, timeout=3)
    latest: dict[tuple[str, str], dict] = {}
    for offer in offers:  # one partition per shopper: topic order is each shopper's order
        latest[(offer["user_id"], offer["placement"])] = offer
    lookup = redis.Redis.from_url(url)
    stale, absent = 0, 0
    wait_until(lambda: lookup.hget(f"{d.prefix}nbo:shopper-00000", "product_page") is not None, 30,
               "the pending offers to reach Redis")
    for (user, placement), offer in latest.items():
        stored = lookup.hget(f"{d.prefix}nbo:{user}", placement)
        if stored is None:
            absent += 1
        elif orjson.loads(stored)["offer_id"] != offer["offer_id"]:
            stale += 1
    report = check_exactly_once(d, log, "Redis outage", workers=d.workers,
                                events_sent_while_down=down_until - down_from,
                                offers_on_topic_by_then=offers_during, lookup_entries=len(latest),
                                absent=absent, stale=stale, rewritten_after_s=round(time.monotonic() - back, 1))
    assert down_until - down_from > 0 and offers_during > 0
    assert (absent, stale) == (0, 0), report
    lookup.close()


def test_a_broker_restart_under_load_is_caught_up_by_itself(deployment):
    d = seeded(deployment())
    log = shopper_log(USERS, PER_USER, seed=17)
    worker = d.start_worker().wait_ready()
    half = len(log) // 2
    for topic, event in log[:half]:
        d.send(topic, event, key=event["user_id"])
    d.flush()
    time.sleep(1.0)  # the worker is in the middle of that backlog when the broker goes
    down = time.monotonic()
    subprocess.run(["bash", str(ROOT / "deploy" / "kafka.sh"), "restart"], check=True, capture_output=True)
    restart_s = time.monotonic() - down
    for topic, event in log[half:]:
        d.send(topic, event, key=event["user_id"])
    d.flush()
    took = drained(d, log, timeout=240)
    assert worker.proc.poll() is None, "the worker must survive the broker's restart"
    check_exactly_once(d, log, "broker restart", workers=d.workers, broker_down_s=round(restart_s, 1),
                       caught_up_after_s=round(took, 1))


def test_a_poison_catalog_update_is_refused_with_a_reason_and_not_applied(deployment):
    d = seeded(deployment())
    d.start_worker().wait_ready()
    poison = [({"product_id": "phone-2", "price": 0, "family": "phone", "tier": 2}, "'price' must be > 0"),
              ({"product_id": "phone-2", "price": 900.0, "family": "phone-2", "tier": 2},
               "'family' points to the product itself"),
              ({"product_id": "phone-2", "price": 900.0, "family": "phone", "tier": float("nan")}, "not JSON"),
              ({"product_id": "phone-2", "price": 1e15, "family": "phone", "tier": 2}, "a product can cost")]
    for product, _ in poison:
        raw = orjson.dumps(product) if product["tier"] == product["tier"] else \
            orjson.dumps(product).replace(b"null", b"NaN")
        d.send("catalog", raw, key="phone-2")
    d.flush()
    letters = d.read("dead-letter", until=lambda got: len(got) >= len(poison))
    assert len(letters) == len(poison)
    for (_, reason), letter in zip(poison, sorted(letters, key=lambda x: x["offset"])):
        assert reason in letter["error"] and letter["source_topic"] == f"{d.prefix}catalog"
    d.send("clickstream", {"event_id": "v1", "type": "view", "user_id": "u1", "product_id": "phone-1",
                           "ts": 1_700_000_000}, key="u1")
    d.flush()
    offer = d.read("offers", until=lambda got: len(got) >= 1)[0]
    # The ladder and the price are the last good ones: phone-2 at 900, one tier up.
    assert offer["kind"] == "upsell" and offer["items"][0]["product_id"] == "phone-2"
    assert offer["items"][0]["reason"].endswith("+29%")


def _offers_topic_limit(d, max_bytes: str) -> None:
    """Sets the offers topic's max.message.bytes: below an offer's size the broker refuses every
    offer with a non-retriable MessageSizeTooLargeError."""
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient
    from nextoffer.streams.io.security import kafka_python_client
    admin = KafkaAdminClient(**kafka_python_client(Settings.from_env(d.env)))
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, f"{d.prefix}offers",
                                            configs={"max.message.bytes": max_bytes})])
    finally:
        admin.close()


def test_offers_kafka_refuses_for_a_while_are_sent_again_and_nothing_is_lost(deployment):
    d = seeded(deployment())
    # every shopper views the phone (an upsell offer each) and then buys it (an order each)
    log = []
    for u in range(400):
        user = f"shopper-{u:05d}"
        log.append(("clickstream", {"event_id": f"{user}-v", "type": "view", "user_id": user,
                                    "product_id": "phone-1", "price": 700.0, "ts": T0 + u}))
        log.append(("cart", {"event_id": f"{user}-p", "type": "purchase", "user_id": user,
                             "product_id": "phone-1", "price": 700.0, "ts": T0 + u + 0.5}))
    # The refusal outlasts the stall timeout and the stuck restart: the worker must know that
    # an agent held back by refused outputs is neither idle nor stuck.
    worker = d.start_worker(NEXTOFFER_STALL_TIMEOUT="2", NEXTOFFER_STALL_RESTART="6").wait_ready()
    producer = SteadyProducer(d, log, 80.0)
    producer.start()
    producer.wait_sent(len(log) // 4)
    _offers_topic_limit(d, "64")
    refused_from = producer.sent
    time.sleep(10)
    refused_until = producer.sent
    _offers_topic_limit(d, "1048588")
    producer.finish()
    drained(d, log)
    views = {e["event_id"] for _, e in log if e["type"] == "view"}
    offers = d.read("offers", until=lambda got: views <= {o["event_id"] for o in got}, timeout=60)
    missing = views - {o["event_id"] for o in offers}
    purchases = {e["event_id"] for _, e in log if e["type"] == "purchase"}
    orders = d.read("nextoffer-baskets", until=lambda got: purchases <= {o["event_id"] for o in got}, timeout=30)
    text = worker.text()
    report = check_exactly_once(d, log, "offers refused by the broker", workers=d.workers,
                                         events_sent_while_refused=refused_until - refused_from,
                                         views_without_offer=len(missing),
                                         orders_on_topic=len({o["event_id"] for o in orders} & purchases),
                                         refusals_logged=text.count("Kafka refused"))
    assert refused_until - refused_from > 100
    assert not missing, f"{len(missing)} views never had their offer on the topic: {sorted(missing)[:5]}"
    assert {o["event_id"] for o in orders} >= purchases, "every order is on the baskets topic"
    assert "Kafka refused" in text and "MessageSizeTooLarge" in text and "sending them again" in text
    assert "worker stuck" not in text and worker.proc.poll() is None, \
        "a refusal shorter than NEXTOFFER_DELIVERY_TIMEOUT needs no restart"
    assert "waits for Kafka to accept its outputs" in text and report["rereads"] == 0, \
        "an agent held back by refused outputs is not read again"


def offers_with_outcomes(d, shoppers: int) -> tuple[list[str], list[dict]]:
    """Each shopper views the phone (an offer each), then accepts (two in three) or declines it."""
    users = [f"shopper-{u:05d}" for u in range(shoppers)]
    for n, user in enumerate(users):
        d.send("clickstream", {"event_id": f"{user}-v", "type": "view", "user_id": user, "product_id": "phone-1",
                               "price": 700.0, "ts": T0 + n}, key=user)
    d.flush()
    offers = d.read("offers", until=lambda got: len(got) >= len(users), timeout=60)
    for n, offer in enumerate(offers):
        d.send("offer-feedback", {"event_id": f"{offer['user_id']}-f", "type": "accept" if n % 3 else "decline",
                                  "user_id": offer["user_id"], "offer_id": offer["offer_id"],
                                  "ts": T0 + 1000 + n}, key=offer["user_id"])
    d.flush()
    return users, offers


def test_the_learned_acceptance_model_survives_a_kill_9(deployment):
    """Shoppers accept or decline their offers; the worker checkpoints what its acceptance model
    learned; after a kill -9 the restarted worker predicts what the model did before it."""
    import re
    from nextoffer.models.acceptance import AcceptanceModel
    d = seeded(deployment())
    fast = {**FAST_FAILOVER, "NEXTOFFER_MODEL_CHECKPOINT_INTERVAL": "1"}
    worker = d.start_worker(**fast).wait_ready()
    users, offers = offers_with_outcomes(d, 120)

    def checkpoint():
        got = d.read("nextoffer-models", until=lambda got: bool(got) and got[-1]["updates"] >= len(users), timeout=5)
        return got[-1] if got else None
    wait_until(lambda: (checkpoint() or {}).get("updates", 0) >= len(users), 60,
               "a checkpoint of the model after every outcome")
    before = AcceptanceModel()
    before.restore(checkpoint())
    worker.stop(signal.SIGKILL)
    second = d.start_worker(**fast).wait_ready()
    restored = re.findall(r"restored the acceptance model from its checkpoint: (\d+) updates, "
                          r"P\(accept\) of the probe ([0-9.]+)", second.text())
    report = {"outcomes": len(offers), "checkpointed_updates": before.updates,
              "restored": restored[-1] if restored else None, "probe_before": round(before.probe(), 6)}
    print(f"\n[fault] acceptance model across kill -9: {orjson.dumps(report).decode()}")
    assert restored, "the restarted worker says it restored the model"
    updates, probe = restored[-1]
    assert int(updates) == before.updates >= len(users)
    assert abs(float(probe) - before.probe()) < 1e-6, "the restored model predicts what it did before"
    assert abs(before.probe() - AcceptanceModel().probe()) > 1e-3, "the model had learned something"


def test_a_worker_that_takes_over_partitions_takes_in_the_acceptance_model_learned_on_them(deployment):
    """Two workers learn from their own shoppers' outcomes and checkpoint their models; when one
    stops, the other, taking over its partitions, merges that worker's latest checkpoint."""
    import re
    from nextoffer.models.acceptance import AcceptanceModel
    d = seeded(deployment())
    fast = {**FAST_FAILOVER, "NEXTOFFER_MODEL_CHECKPOINT_INTERVAL": "1"}
    leaving, staying = d.start_worker(**fast), d.start_worker(**fast)
    leaving.wait_ready(), staying.wait_ready()
    users, offers = offers_with_outcomes(d, 120)

    def latest() -> dict:
        got = {}
        for c in d.read("nextoffer-models", until=lambda _: False, timeout=3):
            got[c["worker"]] = c
        return got
    wait_until(lambda: len(latest()) == 2 and sum(c["updates"] for c in latest().values()) == len(offers), 60,
               "a checkpoint of each worker's model after every outcome")
    checkpoints = latest()
    pid = re.findall(r"\[(\d+)\] \[INFO\] shared learners ready", leaving.text())[-1]   # the worker process's
    theirs = next(c for w, c in checkpoints.items() if w.endswith(f"-{pid}"))
    mine = next(c for w, c in checkpoints.items() if not w.endswith(f"-{pid}"))
    leaving.stop()
    pattern = (r"took over (\d+) partitions: merged (\d+) other workers' acceptance models \((\d+) updates, "
               r"P\(accept\) of the probe ([0-9.]+)\)")
    wait_until(lambda: re.search(pattern, staying.text()), 60, "the staying worker to take the partitions over")
    gained, merged, updates, probe = re.search(pattern, staying.text()).groups()
    own, expected = AcceptanceModel(), AcceptanceModel()
    own.restore(mine)
    expected.restore(mine)
    expected.merge(theirs)
    report = {"outcomes": len(offers), "updates": [mine["updates"], theirs["updates"]], "partitions_taken": gained,
              "merged_probe": probe, "own_probe": round(own.probe(), 6)}
    print(f"\n[fault] acceptance model across a partition move: {orjson.dumps(report).decode()}")
    assert int(merged) == 1 and int(gained) >= 1
    assert mine["updates"] > 0 and theirs["updates"] > 0, "both workers learned from their shoppers"
    assert int(updates) == max(mine["updates"], theirs["updates"])
    assert abs(float(probe) - expected.probe()) < 1e-6, "the merge of the two checkpoints"


def test_partitions_read_again_by_a_fresh_worker_repeat_no_output_and_leave_the_lookup_as_it_was(deployment):
    """The group's offsets go back to the start of every input partition, as after a rebalance
    onto a worker that never saw them: the new worker reads every record again. Shopper events
    are skipped by event_id, bad records by the dead-lettered offsets it recovered with the
    partitions; the lookup, the offers and the dead letters stay as they were."""
    from kafka.admin import KafkaAdminClient
    from kafka import TopicPartition
    from kafka.errors import NoError
    from nextoffer.streams.io.topics import SHOPPER_INPUTS
    d = seeded(deployment())
    users = [f"shopper-{u:05d}" for u in range(40)]
    for n, user in enumerate(users):
        d.send("clickstream", {"event_id": f"{user}-v1", "type": "view", "user_id": user, "product_id": "phone-1",
                               "price": 700.0, "ts": T0 + n}, key=user)
        d.send("clickstream", b"{not json", key=user)                    # a bad record on its partition
        d.send("cart", {"event_id": f"{user}-a", "type": "add", "user_id": user, "product_id": "phone-1",
                        "price": 700.0, "ts": T0 + 100 + n}, key=user)
    d.flush()
    first = d.start_worker().wait_ready()
    wait_until(lambda: group_lag(d) == 0, 90, "the first worker to commit every input event")
    offers = d.read("offers", until=lambda got: len(got) >= 2 * len(users), timeout=30)
    letters = d.read("dead-letter", until=lambda got: len(got) >= len(users), timeout=30)
    lookup = {u: d.redis.hgetall(f"{d.prefix}nbo:{u}") for u in users}
    first.stop()

    settings = Settings.from_env(d.env)
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    try:
        errors = admin.reset_group_offsets(settings.topic(settings.app_id), {
            TopicPartition(settings.topic(t), p): 0 for t in SHOPPER_INPUTS for p in range(settings.partitions)})
    finally:
        admin.close()
    assert all(e["error"] is NoError for e in errors.values()), errors
    assert group_lag(d) == 3 * len(users), "every input record is to be read again"

    second = d.start_worker().wait_ready()
    wait_until(lambda: group_lag(d) == 0, 90, "the second worker to commit every record it read again")
    progress = second.progress(final=True)
    offers_after = d.read("offers", until=lambda got: len(got) > len(offers), timeout=5)
    letters_after = d.read("dead-letter", until=lambda got: len(got) > len(letters), timeout=5)
    changed = [u for u in users if d.redis.hgetall(f"{d.prefix}nbo:{u}") != lookup[u]]
    report = {"records_read_again": 3 * len(users), "duplicates_skipped": progress.get("duplicates"),
              "offers": [len(offers), len(offers_after)], "dead_letters": [len(letters), len(letters_after)],
              "lookups_changed": len(changed)}
    print(f"\n[fault] partitions read again by a fresh worker: {orjson.dumps(report).decode()}")
    assert len(letters) == len(users), "one dead letter per bad record"
    assert len(letters_after) == len(letters), "no bad record is dead-lettered twice"
    assert len(offers_after) == len(offers), "no event read again publishes an offer again"
    assert progress.get("duplicates") == 2 * len(users), "every shopper event read again is skipped"
    assert not changed, f"the lookup changed for {changed[:5]}"
