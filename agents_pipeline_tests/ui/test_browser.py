"""The Dagster UI in a real browser: Playwright driving Debian's Chromium against `dagster dev`.

What a newcomer sees is checked by page content: every group of the code location in the
asset graph, an asset's metadata plots drawn with points after materializations, and the
legacy SQLite migration launched from the Launchpad and succeeding. Each page is saved as a
screenshot under test-artifacts/browser/.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import dagster as dg
import pytest

from agents_pipeline.core import settings
from agents_pipeline.platform.launch import client_for, submit, wait

pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore::DeprecationWarning:gql.*")]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ARTIFACTS = settings.PROJECT_DIR / "test-artifacts" / "browser"
EXPECTED_GROUPS = {"platform", "heartbeats", "performance", "langsmith", "retention", "migration", "help"}
MIGRATION_JOB = "sqlite_migration_job"
LEGACY_SCHEMA = settings.PROJECT_DIR / "docs" / "legacy" / "schema.sql"  # the documented legacy format

# Pixels of a plotted series (Dagster draws it in its saturated blue-violet; axes and grid are grey).
_SERIES_PIXELS = """(label) => {
  const span = [...document.querySelectorAll('span')].find(s => s.textContent.trim() === label);
  const canvas = span && span.parentElement.parentElement.querySelector('canvas');
  if (!canvas) return null;
  const {width, height} = canvas;
  const data = canvas.getContext('2d').getImageData(0, 0, width, height).data;
  let count = 0, minX = width, maxX = -1;
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) {
    const i = (y * width + x) * 4, r = data[i], g = data[i + 1], b = data[i + 2], a = data[i + 3];
    if (a > 200 && b > 150 && b - r > 60 && b - g > 60) { count++; minX = Math.min(minX, x); maxX = Math.max(maxX, x); }
  }
  return {count, minX, maxX, width};
}"""


def _repo() -> dg.RepositoryDefinition:
    from agents_pipeline_tests.ui import ui_location

    return ui_location.defs.get_repository_def()


@pytest.fixture(scope="module")
def browser_page(dagster_dev):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: run scripts/install_system_deps.sh (Debian package `chromium`)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(30_000)
        page.dev_url = dagster_dev.url
        page.community_dialog_seen = False
        yield page
        browser.close()


def _open(page, path: str, shot: str, ready_text: str) -> str:
    """Goes to ``path``, dismisses the first-visit community dialog, waits for ``ready_text``,
    saves a screenshot; returns the page's text."""
    page.goto(page.dev_url + path)
    page.get_by_text(ready_text, exact=False).first.wait_for()
    if not page.community_dialog_seen:
        skip = page.get_by_role("button", name="Skip")
        try:
            skip.wait_for(timeout=8_000)
        except Exception:  # noqa: BLE001 - an instance with nux disabled shows no dialog
            pass
        else:
            assert "Join the Dagster community" in page.inner_text("body")
            skip.click()
            page.get_by_text("Join the Dagster community").wait_for(state="hidden")
        page.community_dialog_seen = True
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / f"{shot}.png"), full_page=True)
    return page.inner_text("body")


def test_asset_graph_shows_every_group(browser_page):
    """The lineage page draws one box per group (Dagster collapses groups once a location has
    a few dozen assets), and the catalog lists every asset by name."""
    repo = _repo()
    groups: dict[str, list[str]] = {}
    for key in repo.asset_graph.get_all_asset_keys():  # external specs too (the migration's report asset)
        groups.setdefault(repo.asset_graph.get(key).group_name, []).append(key.to_user_string())
    assert {"heartbeats", "performance", "langsmith", "retention", "migration", "help", "platform"} <= set(groups)
    text = _open(browser_page, "/asset-groups", "asset-graph", "Global asset lineage")
    assert "Join the Dagster community" not in text
    for group in groups:
        assert group in text, f"group {group} missing from the global asset graph"
    browser_page.set_viewport_size({"width": 1400, "height": 4000})
    catalog = _open(browser_page, "/assets", "asset-catalog", "shared_state_schema")
    browser_page.set_viewport_size({"width": 1400, "height": 1000})
    for names in groups.values():
        for name in names:
            assert name in catalog, f"asset {name} missing from the asset catalog"


def test_metadata_plots_have_points_after_materializations(browser_page, dagster_dev):
    client = client_for(dagster_dev.url)
    run_ids = [submit(client, "platform_readiness_job", tags={"n": str(i)}) for i in range(3)]  # queued together
    assert [wait(client, run_id, timeout_s=150) for run_id in run_ids] == ["SUCCESS"] * 3
    _open(browser_page, "/assets/platform_readiness", "asset-overview", "Metadata")
    browser_page.get_by_text("Plots", exact=True).click()
    browser_page.get_by_text("checks_passed", exact=True).wait_for()
    browser_page.wait_for_timeout(1000)  # Chart.js animates the first draw
    browser_page.screenshot(path=str(ARTIFACTS / "asset-plots.png"), full_page=True)
    for metric in ("checks_passed", "heartbeat_write_ms"):
        series = browser_page.evaluate(_SERIES_PIXELS, metric)
        assert series is not None, f"no plot for {metric}"
        assert series["count"] > 50, f"plot of {metric} has no points: {series}"
        # Three or more materializations spread the points across the time axis.
        assert series["maxX"] - series["minX"] > series["width"] * 0.4, f"plot of {metric} has one point: {series}"


