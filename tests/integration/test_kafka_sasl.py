"""Kafka with SASL: a second local broker (deploy/kafka.sh with a SASL_PLAINTEXT listener, PLAIN
mechanism) and a worker that reaches it only with the credentials from the environment."""
from __future__ import annotations

import os
import secrets
import subprocess
import time
import uuid

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError

from nextoffer.streams.io.security import kafka_python_client
from nextoffer.streams.io.settings import Settings
from tests.integration.conftest import REDIS_URL, ROOT, Worker

pytestmark = pytest.mark.integration

PLAIN_PORT, CONTROLLER_PORT, SASL_PORT = 9192, 9193, 9194


@pytest.fixture
def sasl_broker(tmp_path):
    password = secrets.token_urlsafe(18)
    env = {**os.environ, "NEXTOFFER_RUN_DIR": str(tmp_path / "run"), "NEXTOFFER_KAFKA_PORT": str(PLAIN_PORT),
           "NEXTOFFER_KAFKA_CONTROLLER_PORT": str(CONTROLLER_PORT), "NEXTOFFER_KAFKA_SASL_PORT": str(SASL_PORT),
           "NEXTOFFER_KAFKA_SASL_USERNAME": "shop", "NEXTOFFER_KAFKA_SASL_PASSWORD": password}
    script = str(ROOT / "deploy" / "kafka.sh")
    started = subprocess.run(["bash", script, "start"], env=env, capture_output=True, text=True, timeout=180)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield password
    finally:
        subprocess.run(["bash", script, "stop"], env=env, capture_output=True, timeout=120)


def test_a_worker_reaches_a_sasl_broker_with_the_credentials_and_nothing_else(sasl_broker, stack, tmp_path):
    password = sasl_broker
    prefix = f"sasl-{uuid.uuid4().hex[:6]}."
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{SASL_PORT}", "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
           "KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": "shop", "KAFKA_SASL_PASSWORD": password,
           "REDIS_URL": REDIS_URL, "NEXTOFFER_TOPIC_PREFIX": prefix, "NEXTOFFER_PARTITIONS": "2",
           "NEXTOFFER_DATA_DIR": str(tmp_path / "faust"), "NEXTOFFER_METRICS_PORT": "0",
           "NEXTOFFER_REPORT_INTERVAL": "1"}
    settings = Settings.from_env(env)

    # Without credentials the SASL listener lets nobody in.
    with pytest.raises(KafkaError):
        KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{SASL_PORT}", request_timeout_ms=5000,
                         api_version_auto_timeout_ms=5000).list_topics()

    worker = Worker(env, tmp_path / "worker.log").wait_ready(timeout=120)
    try:
        producer = KafkaProducer(**kafka_python_client(settings), acks="all")
        send = lambda topic, key, value: producer.send(prefix + topic, key=key.encode(), value=orjson.dumps(value))
        for pid, price, tier in (("phone-1", 500.0, 1), ("phone-2", 600.0, 2)):
            send("catalog", pid, {"product_id": pid, "price": price, "family": "phone", "tier": tier, "stock": 5})
        producer.flush()
        time.sleep(2)   # the worker applies the catalog from its own reader
        send("clickstream", "u1", {"event_id": "v1", "type": "view", "user_id": "u1", "product_id": "phone-1",
                                   "ts": 1_700_000_000})
        producer.flush()
        producer.close()
        consumer = KafkaConsumer(**kafka_python_client(settings), group_id=None, enable_auto_commit=False)
        parts = [TopicPartition(prefix + "offers", p) for p in range(2)]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        offers, deadline = [], time.monotonic() + 60
        while not offers and time.monotonic() < deadline:
            offers = [orjson.loads(r.value) for batch in consumer.poll(timeout_ms=500).values() for r in batch]
        consumer.close()
        assert offers and offers[0]["user_id"] == "u1" and offers[0]["items"][0]["product_id"] == "phone-2"
    finally:
        worker.stop()
    assert password not in worker.text()

    wrong = Worker({**env, "KAFKA_SASL_PASSWORD": "not-" + password, "NEXTOFFER_TOPIC_PREFIX": prefix + "x."},
                   tmp_path / "wrong.log")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and wrong.proc.poll() is None:
            time.sleep(0.5)
        assert wrong.proc.returncode == 1, wrong.text()[-3000:]
        assert "refused the credentials of user 'shop'" in wrong.text(), wrong.text()[-3000:]
        assert "Worker ready" not in wrong.text()
        assert password not in wrong.text()
    finally:
        wrong.stop()
