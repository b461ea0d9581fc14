"""Pages of 问题数据工单, 数据异议, the steward's quality report, the audit log and the cataloguing gaps: each shows what
its API twin shows to the same user — no more — and its forms act through the same service functions."""
from __future__ import annotations

import datetime as dt
import html
import re

import pytest
from sqlalchemy import select, text, update

from catalog.enums import DatasetStatus
from catalog.models import Dataset, InventoryEntry
from catalog.web import quality_pages
from quality.models import ProblemTicket
from seeds.deliveries import csv_bytes, population
from tests.conftest import bearer
from tests.sharing_helpers import approved_grant, deliver, request, rows, version_table
from tests.test_web import _csrf, login


@pytest.fixture
def delivered(db, settings):
    """The four demo deliveries with deliberate errors: their quality runs open tickets (routed by 一数一源)."""
    deliver(db, settings)


def api_tickets(client, token, **params):
    r = client.get("/api/v1/tickets", params={"page_size": 100, **params}, headers=bearer(token))
    assert r.status_code == 200, r.text
    return r.json()["items"]


def ticket_of(client, tokens, code, rule_id):
    return next(t for t in api_tickets(client, tokens["steward"], dataset=code) if t["rule_id"] == rule_id)


def api_ticket(client, tokens, ticket_id):
    return client.get(f"/api/v1/tickets/{ticket_id}", headers=bearer(tokens["steward"])).json()


def listed_tickets(page_html: str) -> set[int]:
    return {int(n) for n in re.findall(r'<tr data-ticket="(\d+)"', page_html)}


def failing_rows(page_html: str) -> list[tuple[str, str | None]]:
    """(key, value) of the failing-records table; value None when the page shows no value column."""
    out = []
    for row in re.findall(r'<tr><td class="num">\d+</td>(.*?)</tr>', page_html, flags=re.S):
        cells = re.findall(r"<td>(.*?)</td>", row, flags=re.S)
        key = html.unescape(re.sub(r"<[^>]+>", "", cells[0]))
        value = html.unescape(re.sub(r"<[^>]+>", "", cells[1])) if len(cells) > 1 else None
        out.append((key, value))
    return out


def transition(client, ticket_id, to, comment, page_html=None):
    page_html = page_html or client.get(f"/tickets/{ticket_id}").text
    return client.post(f"/tickets/{ticket_id}/transition", data={"to": to, "comment": comment,
                                                                  "csrf": _csrf(page_html)}, follow_redirects=False)


# ---------------------------------------------------------------- list and detail
def test_the_assigned_department_sees_its_tickets_and_all_failing_keys_with_their_values(client, tokens, delivered, db,
                                                                                       settings):
    login(client, "gaj_publisher")
    listing = client.get("/tickets")
    assert listing.status_code == 200
    assert listed_tickets(listing.text) == {t["id"] for t in api_tickets(client, tokens["gaj_publisher"])}
    assert "已分派" in listing.text and "示范市民政局" in listing.text  # hjdxzqhdm's ticket went to its source

    ticket = ticket_of(client, tokens, "GAJ-00001", "in_set:xbdm")
    page = client.get(f"/tickets/{ticket['id']}")
    assert page.status_code == 200
    for fact in ("性别代码", "DE0", "规范性", "质量检查发现", "示范市公安局", "v1"):
        assert fact in page.text
    run = client.get("/api/v1/datasets/GAJ-00001/quality", headers=bearer(tokens["gaj_publisher"])).json()
    keys = client.get(f"/api/v1/datasets/GAJ-00001/quality/runs/{run['id']}/failing",
                      params={"rule_id": "in_set:xbdm"}, headers=bearer(tokens["gaj_publisher"])).json()["keys"]
    shown = failing_rows(page.text)
    assert [k for k, _ in shown] == keys and keys
    truth = version_table(db, settings, "GAJ-00001").to_pylist()
    for key, value in shown:  # the offending gender code, read from the published version
        expected = next(r["xbdm"] for r in truth if r["sfzhm"] == key)
        assert value == ("（空）" if expected in (None, "") else str(expected))
        assert expected not in ("1", "2")


