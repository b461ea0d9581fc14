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
from seeds.deliveries import MONITOR_ITEMS, csv_bytes, monitors
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
    page.get_by_role("link", name="空气质量监测站点信息").click()  # the dataset page previews the first rows
    page.locator("#preview:not([hidden])").wait_for()
    assert page.locator("#preview tbody tr").count() == 20 and "jczdmc" in page.locator("#preview thead").inner_text()
    page.go_back()
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
    assert page.get_by_role("banner").get_by_role("link", name="登录", exact=True).is_visible()


# ---------------------------------------------------------------- the whole story, clicked
def story_csv(path: Path, corrected: bool) -> Path:
    """The files `make demo` writes for a person to upload (seeds/deliveries.py monitors)."""
    path.write_bytes(csv_bytes(monitors(corrected=corrected)))
    return path


def switch_user(page, username: str) -> None:
    page.context.clear_cookies()
    sign_in(page, username)
    assert page.get_by_role("heading", name="驾驶舱").is_visible()


def test_the_whole_story_by_clicking(page, live, tmp_path):
    """Provider registers (一数一源 conflict shown inline, switched to a reference) and delivers data with errors →
    the steward sees the ticket and the score → the provider fixes the data and the ticket verifies itself → a consumer
    requests access → the provider approves it narrowed → the steward approves (L3) → the consumer creates a
    credential and reads masked rows in the page's try-out panel."""
    people = monitors()  # people 公安局 registered correctly, so the copies agree with their source (一致性)
    refused = []  # every page that answered 4xx/5xx; only the deliberate 一数一源 conflict may be among them
    page.on("response", lambda r: refused.append((r.status, r.url)) if r.status >= 400 and r.request.resource_type in (
        "document", "xhr", "fetch") else None)

    # 1. 自然资源局 registers the dataset; claiming 公民身份号码 as its own source is refused inline.
    switch_user(page, "zrzy_publisher")
    page.get_by_role("link", name="登记资源").first.click()
    page.get_by_label("资源名称").fill("地质灾害群测群防监测员名单")
    page.get_by_label("资源摘要").fill("全市地质灾害隐患点的群测群防监测员及其负责的隐患点。")
    page.get_by_label("资源分类").select_option("主题库")
    page.get_by_label("共享类型").select_option("有条件共享")
    page.get_by_label("共享条件").fill("用于防灾减灾履职")
    page.get_by_label("开放类型").select_option("禁止开放")
    page.get_by_label("开放条件").fill("含个人信息，不予开放")
    page.get_by_label("更新周期").select_option("每月")
    page.get_by_label("安全分级").select_option("L3")
    while page.locator("#item-rows tr").count() < len(MONITOR_ITEMS):
        page.get_by_role("button", name="添加数据项").click()
    for i, (code, name, element) in enumerate(MONITOR_ITEMS):
        page.locator(f"#items-{i}-code").fill(code)
        page.locator(f"#items-{i}-name").fill(name)
        page.locator(f"#items-{i}-element").fill(element)
        page.locator(f"#items-{i}-source").select_option("authoritative" if code == "sfzhm" else "reference")
    page.locator("#items-0-is_key").check()
    page.locator("#items-0-required").check()
    page.get_by_role("button", name="登记资源").click()
    alert = page.get_by_role("alert").first
    assert "公安局" in alert.inner_text()
    assert page.locator("#items-0-name").input_value() == "监测员公民身份号码"  # nothing typed is lost
    shot(page, "register-conflict")
    page.get_by_role("button", name="改为引用 GAJ-00001").click()
    if page.get_by_role("button", name="登记资源").is_visible():
        page.get_by_role("button", name="登记资源").click()
    assert page.get_by_text("资源已登记").is_visible()
    code = page.locator("h1 .muted").inner_text().strip()
    assert code.startswith("ZRZY-")

    # 2. It delivers a file with three 灾害类型代码 outside the code list.
    page.get_by_role("link", name="归集数据").click()
    page.set_input_files("#deliver-file", str(story_csv(tmp_path / "first.csv", corrected=False)))
    page.get_by_role("button", name="上传并发布").click()
    page.get_by_role("heading", name="本次归集结果").wait_for()
    assert page.get_by_text("v1").first.is_visible()
    shot(page, "deliver-result")

    # 3. The steward sees the ticket, routed to 自然资源局 (the code list's source), and the dataset's score.
    switch_user(page, "steward")
    page.goto(page.base + f"/tickets?dataset={code}")
    row = page.locator("tr", has_text="zhlxdm").first
    assert "自然资源" in row.inner_text()
    row.get_by_role("link").first.click()
    assert people[0]["sfzhm"] in page.content()  # the failing rows' keys (the 主键 is the ID number) are listed
    shot(page, "ticket")
    page.goto(page.base + "/quality/report")
    assert page.get_by_text("地质灾害群测群防监测员名单").first.is_visible()
    shot(page, "quality-report")

    # 4. 自然资源局 fixes the data: the new version passes the rule and the ticket verifies itself.
    switch_user(page, "zrzy_publisher")
    page.get_by_role("link", name="工作台").click()
    assert page.locator("tr", has_text=code).get_by_role("link", name="归集数据").is_visible()
    shot(page, "workspace")
    page.goto(page.base + f"/catalog/{code}/deliver")
    page.set_input_files("#deliver-file", str(story_csv(tmp_path / "fixed.csv", corrected=True)))
    page.get_by_role("button", name="上传并发布").click()
    page.get_by_role("heading", name="本次归集结果").wait_for()
    assert page.get_by_text("v2").first.is_visible()
    page.goto(page.base + f"/tickets?dataset={code}&status=closed")  # verified on v2, then closed
    assert page.locator("tr", has_text="zhlxdm").count() == 1

    # 5. 人力社保局 requests four of the five fields…
    switch_user(page, "rsj_consumer")
    page.goto(page.base + f"/catalog/{code}")
    page.get_by_role("link", name="申请共享").click()
    page.get_by_label("用途（必填）").fill("核验监测员社保参保情况")
    page.get_by_label("依据（法律法规或履职依据，必填）").fill("《地质灾害防治条例》第十五条")
    for field in ("sfzhm", "xm", "yhdbh", "zhlxdm", "wxrs"):
        page.locator(f"#req-f-{field}").check()
    page.get_by_role("button", name="提交共享申请").click()
    assert page.get_by_text("待提供方审核").first.is_visible()
    request_url = page.url.split("?")[0]

    # 6. …自然资源局 approves it narrowed (no 威胁人数), then the steward approves (L3 data).
    switch_user(page, "zrzy_publisher")
    page.goto(request_url)
    page.locator("#dec-f-wxrs").uncheck()
    page.get_by_label("审核意见（驳回、退回时必填）").fill("同意，威胁人数不在共享范围")
    shot(page, "share-review")
    page.get_by_role("button", name="同意", exact=True).click()
    assert page.get_by_text("待大数据局审核").first.is_visible()
    switch_user(page, "steward")
    page.goto(request_url)
    page.get_by_role("button", name="同意", exact=True).click()
    assert page.get_by_text("已通过").first.is_visible()

    # 7. The consumer creates a credential (shown once) and reads masked rows in the try-out panel.
    switch_user(page, "rsj_consumer")
    page.goto(request_url)
    page.get_by_role("link", name="查看授权").click()
    page.get_by_role("button", name="新建访问凭证").click()
    assert page.get_by_text("只显示这一次").first.is_visible()
    secret = page.locator("#new-credential").input_value()
    assert secret.startswith("odg_")
    page.locator("#try-run").click()
    page.locator("#try-result:not([hidden])").wait_for()
    headers = page.locator("#try-result thead th").all_inner_texts()
    assert not any("wxrs" in h or "威胁人数" in h for h in headers)  # narrowed away
    table = page.locator("#try-result tbody").inner_text()
    first = people[0]
    assert first["sfzhm"] not in table and first["xm"] not in table  # masked
    assert first["sfzhm"][:6] in table and "*" in table
    shot(page, "credential-tryout")
    page.reload()
    assert secret not in page.content()
    assert [status for status, _ in refused] == [409], refused  # no error page anywhere in the story


