"""The Dagster UI as a data engineer uses it: the real webserver (``dagster dev``) on loopback,
driven in headless Chromium (Debian's, through Playwright). It checks the asset graph shows the
groups and the dbt models, launches a materialization by clicking, waits for the run to succeed,
and checks the asset checks and the run metadata are shown. Screenshots go to docs/images/ (docs/dagster.md
shows them).

Chromium missing: the test is skipped, unless REQUIRE_BROWSER=1 (CI), where it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from orchestration.core import settings
from tests.conftest import SEEDS, WAREHOUSE_FILE_NAME

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# The screenshots of docs/dagster.md are refreshed with UPDATE_SCREENSHOTS=1; otherwise a test run leaves the tree alone.
SCREENSHOTS = (settings.PROJECT_ROOT / "docs" / "images" if os.environ.get("UPDATE_SCREENSHOTS") == "1"
               else Path(tempfile.gettempdir()) / "identity-warehouse-screenshots")
SCREENSHOTS.mkdir(parents=True, exist_ok=True)
GROUPS = ["landing", "staging", "identity", "profiles", "traits_and_audiences", "exports"]
RUN_TIMEOUT_S = 900


def _browser_or_skip() -> None:
    missing = [what for what, ok in (("/usr/bin/chromium (apt-get install chromium)", CHROMIUM.exists()),
                                     ("the playwright package (pip install -e '.[dev]')", _has_playwright()))
               if not ok]
    if missing:
        message = "browser test needs " + " and ".join(missing)
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(message + " (REQUIRE_BROWSER=1)")
        pytest.skip(message)


def _has_playwright() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DagsterServer:
    def __init__(self, url: str, process: subprocess.Popen, log: Path):
        self.url, self.process, self.log = url, process, log

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        request = urllib.request.Request(f"{self.url}/graphql", data=json.dumps(
            {"query": query, "variables": variables or {}}).encode(), headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.load(response)
        assert "errors" not in answer, answer
        return answer["data"]

    def runs(self) -> list[dict]:
        return self.graphql("{ runsOrError { ... on Runs { results { runId status jobName } } } }")["runsOrError"]["results"]

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture(scope="module")
def dagster_server(tmp_path_factory):
    _browser_or_skip()
    root = tmp_path_factory.mktemp("dagster-ui")
    home, landing = root / "dagster_home", root / "landing"
    home.mkdir()
    shutil.copy(settings.PROJECT_ROOT / "dagster_home" / "dagster.yaml", home)  # the run queue and the duckdb pool
    shutil.copytree(SEEDS / "events" / "stories", landing / "events" / "stories")
    shutil.copytree(SEEDS / "contacts", landing / "contacts")
    shutil.copytree(SEEDS / "snowplow", landing / "snowplow")
    env = {**os.environ, "DAGSTER_HOME": str(home), "LANDING_DIR": str(landing),
           "DUCKDB_PATH": str(root / "warehouse" / WAREHOUSE_FILE_NAME), "EXPORT_DIR": str(root / "exports"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "DAGSTER_DISABLE_TELEMETRY": "true", "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"}
    dagster = str(Path(sys.executable).with_name("dagster"))
    # The sensor would start a run as soon as the daemon sees the landing files: the run under test
    # is the one launched by clicking.
    subprocess.run([dagster, "sensor", "stop", "new_landing_files_sensor", "-m", "orchestration.location.definitions"],
                   cwd=settings.PROJECT_ROOT, env=env, check=True, capture_output=True, timeout=300)
    port = _free_port()
    log = root / "dagster-dev.log"
    with log.open("w") as log_file:
        process = subprocess.Popen([dagster, "dev", "-m", "orchestration.location.definitions", "-h", "127.0.0.1", "-p", str(port)],
                                   cwd=settings.PROJECT_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    server = DagsterServer(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{server.url}/server_info", timeout=5):
                    break
            except OSError:
                assert process.poll() is None, f"dagster dev exited: {server.log_tail()}"
                assert time.monotonic() < deadline, f"the webserver did not answer in 180 s: {server.log_tail()}"
                time.sleep(1)
        yield server
    finally:
        os.killpg(process.pid, signal.SIGINT)  # dagster dev stops the webserver, daemon and code server it started
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def page(dagster_server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        # Large enough that the whole asset graph, two groups expanded, is drawn with its names
        # (zoomed out further, the graph leaves them out).
        page = browser.new_page(viewport={"width": 2400, "height": 1500})
        page.set_default_timeout(60_000)
        # The first visit's newsletter dialog can open at any moment and cover the page: dismiss it
        # whenever it shows, before any action.
        page.add_locator_handler(page.get_by_role("button", name="Skip"), lambda skip: skip.click())
        yield page
        browser.close()


def _open(page, url: str) -> None:
    page.goto(url)
    page.wait_for_load_state("networkidle")


def test_asset_graph_shows_the_groups_and_dbt_models(dagster_server, page):
    expanded = ",".join(f"global@global:{group}" for group in ("identity", "profiles"))
    _open(page, f"{dagster_server.url}/asset-groups?expanded={expanded}")
    page.get_by_role("button", name="Materialize all").wait_for()
    graph = page.locator("body")
    for group in GROUPS:
        assert page.get_by_text(group, exact=True).count() >= 1, group
    for model in ("profile_events", "identity_links", "junk_identifiers", "profile_merges", "int_identifiers"):
        page.get_by_text(model, exact=True).first.wait_for()
    assert "Materialize all" in graph.inner_text()


def test_a_materialization_launched_from_the_ui_succeeds(dagster_server, page):
    assert dagster_server.runs() == []  # nothing started by itself
    _open(page, f"{dagster_server.url}/asset-groups")
    page.get_by_role("button", name="Materialize all").click()
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not (runs := dagster_server.runs()) or runs[0]["status"] not in ("SUCCESS", "FAILURE", "CANCELED"):
        assert time.monotonic() < deadline, f"run not finished in {RUN_TIMEOUT_S} s: {runs}\n{dagster_server.log_tail()}"
        time.sleep(3)
    assert len(runs) == 1 and runs[0]["status"] == "SUCCESS", (runs, dagster_server.log_tail())
    _open(page, f"{dagster_server.url}/runs/{runs[0]['runId']}")
    page.get_by_text("Success", exact=False).first.wait_for()
    page.screenshot(path=str(SCREENSHOTS / "dagster-run.png"))
    # the graph after the build, with the profiles group open (readable at this size)
    _open(page, f"{dagster_server.url}/asset-groups?expanded=global@global:profiles")
    page.get_by_text("profile_events", exact=True).first.wait_for()
    page.wait_for_timeout(1000)  # let the graph settle after its layout
    page.screenshot(path=str(SCREENSHOTS / "dagster-asset-graph.png"))


def test_asset_checks_and_run_metadata_are_shown(dagster_server, page):
    _open(page, f"{dagster_server.url}/assets/marts/profile_identifiers?view=checks")
    page.get_by_text("Passed", exact=True).first.wait_for()
    shown = page.inner_text("body")
    for check in ("unique_combination_of_columns_profile_identifiers_identifier_type__identifier_value",
                  "relationships_profile_identifiers_profile_id__profile_id__ref_profiles_"):
        assert check in shown, check
    assert "Failed" not in shown
    page.screenshot(path=str(SCREENSHOTS / "dagster-asset-checks.png"))

    _open(page, f"{dagster_server.url}/assets/marts/profiles?view=events")
    page.get_by_text("profile_sizes", exact=True).first.wait_for()
    page.get_by_text("known_profiles", exact=True).first.wait_for()
    page.screenshot(path=str(SCREENSHOTS / "dagster-profile-metadata.png"))

    materialization = dagster_server.graphql("""
        query ($key: AssetKeyInput!) { assetOrError(assetKey: $key) { ... on Asset { assetMaterializations(limit: 1) {
            metadataEntries { label ... on IntMetadataEntry { intValue } ... on MarkdownMetadataEntry { mdStr } } } } } }""",
        {"key": {"path": ["marts", "profiles"]}})["assetOrError"]["assetMaterializations"][0]
    entries = {entry["label"]: entry for entry in materialization["metadataEntries"]}
    assert entries["profiles"]["intValue"] > 0 and entries["known_profiles"]["intValue"] > 0
    assert "identifiers per profile" in entries["profile_sizes"]["mdStr"]
    assert "dagster/column_schema" in entries