def test_failing_keys_page_through_every_failing_row(client, tokens, delivered, monkeypatch):
    monkeypatch.setattr(quality_pages, "KEYS_PER_PAGE", 2)
    ticket = ticket_of(client, tokens, "GAJ-00001", "cn_resident_id:sfzhm")
    assert ticket["failing_count"] == 3
    login(client, "steward")
    first = client.get(f"/tickets/{ticket['id']}")
    second = client.get(f"/tickets/{ticket['id']}", params={"page": 2})
    assert f'href="/tickets/{ticket["id"]}?page=2#failing-h"' in first.text and "第 1 / 2 页" in first.text
    keys = [k for k, _ in failing_rows(first.text) + failing_rows(second.text)]
    assert len(keys) == 3 and set(keys) == set(ticket["sample_keys"])


def test_a_source_department_of_another_departments_dataset_sees_sample_keys_only(client, tokens, delivered):
    # RSJ-00001's bad ID numbers are 公安局's to fix (一数一源), but the rows are 人社局's: like the API, 公安局 gets
    # the ticket's sample keys, not the full failing list or the values.
    ticket = ticket_of(client, tokens, "RSJ-00001", "cn_resident_id:sfzhm")
    login(client, "gaj_publisher")
    page = client.get(f"/tickets/{ticket['id']}")
    assert page.status_code == 200 and "示范市人力资源和社会保障局" in page.text
    for key in ticket["sample_keys"]:
        assert key in page.text
    assert "的值" not in page.text and "完整清单及其数值仅向资源提供部门与大数据局开放" in page.text
    r = client.get(f"/api/v1/datasets/RSJ-00001/quality/runs/{ticket['latest_run_id']}/failing",
                   params={"rule_id": ticket["rule_id"]}, headers=bearer(tokens["gaj_publisher"]))
    assert r.status_code == 403  # the API refuses it the full list too


def test_another_department_gets_the_refusal_page_and_no_keys(client, tokens, delivered):
    ticket = ticket_of(client, tokens, "GAJ-00001", "cn_resident_id:sfzhm")
    login(client, "wjw_publisher")
    assert listed_tickets(client.get("/tickets").text) == set()
    page = client.get(f"/tickets/{ticket['id']}")
    assert page.status_code == 404 and "页面不存在" in page.text
    for key in ticket["sample_keys"]:
        assert key not in page.text
    assert ticket["title"] not in page.text
    refused = transition(client, ticket["id"], "in_progress", "不是我们的工单", client.get("/tickets").text)
    assert refused.status_code == 404
    assert api_ticket(client, tokens, ticket["id"])["status"] == "assigned"
    mistyped = client.get("/tickets/abc")
    assert mistyped.status_code == 404 and "页面不存在" in mistyped.text
    client.cookies.clear()
    anonymous = client.get(f"/tickets/{ticket['id']}", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login?next=")


def test_list_filters_by_status_dataset_and_overdue(client, tokens, delivered, db):
    late = ticket_of(client, tokens, "SCJG-00001", "in_set:jyztdm")
    with db.session() as s:
        s.execute(update(ProblemTicket).where(ProblemTicket.id == late["id"])
                  .values(deadline=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)))
        s.commit()
    login(client, "scjg_publisher")
    overdue = client.get("/tickets", params={"overdue": "1"})
    assert listed_tickets(overdue.text) == {late["id"]} and "已逾期" in overdue.text
    assert listed_tickets(overdue.text) == {t["id"] for t in api_tickets(client, tokens["scjg_publisher"], overdue=True)}
    by_dataset = client.get("/tickets", params={"dataset": "RSJ-00001"})
    assert listed_tickets(by_dataset.text) == {
        t["id"] for t in api_tickets(client, tokens["scjg_publisher"], dataset="RSJ-00001")} != set()
    assert listed_tickets(client.get("/tickets", params={"status": "closed"}).text) == set()
    assert api_ticket(client, tokens, late["id"])["escalated_at"]  # looking escalated it, as the API does


