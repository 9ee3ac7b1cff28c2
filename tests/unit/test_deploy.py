"""docker-compose.yml cannot run here (no Docker engine): check its structure and its environment."""
import re
from pathlib import Path

import yaml

from nextoffer.streams.io.settings import describe

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


def test_the_worker_image_copies_every_folder_the_package_installs():
    import tomllib
    build = SERVICES["worker"]["build"]
    dockerfile = (ROOT / build["context"] / build["dockerfile"]).read_text()
    copied = {source for line in dockerfile.splitlines() if line.startswith("COPY ")
              for source in line.split()[1:-1]}
    folders = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"].values())
    assert folders <= copied, f"the image misses {sorted(folders - copied)}: pip install . would fail"


# -- Kubernetes, Prometheus, Grafana --------------------------------------------------------------
K8S = ROOT / "deploy" / "k8s"


def k8s_objects() -> dict:
    objects = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc["apiVersion"] and doc["metadata"]["name"], path
            objects[(doc["kind"], doc["metadata"]["name"])] = doc
    return objects


def test_kustomization_lists_every_manifest():
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


def test_k8s_workers_have_probes_resources_and_scale_within_the_partitions():
    objects = k8s_objects()
    config = objects[("ConfigMap", "nextoffer")]["data"]
    secret = objects[("Secret", "nextoffer")]["stringData"]
    assert not set(config) - SETTINGS and not set(secret) - SETTINGS, "variables no setting reads"
    assert "REDIS_URL" in secret and "REDIS_URL" not in config, "credentials belong in the Secret"
    for name, command, port in (("nextoffer-worker", "worker", int(config["NEXTOFFER_METRICS_PORT"])),
                                ("nextoffer-serve", "serve", int(config["NEXTOFFER_HTTP_PORT"]))):
        spec = objects[("Deployment", name)]["spec"]
        assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
        (container,) = spec["template"]["spec"]["containers"]
        assert container["args"] == [command]
        assert {e.get("configMapRef", e.get("secretRef"))["name"] for e in container["envFrom"]} == {"nextoffer"}
        assert container["ports"][0]["containerPort"] == port
        assert container["livenessProbe"] and container["readinessProbe"]
        assert container["resources"]["requests"]["memory"] and container["resources"]["limits"]["memory"]
    hpa = objects[("HorizontalPodAutoscaler", "nextoffer-worker")]["spec"]
    assert hpa["scaleTargetRef"]["name"] == "nextoffer-worker"
    assert hpa["maxReplicas"] <= int(config["NEXTOFFER_PARTITIONS"]), "a worker beyond the partitions idles"
    worker = objects[("Deployment", "nextoffer-worker")]["spec"]["template"]
    assert worker["metadata"]["annotations"]["prometheus.io/port"] == config["NEXTOFFER_METRICS_PORT"]
    assert objects[("Service", "nextoffer-serve")]["spec"]["selector"] == \
        objects[("Deployment", "nextoffer-serve")]["spec"]["selector"]["matchLabels"]


def worker_metric_names() -> set:
    """Every sample name a worker exposes, from the real collector."""
    from collections import Counter
    from prometheus_client import generate_latest
    from nextoffer.streams.io.figures import Figures
    from nextoffer.streams.worker.metrics import WorkerMetrics
    stats = Counter({"events.cart.add": 1, "offers.upsell.cart": 1, "no_offer.no_anchor": 1,
                     "events.duplicate": 1})
    tally = Counter({"outcome.upsell.cart.accepted": 1, "segment_outcome.repeat.accepted": 1,
                     "orders.treated": 1, "order_value.treated": 3.0,
                     "orders_with_offer.treated": 1, "updates.acceptance": 1})
    m = WorkerMetrics(Figures(stats, tally, Counter({"not_json": 1})), lambda: {("cart", 0): 0})
    m.observe_latency(0.01)
    text = generate_latest(m.registry).decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


def test_the_worker_exposes_its_partition_re_reads():
    from collections import Counter
    from prometheus_client import generate_latest
    from nextoffer.streams.io.figures import Figures
    from nextoffer.streams.worker.metrics import WorkerMetrics
    m = WorkerMetrics(Figures(Counter(), Counter(), Counter()), lambda: {("cart", 0): 44}, rereads=lambda: 3)
    text = generate_latest(m.registry).decode()
    assert "nextoffer_partition_rereads_total 3.0" in text
    assert 'nextoffer_consumer_lag{partition="0",topic="cart"} 44.0' in text


def test_prometheus_scrapes_the_workers_metrics_port():
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    from nextoffer.streams.io.settings import Settings
    local = jobs["nextoffer-local"]["static_configs"][0]["targets"]
    assert f"localhost:{Settings().metrics_port}" in local
    assert jobs["nextoffer-kubernetes"]["kubernetes_sd_configs"][0]["role"] == "pod"


def test_grafana_dashboard_uses_only_metrics_the_workers_expose():
    import json
    dashboard = json.loads((ROOT / "deploy/grafana/nextoffer-dashboard.json").read_text())
    exposed = worker_metric_names()
    used = set()
    for panel in dashboard["panels"]:
        assert panel["title"] and panel["targets"]
        for target in panel["targets"]:
            used |= set(re.findall(r"\bnextoffer_[a-z_]+", target["expr"]))
    assert used, "the dashboard queries no metric"
    assert used <= exposed, f"queried but never exposed: {used - exposed}"
    wanted = {"nextoffer_events_total", "nextoffer_consumer_lag", "nextoffer_offer_latency_seconds_bucket",
              "nextoffer_offers_total", "nextoffer_dead_letters_total", "nextoffer_offer_outcomes_total",
              "nextoffer_orders_total", "nextoffer_order_value_total", "nextoffer_model_updates_total"}
    assert wanted <= used
