"""Server-rendered pages: sessions with CSRF, the dashboard, catalog search, dataset pages, the open-data portal,
and that a page never shows what the API would refuse."""
from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', html).group(1)


def login(client: TestClient, username: str, password: str | None = None):
    page = client.get("/login")
    return client.post("/login", data={"username": username, "password": password or f"demo-{username}-2026",
                                       "csrf": _csrf(page.text), "next": "/"}, follow_redirects=False)


def test_anonymous_sees_the_welcome_and_only_the_open_catalog(client):
    home = client.get("/")
    assert home.status_code == 200 and "数据开放率" in home.text and "驾驶舱" not in home.text
    catalog = client.get("/catalog", params={"q": "人口"})
    assert catalog.status_code == 200 and "GAJ-00001" not in catalog.text
    hidden = client.get("/catalog/GAJ-00001")
    assert hidden.status_code == 404 and "页面不存在" in hidden.text and "<html" in hidden.text


def test_login_needs_the_forms_csrf_token(client):
    client.get("/login")
    r = client.post("/login", data={"username": "steward", "password": "demo-steward-2026", "csrf": "0" * 40},
                    follow_redirects=False)
    assert r.status_code == 403 and "CSRF" in r.text and "odh_session" not in r.cookies


def test_wrong_password_is_shown_inline(client):
    r = login(client, "steward", "wrong-password")
    assert r.status_code == 401 and "用户名或密码错误" in r.text and 'id="username"' in r.text


def test_steward_logs_in_and_sees_the_dashboard_then_logs_out(client):
    r = login(client, "steward")
    assert r.status_code == 303 and r.cookies.get("odh_session")
    cookie = r.cookies["odh_session"]
    home = client.get("/")
    for name in ("数据编目率", "数据归集率", "数据共享率", "数据开放率", "数据及时整改率"):
        assert name in home.text
    assert "<svg" in home.text and "大数据局 王管理" in home.text
    assert client.get("/catalog/GAJ-00001").status_code == 200  # government users see the whole catalog
    assert client.get("/quality/report").status_code == 200  # the session works on pages…
    assert client.get("/api/v1/me").status_code == 401  # …but the API never reads cookies (no CSRF on the API)
    out = client.post("/logout", data={"csrf": _csrf(home.text)}, follow_redirects=False)
    assert out.status_code == 303
    client.cookies.set("odh_session", cookie)  # replaying the old cookie: the token was revoked
    assert "驾驶舱" not in client.get("/").text


def test_pages_refuse_what_the_api_refuses(client):
    login(client, "gaj_publisher")
    r = client.get("/quality/report")
    assert r.status_code == 403 and "没有权限" in r.text


@pytest.mark.parametrize("share_type", ["无条件共享", "有条件共享"])
def test_catalog_facets_filter_and_link(client, share_type):
    login(client, "steward")
    page = client.get("/catalog", params={"q": "信用", "share_type": share_type})
    assert page.status_code == 200
    tags = re.findall(r'<span class="tag">(无条件共享|有条件共享|不予共享)</span>', page.text)
    assert tags and set(tags) == {share_type}
    assert "share_type=" in page.text and "<em>信用</em>" in page.text


def test_dataset_page_shows_items_sources_and_links(client):
    login(client, "rsj_consumer")
    page = client.get("/catalog/RSJ-00001")
    assert page.status_code == 200
    assert "公民身份号码" in page.text and "引用" in page.text and 'href="/catalog/GAJ-00001"' in page.text
    assert "dcat.ttl" in page.text and "datapackage.json" in page.text


def test_open_portal_page_lists_open_data(client):
    page = client.get("/open")
    assert page.status_code == 200 and "企业登记基本信息" in page.text and "人口基本信息" not in page.text


def test_workspace_shows_each_role_what_waits_for_it(client, db, settings):
    from tests.sharing_helpers import deliver

    deliver(db, settings)
    assert client.get("/workspace", follow_redirects=False).headers["location"] == "/login?next=/workspace"
    login(client, "gaj_publisher")
    page = client.get("/workspace").text
    assert "本部门资源" in page and 'href="/catalog/GAJ-00001/deliver"' in page and "待我审核的共享申请" in page
    assert "SCJG-00001" not in page  # another department's datasets are not listed as mine
    client.cookies.clear()
    login(client, "rsj_consumer")
    page = client.get("/workspace").text
    assert "我的申请" in page and "本部门资源" not in page and "待大数据局审核" not in page
    client.cookies.clear()
    login(client, "steward")
    page = client.get("/workspace").text
    assert "待大数据局审核" in page and "待仲裁的异议工单" in page


