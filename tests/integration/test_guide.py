"""The integration guide's examples (docs/integration.md), run as printed against the real broker,
Redis and a worker: Python with kafka-python and redis-py, JavaScript with KafkaJS and node-redis."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
import pytest
from kafka.admin import KafkaAdminClient

from tests.integration.conftest import BOOTSTRAP, ROOT
from tests.integration.test_pipeline import seed

pytestmark = pytest.mark.integration

GUIDE = ROOT / "docs" / "integration.md"
NODE_CACHE = Path(os.environ.get("NEXTOFFER_CACHE", Path.home() / ".cache" / "nextoffer")) / "node"
NODE_PACKAGES = ("kafkajs@2", "redis@4")


def examples() -> dict[str, str]:
    """``<!-- example: name -->`` followed by a fenced block, by name."""
    text = GUIDE.read_text()
    found = re.findall(r"<!-- example: (\S+) -->\n```\w+\n(.*?)\n```", text, re.S)
    return {name: code + "\n" for name, code in found}


def test_the_guide_has_every_example():
    assert set(examples()) == {"send_events.py", "offers_consumer.py", "offers_consumer.js", "lookup.py",
                               "lookup.js", "send_feedback.py"}


@pytest.fixture(scope="module")
def node_modules() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.fail("Node.js and npm are needed to run the guide's JavaScript examples")
    if not all((NODE_CACHE / "node_modules" / p.split("@")[0]).exists() for p in NODE_PACKAGES):
        NODE_CACHE.mkdir(parents=True, exist_ok=True)
        result = subprocess.run([npm, "install", "--silent", "--no-audit", "--no-fund", "--prefix",
                                 str(NODE_CACHE), *NODE_PACKAGES], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"npm install failed:\n{result.stderr[-2000:]}"
    return NODE_CACHE / "node_modules"


class Example:
    def __init__(self, name: str, folder: Path, env: dict, node_modules: Path) -> None:
        self.path = folder / name
        self.path.write_text(examples()[name])
        self.log = folder / f"{name}.log"
        self.cmd = [sys.executable] if name.endswith(".py") else ["node"]
        self.env = {**env, "NODE_PATH": str(node_modules)}

    def run(self, *args: str) -> str:
        result = subprocess.run([*self.cmd, str(self.path), *args], env=self.env, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, f"{self.path.name} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def start(self) -> subprocess.Popen:
        return subprocess.Popen([*self.cmd, str(self.path)], env=self.env, stdout=open(self.log, "wb"),
                                stderr=subprocess.STDOUT, start_new_session=True)


def wait_for(check, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"not true within {timeout}s")


def group_ready(group: str) -> bool:
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    try:
        described = admin.describe_groups([group]).get(group, {})
        return described.get("group_state") == "Stable" and bool(described.get("members"))
    finally:
        admin.close()


def test_guide_examples_work_as_printed(deployment, tmp_path, node_modules):
    d = deployment()
    orders = seed(d)
    d.start_worker().wait_ready().wait_learned(orders)
    python_group, js_group = f"{d.prefix}py-{uuid.uuid4().hex[:6]}", f"{d.prefix}js-{uuid.uuid4().hex[:6]}"
    py = Example("offers_consumer.py", tmp_path, {**d.env, "GROUP_ID": python_group}, node_modules)
    js = Example("offers_consumer.js", tmp_path, {**d.env, "GROUP_ID": js_group}, node_modules)
    consumers = [py.start(), js.start()]
    try:
        wait_for(lambda: group_ready(python_group) and group_ready(js_group), timeout=60)
        sent = Example("send_events.py", tmp_path, d.env, node_modules).run("guide-user", "s-128", "700")
        assert "sent a view and an add" in sent
        for example in (py, js):
            wait_for(lambda: "guide-user cart " in example.log.read_text(errors="replace"), 60)
            assert "guide-user product_page upsell: s-256 (same line" in example.log.read_text()
            assert "Warning" not in example.log.read_text(), example.log.read_text()
    finally:
        for proc in consumers:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(20)

    offer = orjson.loads(d.redis.hget(f"{d.prefix}nbo:guide-user", "cart"))
    items = [item["product_id"] for item in offer["items"]]
    out = Example("lookup.py", tmp_path, d.env, node_modules).run("guide-user", "cart")
    assert out.strip() == f"{offer['kind']} {items!r} {offer['offer_id']}"
    out = Example("lookup.js", tmp_path, d.env, node_modules).run("guide-user", "cart")
    assert out.strip() == f"{offer['kind']} {orjson.dumps(items).decode()} {offer['offer_id']}"
    assert Example("lookup.py", tmp_path, d.env, node_modules).run("nobody", "cart").strip() == "no offer"

    out = Example("send_feedback.py", tmp_path, d.env, node_modules).run("guide-user", offer["offer_id"], items[0])
    assert "feedback sent" in out
    got = d.read("offer-feedback", until=lambda ms: any(m["offer_id"] == offer["offer_id"] for m in ms), timeout=30)
    assert any(m["type"] == "decline" and m["product_id"] == items[0] for m in got)