PHONE_PAGES = ["/", "/catalog?q=人口", "/catalog/GAJ-00001", "/workspace", "/requests", "/grants", "/tickets",
               "/quality/report", "/audit", "/steward/inventory", "/datasets/new", "/catalog/GAJ-00001/deliver",
               "/open"]


def test_phone_width_and_keyboard(live):
    """At 390 px nothing makes the page itself scroll sideways (wide tables scroll inside their box), and a person can
    sign in and reach the workspace with the keyboard alone."""
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"])
        context = browser.new_context(locale="zh-CN", viewport={"width": 390, "height": 844}, is_mobile=True)
        page = context.new_page()
        page.goto(live + "/login")
        page.keyboard.press("Tab")  # 跳到正文 first: the skip link
        assert page.evaluate("document.activeElement.textContent") == "跳到正文"
        page.get_by_label("用户名").focus()
        page.keyboard.type("steward")
        page.keyboard.press("Tab")
        page.keyboard.type("demo-steward-2026")
        page.keyboard.press("Enter")
        page.get_by_role("heading", name="驾驶舱").wait_for()
        wide = {}
        for path in PHONE_PAGES:
            response = page.goto(live + path)
            assert response.status == 200, path
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            if overflow > 1:
                wide[path] = overflow
            assert page.title().endswith("· opendata-hub") and "<" not in page.title(), path  # well-formed page
            assert page.locator("body > header.top").count() == 1, path  # nothing pushed above the header
        page.base = live
        page.context.clear_cookies()
        sign_in(page, "rsj_consumer")
        for path in ("/catalog/GAJ-00001/request", "/workspace", "/requests"):
            assert page.goto(live + path).status == 200, path
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            if overflow > 1:
                wide[path] = overflow
        assert not wide, f"pages wider than the phone: {wide}"
        page.goto(live + "/")
        shot(page, "phone-dashboard")
        browser.close()
