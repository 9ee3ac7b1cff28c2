"""Security against the real servers: Redis with an ACL user, a password and TLS; no secret in any
output; nothing served over HTTP by default."""
from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys

import orjson
import pytest
import redis

from tests.integration.conftest import ROOT
from tests.integration.test_faults import seeded

pytestmark = pytest.mark.integration

PORT = 6393


def _certificates(folder) -> None:
    """A throw-away CA and a server certificate for 127.0.0.1, made with openssl."""
    folder.mkdir()

    def ssl(*args):
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)
    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=nextoffer test CA",
        "-keyout", "ca.key", "-out", "ca.crt")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "redis.key",
        "-out", "redis.csr")
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ssl("x509", "-req", "-in", "redis.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "1", "-extfile", "san.cnf", "-out", "redis.crt")


@pytest.fixture
def secured_redis(tmp_path):
    """Redis serving TLS only, its default user off, and an ACL user for nextoffer."""
    tls = tmp_path / "tls"
    _certificates(tls)
    password = secrets.token_urlsafe(18)
    env = {**os.environ, "NEXTOFFER_REDIS_PORT": str(PORT), "NEXTOFFER_RUN_DIR": str(tmp_path / "run"),
           "NEXTOFFER_REDIS_USER": "nextoffer", "NEXTOFFER_REDIS_PASSWORD": password,
           "NEXTOFFER_REDIS_TLS_DIR": str(tls)}
    script = str(ROOT / "deploy" / "redis.sh")
    subprocess.run(["bash", script, "start"], env=env, check=True, capture_output=True)
    url = f"rediss://nextoffer:{password}@127.0.0.1:{PORT}/0?ssl_ca_certs={tls / 'ca.crt'}"
    yield url, password, tls
    subprocess.run(["bash", script, "stop"], env=env, check=True, capture_output=True)


def test_the_worker_writes_offers_through_tls_as_an_acl_user_and_never_shows_the_password(
        deployment, secured_redis):
    url, password, tls = secured_redis
    d = seeded(deployment())
    worker = d.start_worker(REDIS_URL=url).wait_ready()
    d.send("clickstream", {"event_id": "v1", "type": "view", "user_id": "u1", "product_id": "phone-1",
                           "ts": 1_700_000_000}, key="u1")
    d.flush()
    offer = d.read("offers", until=lambda got: len(got) >= 1)[0]

    client = redis.Redis.from_url(url)
    assert orjson.loads(client.hget(f"{d.prefix}nbo:u1", "product_page")) == offer
    assert 0 < client.ttl(f"{d.prefix}nbo:u1") <= 86_400
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.flushall()  # the ACL user has no dangerous commands
    client.close()

    anonymous = redis.Redis(host="127.0.0.1", port=PORT, ssl=True, ssl_ca_certs=str(tls / "ca.crt"))
    with pytest.raises(redis.exceptions.AuthenticationError):
        anonymous.hget(f"{d.prefix}nbo:u1", "product_page")
    anonymous.close()
    with pytest.raises(redis.exceptions.ConnectionError):
        redis.Redis(host="127.0.0.1", port=PORT, socket_timeout=3).ping()  # no plain text

    shown = subprocess.run([sys.executable, "-m", "nextoffer.streams.ops.cli", "settings"], cwd=ROOT, capture_output=True,
                           text=True, env={**d.env, "REDIS_URL": url, "KAFKA_SASL_PASSWORD": "kafka-" + password})
    assert shown.returncode == 0 and "nextoffer:***@127.0.0.1" in shown.stdout
    worker.stop()
    for output in (worker.text(), shown.stdout + shown.stderr):
        assert password not in output


def test_a_wrong_redis_password_is_reported_without_the_password(deployment, secured_redis, tmp_path):
    url, password, _ = secured_redis
    wrong = url.replace(password, "not-the-" + password[:6])
    d = seeded(deployment())
    worker = d.start_worker(REDIS_URL=wrong).wait_ready()
    d.send("clickstream", {"event_id": "v1", "type": "view", "user_id": "u1", "product_id": "phone-1",
                           "ts": 1_700_000_000}, key="u1")
    d.flush()
    assert d.read("offers", until=lambda got: len(got) >= 1), "offers still reach the topic"
    worker.stop()
    log = worker.text()
    assert "offer lookup unreachable" in log and "AuthenticationError" in log
    assert "not-the-" not in log


def test_the_worker_serves_nothing_over_http_by_default(deployment):
    d = seeded(deployment())
    d.start_worker().wait_ready()
    with socket.socket() as probe:
        probe.settimeout(2)
        assert probe.connect_ex(("127.0.0.1", 6066)) != 0, "Faust's web server (tables) must be off"