def test_dashboard_trend_is_recomputed_from_timestamps(client, db, settings):
    import datetime as dt

    from catalog import indicators
    from tests.sharing_helpers import deliver

    deliver(db, settings)
    with db.session() as s:
        today = indicators.daily_trend(s, days=5)
        now_rates = (indicators.cataloguing_rate(s).overall.rate, indicators.collection_rate(s).overall.rate)
        before_seeding = indicators.daily_trend(s, days=3, now=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3))
    assert len(today) == 5 and today[-1]["day"] == dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()
    assert round(today[-1]["编目率"], 4) == now_rates[0] and round(today[-1]["归集率"], 4) == now_rates[1]
    # Three days ago nothing had been catalogued yet: 编目率 0 against the declared inventory, no 归集率 denominator.
    assert all(p["编目率"] == 0 and p["归集率"] is None for p in before_seeding)
    login(client, "steward")
    home = client.get("/").text
    assert "近 30 天趋势" in home and "<polyline" in home and "各部门指标" in home
    assert "<title>驾驶舱 · opendata-hub</title>" in home  # the charts sit in the page body, not in its title


def test_dataset_page_actions_follow_the_callers_part(client, db, settings):
    from tests.sharing_helpers import deliver

    deliver(db, settings)
    login(client, "gaj_publisher")
    own = client.get("/catalog/GAJ-00001").text
    assert 'href="/catalog/GAJ-00001/deliver"' in own and 'href="/catalog/GAJ-00001/edit"' in own
    assert 'href="/catalog/GAJ-00001/request"' not in own  # nobody requests its own data
    ttl = client.get("/catalog/GAJ-00001/dcat.ttl")  # the session reads the metadata document the link points to
    assert ttl.status_code == 200 and "人口基本信息" in ttl.text
    client.cookies.clear()
    login(client, "rsj_consumer")
    other = client.get("/catalog/GAJ-00001").text
    assert 'href="/catalog/GAJ-00001/request"' in other and 'href="/catalog/GAJ-00001/report"' in other
    assert "/deliver" not in other and "/edit" not in other
    client.cookies.clear()
    assert client.get("/catalog/GAJ-00001/dcat.ttl").status_code == 404  # anonymous: not in the open catalog


def test_a_malformed_address_gets_a_page_not_json(client):
    r = client.get("/catalog", params={"page": "abc"})
    assert r.status_code == 422 and "<html" in r.text and "参数不合法" in r.text
    assert client.get("/api/v1/datasets", params={"page": "abc"}).headers["content-type"].startswith("application/json")


def test_an_outside_user_registers_inline_errors_then_signs_in(client):
    page = client.get("/register")
    bad = client.post("/register", data={"csrf": _csrf(page.text), "username": "x", "password": "short",
                                         "display_name": "张三", "contact": "13800000000"})
    assert bad.status_code == 422 and "用户名至少 3 个字符" in bad.text and "密码至少 10 个字符" in bad.text
    assert 'value="张三"' in bad.text  # what was typed is kept (never the password)
    ok = client.post("/register", data={"csrf": _csrf(bad.text), "username": "zhangsan", "password": "a-long-passphrase",
                                        "display_name": "张三", "organisation": "某大学", "contact": "13800000000"})
    assert ok.status_code == 200 and "注册成功" in ok.text
    taken = client.post("/register", data={"csrf": _csrf(ok.text), "username": "zhangsan", "password": "another-passphrase",
                                           "display_name": "李四", "contact": "13900000000"})
    assert taken.status_code == 409 and "已被使用" in taken.text
    assert login(client, "zhangsan", "a-long-passphrase").status_code == 303
    home = client.get("/").text
    assert "驾驶舱" not in home and "张三（某大学）" in home  # an outside user sees the public face, not the dashboard
    assert client.get("/catalog/GAJ-00001").status_code == 404


def test_registration_needs_the_forms_csrf_token(client):
    client.get("/register")
    r = client.post("/register", data={"csrf": "0" * 40, "username": "lisi", "password": "a-long-passphrase",
                                       "display_name": "李四", "contact": "13900000000"})
    assert r.status_code == 403