# ---------------------------------------------------------------- acting on a ticket
def test_the_assigned_publisher_moves_the_ticket_and_the_event_is_recorded(client, tokens, delivered):
    ticket = ticket_of(client, tokens, "GAJ-00001", "not_null:xm")
    login(client, "gaj_publisher")
    page = client.get(f"/tickets/{ticket['id']}")
    buttons = re.findall(r'<button type="submit" name="to" value="(\w+)"[^>]*>([^<]+)</button>', page.text)
    assert buttons == [("in_progress", "开始处理"), ("fixed", "已整改"), ("disputed", "提出异议（数据无误）")]
    as_api = client.get(f"/api/v1/tickets/{ticket['id']}", headers=bearer(tokens["gaj_publisher"])).json()
    assert [to for to, _ in buttons] == as_api["allowed_transitions"]
    moved = transition(client, ticket["id"], "in_progress", "已安排核查户籍底册", page.text)
    assert moved.status_code == 303 and moved.headers["location"] == f"/tickets/{ticket['id']}?done=in_progress"
    after = client.get(moved.headers["location"])
    assert "工单现为「整改中」" in after.text
    event = re.findall(r'<tr class="event">(.*?)</tr>', after.text, flags=re.S)[-1]
    assert "gaj_publisher" in event and "示范市公安局" in event and "已分派 → 整改中" in event
    assert "已安排核查户籍底册" in event
    api = api_ticket(client, tokens, ticket["id"])
    assert api["status"] == "in_progress" and api["events"][-1]["comment"] == "已安排核查户籍底册"
    assert re.findall(r'name="to" value="(\w+)"', after.text) == ["fixed", "disputed"]


def test_illegal_and_unauthorised_transitions_are_refused_inline(client, tokens, delivered):
    ticket = ticket_of(client, tokens, "GAJ-00001", "not_null:xm")
    login(client, "gaj_publisher")
    illegal = transition(client, ticket["id"], "closed", "直接关掉")
    assert illegal.status_code == 409 and 'role="alert"' in illegal.text and "可转为" in illegal.text
    assert ">直接关掉</textarea>" in illegal.text  # what was typed is kept
    no_comment = transition(client, ticket["id"], "in_progress", "   ")
    assert no_comment.status_code == 409 and "须填写说明" in no_comment.text
    forged = client.post(f"/tickets/{ticket['id']}/transition", data={"to": "in_progress", "comment": "x",
                                                                       "csrf": "0" * 40})
    assert forged.status_code == 403 and "CSRF" in forged.text
    # The steward may see the ticket but only the source department may start work on it: no buttons, a refusal.
    login(client, "steward")
    page = client.get(f"/tickets/{ticket['id']}")
    assert page.status_code == 200 and 'name="to"' not in page.text
    refused = transition(client, ticket["id"], "in_progress", "代为处理", page.text)
    assert refused.status_code == 403 and "只有被分派的权威来源部门" in refused.text
    assert api_ticket(client, tokens, ticket["id"])["status"] == "assigned"
    assert [e["to_status"] for e in api_ticket(client, tokens, ticket["id"])["events"]] == ["open", "assigned"]


