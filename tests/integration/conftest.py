"""Integration tests: the real Kafka broker and Redis started by deploy/, real worker processes.

A server that cannot be reached fails the test; nothing here skips.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable, Optional

import orjson
import pytest
import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient

from nextoffer.streams.io.admin import remove_deployment
from nextoffer.streams.io.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
PARTITIONS = 4


@pytest.fixture(scope="session")
def stack(pytestconfig):
    """The local broker and Redis, started by the project's own scripts if they are not running."""
    result = subprocess.run(["bash", str(ROOT / "deploy" / "stack.sh"), "up"], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"could not start the local stack:\n{result.stdout}\n{result.stderr}")
    client = redis.Redis.from_url(REDIS_URL)
    assert client.ping(), f"Redis at {REDIS_URL} does not answer"
    try:
        admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP, request_timeout_ms=10_000)
        topics = admin.list_topics()
        admin.close()
    except Exception as exc:  # noqa: BLE001 - any failure means no usable broker
        pytest.fail(f"no Kafka broker answers at {BOOTSTRAP}: {exc!r}")
    line = (f"integration stack: Kafka broker at {BOOTSTRAP} ({len(topics)} topics), "
            f"Redis {client.info()['redis_version']} at {REDIS_URL}")
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():  # shown in CI logs, not swallowed with the test's output
        print(f"\n{line}")
    return client


class Worker:
    """One ``nextoffer worker`` process with its own log."""

    def __init__(self, env: dict, log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen([sys.executable, "-m", "nextoffer.streams.ops.cli", "worker"], cwd=ROOT, env=env,
                                     stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 90) -> "Worker":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.text()
            if "Worker ready" in text and "shared learners ready" in text:
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited ({self.proc.returncode}):\n{text[-3000:]}")
            time.sleep(0.2)
        raise AssertionError(f"worker not ready in {timeout}s:\n{self.text()[-3000:]}")

    def wait_learned(self, orders: int, timeout: float = 60) -> "Worker":
        """Waits until the shared learners have taken in ``orders`` orders (they learn them from the
        baskets topic, a moment after the worker applied the purchases)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            learned = [int(n) for n in re.findall(r"learned \d+ products, (\d+) orders", self.text())]
            if learned and learned[-1] >= orders:
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited ({self.proc.returncode}):\n{self.text()[-3000:]}")
            time.sleep(0.2)
        raise AssertionError(f"worker did not learn {orders} orders in {timeout}s:\n{self.text()[-3000:]}")

    def progress(self, final: bool = False) -> dict:
        """The figures of the worker's latest progress line (empty before the first); ``final``
        waits for a line written after this call (a stopped worker's last line is final)."""
        pattern = (r"processed (\d+) events \((\d+) duplicates skipped\), (\d+) offers, (\d+) dead "
                   r"letters; .*?; (\d+) partition re-reads")
        if final and self.proc.poll() is None:
            before = len(re.findall(pattern, self.text()))
            deadline = time.monotonic() + 10
            while len(re.findall(pattern, self.text())) <= before and time.monotonic() < deadline:
                time.sleep(0.2)
        lines = re.findall(pattern, self.text())
        if not lines:
            return {}
        return dict(zip(("events", "duplicates", "offers", "dead_letters", "rereads"), map(int, lines[-1])))

    def stop(self, sig=signal.SIGTERM, timeout: float = 60) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class Deployment:
    """One isolated deployment: its own topic prefix, workers, producer and readers."""

    def __init__(self, redis_client: redis.Redis, tmp: Path, prefix: Optional[str] = None) -> None:
        self.prefix = prefix or f"it-{uuid.uuid4().hex[:8]}."
        self.redis = redis_client
        self.tmp = tmp
        self.workers: list[Worker] = []
        self.producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=2,
                                      max_request_size=4 * 1024 * 1024)
        self.env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP, "REDIS_URL": REDIS_URL,
                    "NEXTOFFER_TOPIC_PREFIX": self.prefix, "NEXTOFFER_PARTITIONS": str(PARTITIONS),
                    "NEXTOFFER_DATA_DIR": str(tmp / "faust"), "NEXTOFFER_LOG_LEVEL": "info",
                    "NEXTOFFER_REPORT_INTERVAL": "1", "NEXTOFFER_METRICS_PORT": "0"}

    def start_worker(self, **env) -> Worker:
        worker = Worker({**self.env, **env}, self.tmp / f"{self.prefix}worker{len(self.workers)}.log")
        self.workers.append(worker)
        return worker

    def send(self, topic: str, value, key: Optional[str] = None) -> None:
        raw = value if isinstance(value, bytes) else orjson.dumps(value)
        self.producer.send(self.prefix + topic, key=key.encode() if key is not None else None, value=raw)

    def flush(self) -> None:
        self.producer.flush()

    def read(self, topic: str, until: Callable[[list], bool], timeout: float = 60,
             on_message: Optional[Callable[[dict], None]] = None) -> list[dict]:
        """Everything on a topic from the beginning, until ``until(messages)`` or the timeout."""
        consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=None, enable_auto_commit=False)
        parts = [TopicPartition(self.prefix + topic, p) for p in range(PARTITIONS)]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        out: list[dict] = []
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline and not until(out):
                for batch in consumer.poll(timeout_ms=200).values():
                    for msg in batch:
                        value = orjson.loads(msg.value)
                        if on_message:
                            on_message(value)
                        out.append(value)
        finally:
            consumer.close()
        return out

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.producer.close()
        remove_deployment(Settings.from_env(self.env), self.redis)


@pytest.fixture
def deployment(stack, tmp_path):
    made: list[Deployment] = []

    def make(prefix: Optional[str] = None) -> Deployment:
        d = Deployment(stack, tmp_path, prefix)
        made.append(d)
        return d
    yield make
    for d in made:
        d.close()
