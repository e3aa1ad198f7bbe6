"""The dashboard in a real headless Chromium (Debian's), driven by Playwright, on a real server."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest
import requests

from tests.server import ServerProcess

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REFRESH = 3.0  # the page's refresh interval


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    if not os.path.exists(CHROMIUM):
        pytest.skip("chromium is not installed (./test.sh installs Debian's chromium)")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


def shoot(page, name: str) -> None:
    """Keep a screenshot when DOMAINSTATS_SCREENSHOTS names a folder (docs/, say)."""
    folder = os.environ.get("DOMAINSTATS_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def test_dashboard_end_to_end(browser, tmp_path):
    server = ServerProcess(tmp_path / "data").wait_ready()
    try:
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        seen = []
        page.on("request", lambda request: seen.append(request.url))
        page.goto(f"{server.url}/")
        empty = page.locator("#top-empty")
        empty.wait_for(state="visible", timeout=10_000)
        assert "No clicks in the last minute" in empty.inner_text()

        now = int(time.time())
        body = {"timestamp": now, "hot.example": 90, "warm.example": 30, "cool.example": 5}
        assert requests.post(f"{server.url}/domains", json=body, timeout=5).ok
        started = time.monotonic()
        page.wait_for_selector("#top tbody tr >> text=hot.example", timeout=10_000)
        assert time.monotonic() - started < REFRESH + 2  # the refresh plus the 1 s rebuild
        rows = page.locator("#top tbody tr")
        assert rows.count() == 3
        assert rows.nth(0).inner_text().split("\t")[:3] == ["hot.example", "90", "72.0 %"]

        for period in ("hour", "day"):
            page.click(f"button[data-period={period}]")
            assert page.get_attribute(f"button[data-period={period}]", "aria-pressed") == "true"
            assert page.get_attribute("button[data-period=min]", "aria-pressed") == "false"
            page.wait_for_selector("#top tbody tr >> text=hot.example", timeout=12_000)
        page.select_option("#by", "bytes_out")
        page.wait_for_selector("#top-empty >> text=No traffic", timeout=10_000)
        page.select_option("#by", "clicks")

        rule = {"name": "Busy site", "domain": "*", "metric": "clicks", "window": "1m",
                "threshold": 0.5}  # fmt: skip
        assert requests.post(f"{server.url}/alerts/rules", json=rule, timeout=5).status_code == 201
        page.wait_for_selector("#firing >> text=Busy site", timeout=10_000)
        page.wait_for_function("document.querySelector('#chart canvas') !== null", timeout=10_000)
        shoot(page, "dashboard")

        page.click("#top tbody tr >> text=hot.example")
        page.wait_for_url("**/ui/domains/hot.example")
        page.wait_for_selector("#totals tbody tr", timeout=10_000)
        drawn = page.wait_for_function(
            """() => {
              const canvas = document.querySelector('#chart canvas');
              if (!canvas || !canvas.width) return 0;
              const context = canvas.getContext('2d');
              const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
              let inked = 0;
              for (let i = 3; i < data.length; i += 4) if (data[i] > 0) inked++;
              return inked;
            }""",
            timeout=10_000,
        ).json_value()
        assert drawn > 500, "the chart's canvas should be drawn on"
        box = page.locator("#chart .u-over").bounding_box()
        page.mouse.move(box["x"] + box["width"] - 3, box["y"] + box["height"] / 2)
        tooltip = page.locator("#chart .tooltip")
        tooltip.wait_for(state="visible", timeout=5_000)
        assert "hot.example: 90" in tooltip.inner_text()
        assert "90" in page.locator("#totals tbody tr").first.inner_text()
        shoot(page, "domain")

        page.set_viewport_size({"width": 390, "height": 844})  # a phone
        page.goto(f"{server.url}/")
        page.wait_for_selector("#top tbody tr", timeout=10_000)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 400, "no sideways scrolling on a phone"
        shoot(page, "phone")

        assert all(url.startswith(server.url) for url in seen), [
            url for url in seen if not url.startswith(server.url)
        ]

        server.stop(signal.SIGTERM)
        page.wait_for_selector("#offline", state="visible", timeout=10_000)
        assert "unreachable" in page.inner_text("#offline")
        page.close()
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()