def test_a_dispute_reaches_the_stewards_report_and_is_arbitrated_on_the_ticket_page(client, tokens, delivered):
    ticket = ticket_of(client, tokens, "GAJ-00001", "unique:sfzhm")
    login(client, "gaj_publisher")
    assert transition(client, ticket["id"], "disputed", "两条记录为同一人的户籍迁移，非重复").status_code == 303
    login(client, "steward")
    report = client.get("/quality/report")
    dispute = re.search(rf'<tr data-dispute="{ticket["id"]}">(.*?)</tr>', report.text, flags=re.S)
    assert dispute and "两条记录为同一人的户籍迁移" in dispute.group(1)
    assert f'href="/tickets/{ticket["id"]}#act-h"' in dispute.group(1)
    page = client.get(f"/tickets/{ticket['id']}")
    assert re.findall(r'name="to" value="(\w+)"[^>]*>([^<]+)<', page.text) == [
        ("assigned", "驳回异议（退回来源部门整改）"), ("closed", "采纳异议并关闭")]
    assert transition(client, ticket["id"], "closed", "经核实为户籍迁移，异议成立", page.text).status_code == 303
    assert api_ticket(client, tokens, ticket["id"])["status"] == "closed"
    assert f'data-dispute="{ticket["id"]}"' not in client.get("/quality/report").text


# ---------------------------------------------------------------- 反馈问题
def test_a_consumer_reports_a_problem_and_it_is_routed_as_the_api_routes_it(client, tokens, delivered):
    login(client, "scjg_publisher")  # 市场监管局 as a consumer of 人社局's data
    form = client.get("/catalog/RSJ-00001/report")
    assert form.status_code == 200 and 'name="description"' in form.text and 'value="sfzhm"' in form.text
    short = client.post("/catalog/RSJ-00001/report", data={"item_code": "sfzhm", "description": "错",
                                                           "csrf": _csrf(form.text)})
    assert short.status_code == 422 and "4 至 4000" in short.text and 'aria-invalid="true"' in short.text
    assert '<option value="sfzhm" selected>' in short.text
    unknown = client.post("/catalog/RSJ-00001/report", data={"item_code": "nope", "description": "数据有误，请核实",
                                                             "csrf": _csrf(form.text)})
    assert unknown.status_code == 404 and "没有数据项 nope" in unknown.text and "数据有误，请核实" in unknown.text
    sent = client.post("/catalog/RSJ-00001/report", data={
        "item_code": "sfzhm", "description": "张某的身份号码第 17 位与性别不符", "csrf": _csrf(form.text)},
        follow_redirects=False)
    assert sent.status_code == 303
    ticket_id = int(re.fullmatch(r"/tickets/(\d+)\?done=reported", sent.headers["location"]).group(1))
    shown = client.get(sent.headers["location"])
    assert shown.status_code == 200 and "已收到您的反馈" in shown.text and "张某的身份号码" in shown.text
    assert 'name="to"' not in shown.text  # the reporter follows the ticket; it does not act on it
    via_form = api_ticket(client, tokens, ticket_id)
    via_api = client.post("/api/v1/datasets/RSJ-00001/problems", json={
        "item_code": "sfzhm", "description": "同一问题经接口反馈"}, headers=bearer(tokens["scjg_publisher"])).json()
    assert via_form["origin"] == "report" and via_form["status"] == "assigned"
    for field in ("assigned_department", "first_receiver_department", "element", "item_code"):
        assert via_form[field] == via_api[field]
    assert via_form["assigned_department"] == "示范市公安局"  # the source of 公民身份号码, not the dataset's owner
    assert via_form["first_receiver_department"] == "示范市人力资源和社会保障局"


def test_the_public_reports_on_open_data_only_and_must_leave_a_contact(client, tokens, delivered):
    assert client.get("/catalog/GAJ-00001/report").status_code == 404  # not open: not there for the public
    form = client.get("/catalog/STHJ-00001/report")
    assert form.status_code == 200 and "匿名反馈需留下电话或邮箱" in form.text
    anonymous = client.post("/catalog/STHJ-00001/report", data={"description": "站点经纬度明显错误，位于海上",
                                                                "csrf": _csrf(form.text)})
    assert anonymous.status_code == 403 and "联系方式" in anonymous.text and "位于海上" in anonymous.text
    sent = client.post("/catalog/STHJ-00001/report", data={"description": "站点经纬度明显错误，位于海上",
                                                           "contact": "13800000000", "csrf": _csrf(form.text)},
                       follow_redirects=False)
    assert sent.status_code == 303
    thanks = client.get(sent.headers["location"])
    assert thanks.status_code == 200 and "感谢您的反馈" in thanks.text
    reported = [t for t in api_tickets(client, tokens["steward"], dataset="STHJ-00001") if t["origin"] == "report"]
    assert len(reported) == 1 and reported[0]["description"] == "站点经纬度明显错误，位于海上"


