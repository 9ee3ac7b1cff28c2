"""docker-compose.yml cannot run here (no Docker engine): check its structure and its environment."""
import re
from pathlib import Path

import yaml

from streams.settings import describe

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
SETTINGS = {name for name, _, _ in describe()}


def test_the_stack_has_its_services():
    assert {"kafka", "redis", "worker", "feeder"} <= set(SERVICES)


def test_servers_have_health_checks_and_the_worker_waits_for_them():
    for name in ("kafka", "redis"):
        assert SERVICES[name]["healthcheck"]["test"]
    for dependency in ("kafka", "redis"):
        assert SERVICES["worker"]["depends_on"][dependency]["condition"] == "service_healthy"


def test_kafka_is_the_official_image_in_kraft_mode_at_the_pinned_version():
    kafka = SERVICES["kafka"]
    pinned = re.search(r"^DEFAULT_KAFKA_VERSION=(\S+)", (ROOT / "deploy/kafka.sh").read_text(), re.M).group(1)
    assert kafka["image"] == f"apache/kafka:{pinned}"
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller" and "KAFKA_CONTROLLER_QUORUM_VOTERS" in env
    internal = next(l for l in env["KAFKA_ADVERTISED_LISTENERS"].split(",") if l.startswith("INTERNAL://"))
    assert SERVICES["worker"]["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == internal.split("://")[1]


def test_worker_environment_is_exactly_settings_the_worker_reads():
    for name in ("worker", "feeder"):
        env = SERVICES[name]["environment"]
        assert {"KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "NEXTOFFER_TOPIC_PREFIX"} <= set(env)
        unknown = set(env) - SETTINGS
        assert not unknown, f"{name} sets variables no setting reads: {unknown}"
    assert SERVICES["worker"]["environment"]["REDIS_URL"].startswith("redis://redis:")


def test_the_worker_image_builds_from_files_that_exist():
    build = SERVICES["worker"]["build"]
    dockerfile = ROOT / build["context"] / build["dockerfile"]
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"{dockerfile.name} copies missing {source}"
    assert SERVICES["feeder"]["image"] == SERVICES["worker"]["image"]
    assert SERVICES["feeder"]["command"][0] == "simulate"