def _legacy_file(path: Path) -> Path:
    """A small, clean legacy file in the format the migration reads (schema from the legacy README)."""
    conn = sqlite3.connect(path)
    conn.executescript(LEGACY_SCHEMA.read_text())
    conn.executemany("INSERT INTO agents (agent_id, agent_name, agent_type, status, config, created_at, last_heartbeat)"
                     " VALUES (?, ?, 'coordinator', 'active', '{}', '2025-01-20 10:00:00', ?)",
                     [("a1", "legacy-one", "2025-01-20T10:05:00Z"), ("a2", "legacy-two", "2025-01-20T10:06:00Z")])
    conn.executemany("INSERT INTO agent_heartbeats (agent_id, timestamp, status, metadata) VALUES (?, ?, 'healthy', '{}')",
                     [("a1", f"2025-01-20T10:0{i}:00Z") for i in range(5)])
    conn.execute("INSERT INTO performance_metrics (timestamp, agent_id, metric_name, metric_value, unit, tags) "
                 "VALUES ('2025-01-20T10:00:00Z', 'a1', 'cpu_percent', 12.5, '%', '{}')")
    conn.execute("INSERT INTO shared_state (key, value, updated_by, updated_at, version) "
                 "VALUES ('config:mode', '\"fast\"', 'a1', '2025-01-20T10:00:00Z', 3)")
    conn.commit()
    conn.close()
    return path


def _migration_run_config(job: dg.JobDefinition, sqlite_path: Path) -> dict:
    """Run config naming the file in the job's own path field, whatever the op calls it."""
    for node in job.graph.nodes:
        schema = node.definition.config_schema
        fields = getattr(schema.config_type, "fields", None) if schema is not None else None
        for name in fields or {}:
            if re.search(r"path|file|sqlite", name):
                return {"ops": {node.name: {"config": {name: str(sqlite_path)}}}}
    pytest.fail(f"{job.name} has no op config field naming the SQLite file (looked for path/file/sqlite)")


def test_migration_job_launches_from_the_launchpad_and_succeeds(browser_page, dagster_dev):
    repo = _repo()
    if not repo.has_job(MIGRATION_JOB):
        pytest.fail(f"job {MIGRATION_JOB} is not in the code location (the migration domain is not merged yet)")
    import yaml

    import_dir = Path(dagster_dev.env["AGENTS_PIPELINE_IMPORT_DIR"])   # the only folder the job reads
    config = _migration_run_config(repo.get_job(MIGRATION_JOB), _legacy_file(import_dir / "background_agents.db"))
    _open(browser_page, f"/locations/agents_pipeline/jobs/{MIGRATION_JOB}/playground", "launchpad", "Launch Run")
    browser_page.evaluate("(text) => document.querySelector('.CodeMirror').CodeMirror.setValue(text)",
                          yaml.safe_dump(config))
    browser_page.get_by_text("No errors").wait_for()
    browser_page.screenshot(path=str(ARTIFACTS / "launchpad-config.png"), full_page=True)
    browser_page.get_by_role("button", name="Launch Run").click()
    browser_page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}"))
    run_id = re.search(r"/runs/([0-9a-f-]{36})", browser_page.url).group(1)
    status = wait(client_for(dagster_dev.url), run_id, timeout_s=150)
    if status == "SUCCESS":  # the run page shows it too
        browser_page.get_by_text("Success", exact=True).first.wait_for(timeout=30_000)
    browser_page.screenshot(path=str(ARTIFACTS / "migration-run.png"), full_page=True)
    assert status == "SUCCESS", f"{MIGRATION_JOB} run {run_id} ended {status}; see {ARTIFACTS / 'migration-run.png'}"
    assert MIGRATION_JOB in browser_page.inner_text("body")


# Live markup an agent could have planted: links, images, mail links to the test's hostile domain.
_PLANTED = """() => [...document.querySelectorAll(
  'a[href*="evil.example"], img[src*="evil.example"], img[src="x"], a[href^="mailto:"]')].map(e => e.outerHTML)"""
_CELL_TEXTS = "() => [...document.querySelectorAll('.dagster-markdown td')].map(td => td.textContent)"


def test_agent_text_in_markdown_metadata_shows_as_text(browser_page, dagster_dev):
    """Issue #16, in the real renderer (react-markdown with remark-gfm), not the tests' stand-in:
    an agent's name and failure message in agent_health's table are text, with no link or image."""
    from datetime import timedelta

    import sqlalchemy as sa

    from agents_pipeline_tests.heartbeats.helpers import add_agent, beat

    name = "[x](http://evil.example) www.evil.example"
    message = "![t](http://evil.example/t.png) <img src=x> ops@evil.example | forged"
    engine = sa.create_engine(dagster_dev.env[settings.DATABASE_URL])
    try:
        with engine.begin() as conn:
            now = conn.execute(sa.text("SELECT now()")).scalar_one()
        add_agent(engine, name, period_s=60, grace_s=30, created_at=now - timedelta(minutes=5))
        beat(engine, name, now, kind="fail", message=message)
    finally:
        engine.dispose()
    client = client_for(dagster_dev.url)
    assert wait(client, submit(client, "__ASSET_JOB", asset_keys=["agent_health"]), timeout_s=150) == "SUCCESS"
    _open(browser_page, "/assets/agent_health", "agent-health-markdown", "agents_not_up")
    show = browser_page.get_by_text("[Show Markdown]")
    if show.count():                       # long tables open in a dialog
        show.first.click()
    browser_page.locator(".dagster-markdown td").first.wait_for()
    browser_page.screenshot(path=str(ARTIFACTS / "agent-health-markdown.png"), full_page=True)
    cells = [text.replace("\u200b", "") for text in browser_page.evaluate(_CELL_TEXTS)]
    assert name in cells and message in cells, cells
    assert browser_page.evaluate(_PLANTED) == []