# ---------------------------------------------------------------- the steward's quality report
def test_the_steward_report_shows_dimensions_trend_and_exports_csv(client, tokens, delivered):
    r = client.post("/api/v1/datasets/GAJ-00001/collections",
                    files={"file": ("人口基本信息-修正.csv", csv_bytes(population(corrected=True)))},
                    headers=bearer(tokens["gaj_publisher"]))
    assert r.status_code == 201, r.text
    login(client, "steward")
    page = client.get("/quality/report")
    assert page.status_code == 200 and "<h1>数据质量报告</h1>" in page.text
    for dimension in ("规范性", "完整性", "准确性", "唯一性", "一致性", "时效性"):
        assert f'<th scope="col" class="num">{dimension}</th>' in page.text
    overall = re.search(r'<tr class="overall">(.*?)</tr>', page.text, flags=re.S).group(1)
    assert "全市（各资源平均）" in overall and '<td class="num">4</td>' in overall  # four datasets checked
    charts = re.findall(r'<svg class="trend".*?</svg>', page.text, flags=re.S)
    assert len(charts) == 4  # one per checked dataset
    gaj = next(c for c in charts if "人口基本信息" in c)
    assert gaj.count("<polyline") >= 2 and "v1" in gaj and "v2" in gaj  # two versions: lines, overall and dimensions
    json_report = client.get("/api/v1/quality/report", headers=bearer(tokens["steward"])).json()
    row = next(r for r in json_report["datasets"] if r["dataset_code"] == "GAJ-00001")
    assert f"v1 综合 {row['trend'][0]['overall_score']}；v2 综合 {row['trend'][1]['overall_score']}" in gaj
    assert 'href="/quality/report.csv"' in page.text and 'href="/quality/datadocs/index.html"' in page.text
    csv = client.get("/quality/report.csv")
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert csv.text == client.get("/api/v1/quality/report.csv", headers=bearer(tokens["steward"])).text


