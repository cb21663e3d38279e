"""The UI at 1,000 demo agents (issue #21), in a real browser: the fleet pages stay readable (no
page carries more than 30 plots, the rollup plots show history) and one agent's story is its
own page. Slow (~5-8 min here): `make test-slow`.

The demo runs as `make demo` would at DEMO_AGENTS=1000: two days of seeded history, the swarm
(all agents in this test's process), the history fill reported to the webserver, and the
daemon's agent_story_sensor writing each agent's page. Screenshots are kept under
AGENTS_PIPELINE_TEST_ARTIFACTS (default test-artifacts/browser-1000/); the path is printed.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agents_pipeline.core import settings
from agents_pipeline.core.connection import Database
from agents_pipeline.demo.history import fill_history
from agents_pipeline.demo.profiles import fleet
from agents_pipeline.demo.seed import SeedPlan, seed_history
from agents_pipeline.demo.swarm import Swarm
from agents_pipeline.platform.launch import client_for, submit, wait
from agents_pipeline_tests import pg
from agents_pipeline_tests.ui.test_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(1200),
              pytest.mark.filterwarnings("ignore::DeprecationWarning:gql.*")]

AGENTS = 1000
MAX_PLOTS = 30
ARTIFACTS = Path(os.environ.get("AGENTS_PIPELINE_TEST_ARTIFACTS") or settings.PROJECT_DIR / "test-artifacts") \
    / "browser-1000"
# Among the first agents registered, so the sensor's first tick writes its page.
AGENT = fleet(AGENTS)[8][0]

_STORY = """query ($p: String!) { assetNodeOrError(assetKey: {path: ["agent_story"]}) {
  ... on AssetNode { assetMaterializations(partitions: [$p], limit: 1) { partition } } } }"""
_TARGETING = """query ($k: [String!]!) { assetNodeOrError(assetKey: {path: $k}) {
  ... on AssetNode { targetingInstigators { ... on Sensor { name } ... on Schedule { name } } } } }"""


@pytest.fixture(scope="module")
def big_demo(pg_cluster, pg_template, tmp_path_factory):
    from agents_pipeline_tests.ui.dagster_dev import running_dagster_dev

    app = pg.fresh_database(pg_cluster, pg_template)
    url = pg_cluster.url(app)
    storage = f"dagster_{pg.uuid.uuid4().hex[:10]}"
    conn = pg.admin_connect(pg_cluster)
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{storage}"')
    conn.close()
    db = Database(url, maxconn=1)
    try:
        seed_history(db, SeedPlan(agents=AGENTS, days=2, heartbeat_every_s=900, sample_every_s=1800,
                                  conversation_every_s=3600))
    finally:
        db.close()
    swarm = Swarm(url, AGENTS, period_s=60.0, grace_s=30.0, seed=21)
    thread = threading.Thread(target=swarm.run, name="swarm", daemon=True)
    thread.start()
    try:
        with running_dagster_dev(url, pg_cluster.url(storage), tmp_path_factory.mktemp("dagster-home-1000")) as dev:
            filled = fill_history(url, dev.url, days=2)
            assert filled.hours_rolled >= 40 and filled.days_refreshed >= 2, filled
            # What demo-kickoff queues: a real run of the last hour, whose metadata has the tables too.
            client = client_for(dev.url)
            last = (datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1))
            run_id = submit(client, "__ASSET_JOB", asset_keys=["performance_rollups"],
                            partition=f"{last:%Y-%m-%d-%H:%M}")
            assert wait(client, run_id, timeout_s=300) == "SUCCESS", dev.log_tail()
            yield dev
    finally:
        swarm.request_stop()
        thread.join(timeout=30)
        pg.drop_database(pg_cluster, app)
        pg.drop_database(pg_cluster, storage)


@pytest.fixture(scope="module")
def page(big_demo):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: run scripts/install_system_deps.sh (Debian package `chromium`)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots of the 1,000-agent UI: {ARTIFACTS}")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        tab = browser.new_page(viewport={"width": 1400, "height": 1000})
        tab.set_default_timeout(60_000)
        tab.goto(big_demo.url + "/assets")
        tab.get_by_text("agent_story").first.wait_for()
        try:                 # the first visit's "Join the Dagster community" dialog, once loaded
            tab.get_by_role("button", name="Skip").wait_for(timeout=30_000)
        except Exception:  # noqa: BLE001 - an instance with nux disabled shows no dialog
            pass
        _dismiss(tab)
        yield tab
        browser.close()


def _dismiss(tab) -> None:
    """Skips the community dialog if it is up (it can come late on a loaded machine)."""
    skip = tab.get_by_role("button", name="Skip")
    if skip.count():
        skip.first.click()
        tab.get_by_text("Join the Dagster community").wait_for(state="hidden")


def _goto(tab, url: str, ready: str) -> None:
    tab.goto(url)
    tab.get_by_text(ready, exact=False).first.wait_for()
    tab.wait_for_timeout(500)
    _dismiss(tab)


def _plots(tab, url: str, shot: str) -> int:
    """Opens an asset's overview, switches its metadata to plots, saves a screenshot; returns
    how many plots (canvases) the page draws."""
    _goto(tab, url, "Metadata")
    tab.get_by_text("Plots", exact=True).first.click()
    # One point per partition: at 1,000 agents agent_story's plots take a while to load.
    tab.get_by_text("Loading plots", exact=False).first.wait_for(state="hidden", timeout=180_000)
    tab.locator("canvas").first.wait_for(timeout=60_000)
    tab.wait_for_timeout(2_000)          # Chart.js animates the first draw
    tab.screenshot(path=str(ARTIFACTS / f"{shot}.png"), full_page=True)
    return tab.locator("canvas").count()


def test_fleet_pages_stay_readable_at_1000_agents(page, big_demo):
    for asset, shot in (("performance_rollups", "fleet-rollups-plots"), ("llm_usage_daily", "fleet-llm-usage-plots"),
                        ("agent_health", "fleet-health-plots"), ("performance_samples", "fleet-samples-plots")):
        plots = _plots(page, f"{big_demo.url}/assets/{asset}", shot)
        assert 0 < plots <= MAX_PLOTS, f"{asset}: {plots} plots at {AGENTS} agents"
    _goto(page, f"{big_demo.url}/assets/performance_rollups", "top_agents_by_p95_cpu")
    page.get_by_text("top_agents_by_p95_cpu").first.scroll_into_view_if_needed()   # the pane scrolls, not the page
    page.screenshot(path=str(ARTIFACTS / "fleet-rollups-tables.png"), full_page=True)
    text = page.inner_text("body")
    assert "[demo-" not in text, "a metadata key per agent is back"
    # The history fill reported every hour: the rollups have many materialized partitions.
    _goto(page, f"{big_demo.url}/assets/performance_rollups?view=partitions", "Materialized")
    page.screenshot(path=str(ARTIFACTS / "fleet-rollups-partitions.png"), full_page=True)


def test_sensor_materialized_assets_show_their_sensor(big_demo):
    for key, sensor in ((["performance_samples"], "performance_sampler_sensor"),
                        (["agent_health"], "agent_health_sensor"), (["agent_story"], "agent_story_sensor"),
                        (["llm_usage_daily"], "llm_usage_sensor")):
        node = big_demo.graphql(_TARGETING, {"k": key})["data"]["assetNodeOrError"]
        assert sensor in [i.get("name") for i in node["targetingInstigators"]], (key, node)


def test_one_agents_story_is_its_own_page(page, big_demo):
    deadline = time.monotonic() + 360
    while True:         # the daemon's agent_story_sensor ticks every minute
        node = big_demo.graphql(_STORY, {"p": AGENT})["data"]["assetNodeOrError"]
        if node.get("assetMaterializations"):
            break
        assert time.monotonic() < deadline, f"no agent_story for {AGENT} after 6 minutes:\n{big_demo.log_tail()}"
        time.sleep(10)
    # From the catalog: agent_story, its Partitions tab, the agent (the address those clicks reach).
    _goto(page, f"{big_demo.url}/assets/agent_story?view=partitions&partition={AGENT}", "status_changes")
    page.wait_for_timeout(1_000)
    page.screenshot(path=str(ARTIFACTS / "agent-story.png"), full_page=True)
    page.get_by_text("cpu_and_memory_by_hour").first.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "agent-story-cpu-llm.png"), full_page=True)
    text = page.inner_text("body")
    for label in ("status_changes", "heartbeat_gaps", "cpu_and_memory_by_hour", "llm_by_day", "open_alerts_table",
                  "tasks"):
        assert label in text, f"{label} missing from {AGENT}'s page"
    assert AGENT in text
    plots = _plots(page, f"{big_demo.url}/assets/agent_story", "agent-story-plots")
    assert 0 < plots <= MAX_PLOTS
