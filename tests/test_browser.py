"""The pages in a real browser: Debian's Chromium driven by Playwright against a live server on the seeded demo data.
Saves screenshots of the main pages under docs/screenshots/ (shown in the README).

Runs wherever /usr/bin/chromium exists; tests/run.sh installs it (apt-get) and CI sets ODH_REQUIRE_BROWSER=1 so a
missing browser fails instead of skipping."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from catalog.app import create_app
from tests.helpers import live_server
from tests.sharing_helpers import deliver

CHROMIUM = Path("/usr/bin/chromium")
# ODH_SCREENSHOTS=1 refreshes the README's screenshots; otherwise they go to a scratch directory.
SHOTS = (Path(__file__).resolve().parent.parent / "docs" / "screenshots" if os.environ.get("ODH_SCREENSHOTS")
         else Path(os.environ.get("TMPDIR", "/tmp")) / "odh-screenshots")

if not CHROMIUM.exists():
    if os.environ.get("ODH_REQUIRE_BROWSER"):
        raise RuntimeError("ODH_REQUIRE_BROWSER=1 but /usr/bin/chromium is missing (apt-get install chromium)")
    pytest.skip("Debian chromium is not installed (tests/run.sh installs it)", allow_module_level=True)

playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def live(backend, db, settings):
    if backend != "sqlite":
        pytest.skip("the pages are the same on both databases; the browser runs once, on the embedded default")
    deliver(db, settings)
    with live_server(create_app(settings, database=db)) as url:
        yield url


@pytest.fixture
def page(live):
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"])
        context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
        pg = context.new_page()
        pg.base = live
        yield pg
        browser.close()


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def sign_in(page, username: str, password: str | None = None) -> None:
    page.goto(page.base + "/login")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(password or f"demo-{username}-2026")
    page.get_by_role("button", name="登录").click()


def test_anonymous_open_data_portal_and_download(page):
    page.goto(page.base + "/")
    assert page.get_by_text("数据开放率").first.is_visible()
    page.get_by_role("link", name="浏览开放数据").click()
    assert page.get_by_role("heading", name="开放数据").is_visible()
    shot(page, "open-data")
    with page.expect_download() as download:
        page.locator("tr", has_text="空气质量监测站点信息").get_by_role("link", name="CSV").click()
    body = Path(download.value.path()).read_bytes()
    assert body.startswith(b"\xef\xbb\xbf") and body.count(b"\n") == 41


def test_steward_dashboard_search_and_dataset_page(page):
    sign_in(page, "steward")
    assert page.get_by_role("heading", name="驾驶舱").is_visible()
    assert page.get_by_text("数据编目率").is_visible() and page.locator("svg").first.is_visible()
    shot(page, "dashboard")
    page.get_by_role("link", name="数据目录").click()
    page.get_by_label("检索词").fill("信用")
    page.get_by_role("button", name="检索").click()
    assert page.locator("article em").first.inner_text() == "信用"
    page.locator("aside").get_by_role("link", name="有条件共享").first.click()
    assert "share_type=" in page.url
    shot(page, "catalog-search")
    page.goto(page.base + "/catalog/RSJ-00001")
    assert page.get_by_role("heading", name="数据项（一数一源）").is_visible()
    assert page.get_by_role("link", name="人口基本信息").first.is_visible()  # the authoritative source of its IDs
    shot(page, "dataset")


def test_refusal_is_a_friendly_page_and_form_errors_are_inline(page):
    sign_in(page, "gaj_publisher", "not-the-password")
    assert page.get_by_role("alert").inner_text() == "用户名或密码错误"
    assert page.get_by_label("用户名").input_value() == "gaj_publisher"
    shot(page, "login-error")
    sign_in(page, "gaj_publisher")
    page.goto(page.base + "/quality/report")
    assert page.get_by_role("heading", name="没有权限").is_visible()
    assert "steward" in page.get_by_role("alert").inner_text() or "大数据局" in page.get_by_role("alert").inner_text()
    page.get_by_role("button", name="退出").click()
    assert page.get_by_role("link", name="登录", exact=True).is_visible()
