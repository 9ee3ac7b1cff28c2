"""What operators and storefront developers use, against the real broker, Redis and a worker:
Prometheus metrics, ``nextoffer serve`` (HTTP lookup, feedback, OpenAPI, dashboard in a real
headless Chromium) and ``nextoffer status``."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import ROOT
from tests.integration.test_pipeline import T0, seed

pytestmark = pytest.mark.integration

TOKEN = "it-token-3b8f"
SCREENSHOT = ROOT / "reports" / "dashboard.png"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: bytes | None = None, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_for(check, timeout: float = 60, every: float = 0.3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"not true within {timeout}s: {check}")


def metrics(port: int) -> dict:
    status, text = http("GET", f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


@pytest.fixture
def shop(deployment, tmp_path):
    """A deployment with a worker serving metrics, a few shoppers with offers, and ``nextoffer serve``."""
    d = deployment()
    orders = seed(d)
    metrics_port, http_port = free_port(), free_port()
    worker = (d.start_worker(NEXTOFFER_METRICS_PORT=str(metrics_port), NEXTOFFER_CONTROL_SHARE="0")
              .wait_ready().wait_learned(orders))
    for n in range(5):
        user = f"shopper-{n}"
        d.send("clickstream", {"event_id": f"v{n}", "type": "view", "user_id": user, "product_id": "s-128",
                               "price": 700.0, "ts": T0 + 100 + n}, key=user)
        d.send("cart", {"event_id": f"a{n}", "type": "add", "user_id": user, "product_id": "s-128",
                        "price": 700.0, "ts": T0 + 110 + n}, key=user)
    d.send("cart", b"{not json", key="shopper-0")
    d.flush()
    with serving(d, tmp_path, http_port) as base:
        wait_for(lambda: d.redis.hget(f"{d.prefix}nbo:shopper-4", "cart"), timeout=60)
        yield d, worker, base, metrics_port


@contextlib.contextmanager
def serving(d, tmp_path, http_port: int):
    """``nextoffer serve`` of the deployment, on ``http_port``, until the block ends."""
    env = {**d.env, "NEXTOFFER_HTTP_PORT": str(http_port), "NEXTOFFER_HTTP_TOKEN": TOKEN}
    log = open(tmp_path / "serve.log", "wb")
    serve = subprocess.Popen([sys.executable, "-m", "nextoffer.streams.ops.cli", "serve"], cwd=ROOT, env=env, stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{http_port}"
    try:
        wait_for(lambda: _up(base), timeout=30)
        yield base
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(20)
        log.close()


def _up(base: str) -> bool:
    try:
        return http("GET", base + "/healthz")[0] == 200
    except OSError:
        return False


def test_worker_metrics_count_what_it_did(shop):
    d, worker, base, port = shop
    m = wait_for(lambda: (lambda m: m if m.get(("nextoffer_events_total", (("topic", "cart"), ("type", "add"))))
                          == 5 else None)(metrics(port)), timeout=30)
    assert m[("nextoffer_events_total", (("topic", "clickstream"), ("type", "view")))] == 5
    assert m[("nextoffer_dead_letters_total", (("reason", "not_json"),))] == 1
    published = len(d.read("offers", until=lambda got: False, timeout=4))
    offers = sum(v for (name, _), v in m.items() if name == "nextoffer_offers_total")
    assert offers == published >= 10          # a product-page and a cart offer per shopper at least
    assert m[("nextoffer_offer_latency_seconds_count", ())] == published
    assert m[("nextoffer_model_updates_total", (("model", "bought_together"),))] >= 8
    lag = {labels: v for (name, labels), v in m.items() if name == "nextoffer_consumer_lag"}
    assert lag and all(v == 0 for v in lag.values())


def test_http_lookup_returns_what_redis_holds_and_needs_the_token(shop):
    d, worker, base, port = shop
    status, body = http("GET", f"{base}/offers/shopper-4?placement=cart", token=TOKEN)
    assert status == 200
    assert orjson.loads(body) == orjson.loads(d.redis.hget(f"{d.prefix}nbo:shopper-4", "cart"))
    status, body = http("GET", f"{base}/offers/shopper-4", token=TOKEN)
    assert status == 200 and set(orjson.loads(body)) == {"product_page", "cart"}
    assert http("GET", f"{base}/offers/shopper-4")[0] == 401
    assert http("GET", f"{base}/offers/shopper-4", token="wrong")[0] == 401
    assert http("GET", f"{base}/offers/nobody", token=TOKEN)[0] == 404
    status, body = http("GET", f"{base}/offers/shopper-4?placement=sidebar", token=TOKEN)
    assert status == 400 and b"unknown placement" in body
    spec = orjson.loads(http("GET", f"{base}/openapi.json")[1])
    assert spec["openapi"].startswith("3.1") and "/offers/{user_id}" in spec["paths"]


def test_feedback_posted_over_http_reaches_the_worker(shop):
    d, worker, base, port = shop
    offer = orjson.loads(d.redis.hget(f"{d.prefix}nbo:shopper-3", "cart"))
    declined = offer["items"][0]["product_id"]
    body = orjson.dumps({"type": "decline", "user_id": "shopper-3", "offer_id": offer["offer_id"],
                         "product_id": declined})
    assert http("POST", f"{base}/feedback", body)[0] == 401
    status, reply = http("POST", f"{base}/feedback", body, token=TOKEN)
    assert status == 202, reply
    event_id = orjson.loads(reply)["event_id"]
    messages = d.read("offer-feedback", until=lambda got: any(m["event_id"] == event_id for m in got), timeout=30)
    assert any(m["event_id"] == event_id and m["type"] == "decline" for m in messages)
    wait_for(lambda: metrics(port).get(("nextoffer_events_total", (("topic", "offer-feedback"),
                                                                   ("type", "decline")))) == 1, timeout=30)
    # The declined item is cooled down: the shopper's next cart offer leaves it out.
    d.send("cart", {"event_id": "again", "type": "add", "user_id": "shopper-3", "product_id": "s-128",
                    "price": 700.0, "ts": T0 + 500}, key="shopper-3")
    d.flush()
    later = wait_for(lambda: (lambda o: o if o and o["event_id"] == "again" else None)(
        _offer(d, "shopper-3", "cart")), timeout=30)
    assert declined not in [item["product_id"] for item in later["items"]]
    bad = orjson.dumps({"type": "like", "user_id": "shopper-3", "offer_id": "x"})
    status, reply = http("POST", f"{base}/feedback", bad, token=TOKEN)
    assert status == 400 and b"unknown type" in reply


def _offer(d, user: str, placement: str):
    raw = d.redis.hget(f"{d.prefix}nbo:{user}", placement)
    return orjson.loads(raw) if raw else None


def test_status_command_shows_the_deployment(shop):
    d, worker, base, port = shop
    wait_for(lambda: list(d.redis.scan_iter(match=f"{d.prefix}nextoffer:worker:*")), timeout=30)
    result = subprocess.run([sys.executable, "-m", "nextoffer.streams.ops.cli", "status", "--json"], cwd=ROOT, env=d.env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    status = orjson.loads(result.stdout)
    assert status["kafka"]["brokers"] and status["group"]["state"] == "Stable"
    assert len(status["group"]["members"]) == 1
    assert status["topics"][f"{d.prefix}cart"] == 4
    assert status["workers"][0]["events"] >= 10 and status["redis"]["version"]


def chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.fail("Chromium and its driver are needed for the dashboard test: deploy/test.sh installs "
                    "them (apt-get install chromium chromium-driver)")
    return browser, driver


def test_dashboard_renders_live_charts_and_looks_up_a_shopper(shop):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    d, worker, base, port = shop
    browser, driver_path = chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1800"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.get(f"{base}/#token={TOKEN}")
        # The page redraws its tiles and charts every few seconds: an element read during a redraw
        # is stale, and the wait reads it again; snapshots are taken in one script call.
        wait = WebDriverWait(driver, 60, poll_frequency=0.5, ignored_exceptions=(StaleElementReferenceException,))
        wait.until(lambda drv: "1 worker(s) reporting" in drv.find_element(By.ID, "status").text)
        # Charts are drawn from the live series; the throughput chart needs two samples.
        wait.until(lambda drv: int(drv.find_element(By.ID, "chart-throughput").get_attribute("data-points")
                                   or 0) >= 2)
        assert driver.find_elements(By.CSS_SELECTOR, "#chart-throughput path.series")
        # Traffic while the page is open shows up in the throughput chart.
        for n in range(60):
            user = f"live-{n % 6}"
            d.send("clickstream", {"event_id": f"live{n}", "type": "view", "user_id": user,
                                   "product_id": "s-128", "price": 700.0, "ts": T0 + 1000 + n}, key=user)
            if n % 10 == 9:
                d.flush()
                time.sleep(0.5)
        wait.until(lambda drv: float(drv.find_element(By.ID, "chart-throughput").get_attribute("data-max")
                                     or 0) > 0)
        bars = driver.execute_script("return document.querySelectorAll('#chart-offers rect.bar').length")
        assert bars, "offers by kind and placement not drawn"
        tiles = driver.execute_script(
            "const out = {}; for (const t of document.querySelectorAll('.tile'))"
            " out[t.dataset.name] = t.querySelector('.v').textContent; return out;")
        published = len(d.read("offers", until=lambda got: False, timeout=3))
        wait.until(lambda drv: drv.find_element(By.CSS_SELECTOR, ".tile[data-name=offers] .v").text
                   == str(published))
        assert tiles["dead letters"] == "1" and tiles["workers"] == "1"
        wait.until(lambda drv: "s-128" in drv.find_element(By.ID, "showcases").text)   # best sellers, views
        driver.find_element(By.ID, "user").send_keys("shopper-2")
        driver.find_element(By.CSS_SELECTOR, "#lookup button").click()
        wait.until(lambda drv: drv.find_elements(By.CSS_SELECTOR, "#lookup-result .offer"))
        shown = set(driver.execute_script(
            "return [...document.querySelectorAll('#lookup-result .offer')].map(o => o.dataset.placement)"))
        assert shown == {"product_page", "cart"}
        assert "often bought with" in driver.find_element(By.ID, "lookup-result").text or \
            "upgrade" in driver.find_element(By.ID, "lookup-result").text.lower()
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(SCREENSHOT))
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        driver.quit()


VERDICTS = {"offered", "ranked_lower", "not_needed", "below_relevance", "price_share", "anchor", "in_cart",
            "just_bought", "unavailable", "declined", "frequency_cap"}


def test_explain_shows_every_candidate_and_why(shop):
    d, worker, base, port = shop
    run = lambda *args: subprocess.run([sys.executable, "-m", "nextoffer.streams.ops.cli", "explain", *args], cwd=ROOT,
                                       env=d.env, capture_output=True, text=True, timeout=120)
    result = run("shopper-2", "--placement", "checkout", "--json")
    assert result.returncode == 0, result.stderr
    report = orjson.loads(result.stdout)
    assert report["anchor"] == "s-128" and report["shopper"]["cart"] == {"s-128": 1}
    assert report["profile"]["segment"] == "first_time" and report["profile"]["intent"] == "buying"
    rows = {(c["kind"], c["product_id"]): c for c in report["candidates"]}
    assert {("cross_sell", "case"), ("cross_sell", "glass")} <= set(rows)
    assert {c["verdict"] for c in report["candidates"]} <= VERDICTS
    offered = [c["product_id"] for c in report["candidates"] if c["verdict"] == "offered"]
    assert offered == report["decision"]["items"] or sorted(offered) == sorted(report["decision"]["items"])
    # The product page: the family's next tier, as the worker offered it.
    page = orjson.loads(run("shopper-2", "--placement", "product_page", "--json").stdout)
    upsell = orjson.loads(d.redis.hget(f"{d.prefix}nbo:shopper-2", "product_page"))
    assert rows and any(c["product_id"] == upsell["items"][0]["product_id"] for c in page["candidates"])
    bounds = report["price_bounds"]
    assert set(bounds) == {"cross_sell_max_share", "first_time_max_share", "upsell_min_step", "upsell_max_step"}
    assert all(b["scope"] in ("category", "store", "configured") and b["describe"] for b in bounds.values())
    shows = report["showcases"]
    assert shows["product"] == "s-128" and set(shows["windows"]) == {
        "best_sellers", "most_viewed", "trending", "similar", "frequently_bought_together"}
    assert set(shows["windows"]["frequently_bought_together"]) == {"case", "glass"}
    assert "s-128" in shows["left_out"], "in the shopper's cart: left out of their showcases"
    printed = run("shopper-2", "--placement", "checkout")
    assert "profile: first_time" in printed.stdout and "price bounds: cross_sell_max_share" in printed.stdout
    assert "frequently_bought_together: " in printed.stdout
    missing = run("nobody-at-all")
    assert missing.returncode == 1 and "no state for user 'nobody-at-all'" in missing.stderr


def test_showcases_count_every_workers_views_and_are_served_personalised(deployment, tmp_path):
    """Two workers split the shoppers; each counts its shoppers' views, and through the activity
    topic both learn all of them: the store's most viewed list in Redis ranks by every view.
    ``GET /showcases`` serves it, and for a shopper leaves out what they bought."""
    d = deployment()
    orders = seed(d)
    fast = {"NEXTOFFER_SHOWCASE_INTERVAL": "1"}
    workers = [d.start_worker(**fast), d.start_worker(**fast)]
    for w in workers:
        w.wait_ready().wait_learned(orders)
    views = {"s-256": 24, "case": 16, "glass": 8}
    n = 0
    for pid, count in views.items():
        for _ in range(count):
            user = f"viewer-{n}"            # many shoppers: both workers' partitions
            d.send("clickstream", {"event_id": f"sv{n}", "type": "view", "user_id": user, "product_id": pid,
                                   "ts": T0 + 200 + n}, key=user)
            n += 1
    d.send("cart", {"event_id": "fan-p", "type": "purchase", "user_id": "fan", "product_id": "case",
                    "price": 25.0, "ts": T0 + 300}, key="fan")
    d.send("clickstream", {"event_id": "fan-v", "type": "view", "user_id": "fan", "product_id": "glass",
                           "ts": T0 + 301}, key="fan")
    d.flush()

    def most_viewed():
        raw = d.redis.hget(f"{d.prefix}showcase:store", "most_viewed")
        return [i["product_id"] for i in orjson.loads(raw)] if raw else []
    wait_for(lambda: most_viewed()[:3] == ["s-256", "case", "glass"], timeout=60)
    texts = [w.text() for w in workers]
    assert all("shared learners ready" in t for t in texts)
    product = d.redis.hgetall(f"{d.prefix}showcase:product:s-256")
    assert {b"best_sellers", b"most_viewed", b"trending", b"similar", b"frequently_bought_together"} <= set(product)
    assert [i["product_id"] for i in orjson.loads(product[b"similar"])] == ["s-128"]
    wait_for(lambda: d.redis.hget(f"{d.prefix}showcase:user:fan", "profile"), timeout=30)
    with serving(d, tmp_path, free_port()) as base:
        status, body = http("GET", f"{base}/showcases/most_viewed")
        assert status == 200, body
        generic = orjson.loads(body)
        assert [i["product_id"] for i in generic["items"]][:3] == ["s-256", "case", "glass"]
        assert generic["source"] == "store" and not generic["personalised"]
        status, body = http("GET", f"{base}/showcases/most_viewed?user=fan", token=TOKEN)
        mine = orjson.loads(body)
        assert status == 200 and mine["personalised"]
        assert "case" not in [i["product_id"] for i in mine["items"]], "what the shopper bought is left out"
        assert http("GET", f"{base}/showcases/most_viewed?user=fan")[0] == 401, "a shopper's showcase needs the token"
        status, body = http("GET", f"{base}/showcases/frequently_bought_together?product=s-128&limit=2")
        assert status == 200 and {i["product_id"] for i in orjson.loads(body)["items"]} == {"case", "glass"}
        assert http("GET", f"{base}/showcases/sideways")[0] == 400
        spec = orjson.loads(http("GET", f"{base}/openapi.json")[1])
        assert "/showcases/{kind}" in spec["paths"]


def test_the_worker_creates_its_changelogs_with_segments_that_close_for_compaction(shop):
    """A changelog's superseded states are compacted away only from closed segments; the worker
    creates its tables' changelogs with NEXTOFFER_CHANGELOG_SEGMENT (segment.ms)."""
    from kafka.admin import ConfigResource, ConfigResourceType

    from nextoffer.streams.io.admin import admin_client
    from nextoffer.streams.io.settings import Settings
    d = shop[0]
    settings = Settings.from_env(d.env)
    admin = admin_client(settings)
    try:
        names = [n for n in admin.list_topics() if n.startswith(d.prefix) and n.endswith("-changelog")]
        assert {n[len(d.prefix):] for n in names} >= {"nextoffer-shoppers-changelog",
                                                      "nextoffer-dead-lettered-changelog"}
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
        for name in names:
            entries = {key: entry["value"] for key, entry in described["topic"][name].items()}
            assert entries["cleanup.policy"] == "compact", name
            assert entries["segment.ms"] == str(settings.changelog_segment * 1000), name
    finally:
        admin.close()