def test_the_steward_pages_refuse_a_publisher(client, delivered):
    login(client, "gaj_publisher")
    for url in ("/quality/report", "/quality/report.csv", "/steward/inventory"):
        r = client.get(url)
        assert r.status_code == 403 and "没有权限" in r.text, url
        assert "各部门质量得分" not in r.text and "GAJ-00007" not in r.text and "资源代码,资源名称" not in r.text
    client.cookies.clear()
    r = client.get("/quality/report", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fquality%2Freport"


# ---------------------------------------------------------------- audit log
@pytest.fixture
def audited(client, tokens, delivered):
    """人社局 is granted 公安局's data and reads it; 市场监管局 asks for the same data (another consumer)."""
    req, cred = approved_grant(client, tokens)
    assert rows(client, cred).status_code == 200
    other = request(client, tokens["scjg_publisher"], purpose="企业法人身份核验")
    return req, other


def seqs(page_html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<tr data-seq="(\d+)"', page_html)]


def api_seqs(client, token, **params) -> list[int]:
    r = client.get("/api/v1/audit", params={"page_size": 50, **params}, headers=bearer(token))
    assert r.status_code == 200, r.text
    return [e["seq"] for e in r.json()["items"]]


@pytest.mark.parametrize("username", ["steward", "gaj_publisher", "rsj_consumer", "scjg_publisher", "wjw_publisher"])
def test_the_audit_page_shows_what_the_api_shows_each_user(client, tokens, audited, username):
    login(client, username)
    page = client.get("/audit")
    assert page.status_code == 200
    assert seqs(page.text) == api_seqs(client, tokens[username])
    assert ('action="/audit/verify"' in page.text) == (username == "steward")


def test_the_audit_search_filters_like_the_api_and_a_consumer_sees_only_its_own(client, tokens, audited):
    req, other = audited
    login(client, "rsj_consumer")
    everything = client.get("/audit")
    mine = seqs(everything.text)
    assert mine and "市场监督管理局" not in everything.text  # 市场监管局's request is not 人社局's business
    all_seqs = api_seqs(client, tokens["steward"])
    assert set(all_seqs) - set(mine)  # there are entries it does not see
    gateway = client.get("/audit", params={"kind": "gateway"})
    assert seqs(gateway.text) == api_seqs(client, tokens["rsj_consumer"], kind="gateway") != []
    assert re.search(r'<td data-label="行数" class="num">\d+</td>', gateway.text)  # rows and bytes of the call
    by_grant = client.get("/audit", params={"grant_id": req["grant_id"]})
    assert seqs(by_grant.text) == api_seqs(client, tokens["rsj_consumer"], grant_id=req["grant_id"])
    assert client.get("/audit", params={"dataset": "SCJG-00001"}).text.count("<tr data-seq") == 0
    bad = client.get("/audit", params={"grant_id": "abc"})
    assert bad.status_code == 422 and "授权编号应为正整数" in bad.text and 'value="abc"' in bad.text
    login(client, "scjg_publisher")
    assert other["id"] and seqs(client.get("/audit", params={"kind": "decision"}).text) == api_seqs(
        client, tokens["scjg_publisher"], kind="decision") != []


def test_the_steward_verifies_the_chain_and_sees_where_it_was_tampered_with(client, tokens, audited, db):
    login(client, "gaj_publisher")
    refused = client.post("/audit/verify", data={"csrf": _csrf(client.get("/audit").text)})
    assert refused.status_code == 403 and "没有权限" in refused.text and "审计链完整" not in refused.text
    login(client, "steward")
    page = client.get("/audit")
    assert client.post("/audit/verify", data={"csrf": "0" * 40}).status_code == 403
    ok = client.post("/audit/verify", data={"csrf": _csrf(page.text)})
    assert ok.status_code == 200 and "审计链完整" in ok.text and "审计链被破坏" not in ok.text
    with db.session() as s:
        s.execute(text("UPDATE audit_log SET status = 299 WHERE seq = 2"))
        s.commit()
    broken = client.post("/audit/verify", data={"csrf": _csrf(page.text)})
    assert broken.status_code == 200 and "审计链完整" not in broken.text
    assert "审计链被破坏" in broken.text and "第 2 条记录内容被修改" in broken.text


# ---------------------------------------------------------------- 编目缺口
def test_the_inventory_gaps_list_missing_entries_and_never_collected_datasets(client, tokens, delivered, db):
    login(client, "steward")
    page = client.get("/steward/inventory")
    assert page.status_code == 200
    indicator = client.get("/api/v1/indicators/cataloguing", headers=bearer(tokens["steward"])).json()
    with db.session() as s:
        names = dict(s.execute(select(InventoryEntry.code, InventoryEntry.name)).all())
        never = s.execute(select(Dataset).where(Dataset.status == DatasetStatus.published,
                                                Dataset.latest_version.is_(None))).unique().scalars().all()
        never = [(d.code, d.department.code) for d in never]
    rows = dict(re.findall(r'<tr data-dept="([A-Z]+)">(.*?)</tr>', page.text, flags=re.S))
    for dept in indicator["departments"]:
        row = rows[dept["department_code"]]
        for code in dept["missing"]:
            assert code in row and names[code] in row
        assert f'<td data-label="申报" class="num">{dept["declared"]}</td>' in row
    assert indicator["overall"]["missing"] and never
    for code, dept_code in never:
        assert f'href="/catalog/{code}"' in rows[dept_code]
    assert 'href="/catalog/GAJ-00001"' not in rows["GAJ"]  # delivered: not a gap
