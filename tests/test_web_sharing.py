"""The sharing pages: the request form, the request boxes, review with narrowing, grants with usage, credentials shown
once, and that a page never shows (or does) what the API would refuse."""
from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import select

from sharing.models import Grant, GrantCredential, ShareRequest
from tests.conftest import bearer
from tests.sharing_helpers import deliver
from tests.test_web import _csrf, login

IN_30_DAYS = (dt.date.today() + dt.timedelta(days=30)).isoformat()
IN_20_DAYS = (dt.date.today() + dt.timedelta(days=20)).isoformat()
ASKED_FIELDS = ["sfzhm", "xm", "xbdm", "csrq", "hjdxzqhdm"]
NARROWED_FIELDS = ["sfzhm", "xm", "csrq", "hjdxzqhdm"]  # 公安局 drops 性别代码…
NARROWED_FILTER = {"cond_field": ["xbdm", "csrq", ""], "cond_op": ["eq", "ge", "eq"],  # …and adds 1970 or later
                   "cond_value": ["1", "1970-01-01", ""]}


@pytest.fixture
def delivered(db, settings):
    deliver(db, settings)


def as_user(client, username: str) -> None:
    client.cookies.clear()
    assert login(client, username).status_code == 303


def csrf_of(client, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    return _csrf(page.text)


def request_form(**overrides) -> dict:
    form = {"purpose": "社保参保资格核验", "scenario": "参保登记时核验参保人身份", "basis": "《社会保险法》第五十八条",
            "fields": ASKED_FIELDS, "cond_field": ["xbdm", ""], "cond_op": ["eq", "eq"], "cond_value": ["1", ""],
            "valid_until": IN_30_DAYS, "expected_volume": "5000"}
    return {**form, **overrides}


def submit_request(client, code: str = "GAJ-00001", **overrides) -> int:
    csrf = csrf_of(client, f"/catalog/{code}/request")
    r = client.post(f"/catalog/{code}/request", data={"csrf": csrf, **request_form(**overrides)},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    match = re.fullmatch(r"/requests/(\d+)\?done=created", r.headers["location"])
    assert match
    return int(match.group(1))


def decide(client, request_id: int, **form):
    csrf = csrf_of(client, f"/requests/{request_id}")
    return client.post(f"/requests/{request_id}/decide", data={"csrf": csrf, **form}, follow_redirects=False)


def stored(db, request_id: int) -> ShareRequest:
    with db.session() as s:
        req = s.get(ShareRequest, request_id)
        _ = req.decisions  # loaded before the session closes
        s.expunge(req)
        return req


def section(html: str, element_id: str) -> str:
    """The table or list with that id (the part of the page a user reads for one thing)."""
    match = re.search(rf'<(table|ul) id="{element_id}".*?</\1>', html, re.DOTALL)
    assert match, element_id
    return match.group(0)


def approved_grant_via_pages(client, db) -> tuple[int, int]:
    """人力社保局 asks through the form, 公安局 narrows, the steward approves (L3): (request id, grant id)."""
    as_user(client, "rsj_consumer")
    rid = submit_request(client)
    as_user(client, "gaj_publisher")
    r = decide(client, rid, action="approve", reason="同意，限1970年后出生人员", fields=NARROWED_FIELDS,
               valid_until=IN_30_DAYS, **NARROWED_FILTER)
    assert r.status_code == 303 and r.headers["location"] == f"/requests/{rid}?done=approved"
    as_user(client, "steward")
    page = client.get(f"/requests/{rid}")
    # The steward's form starts from the provider's narrowed scope.
    assert re.findall(r'name="fields" value="(\w+)" checked', page.text) == NARROWED_FIELDS
    r = decide(client, rid, action="approve", reason="符合性审查通过", fields=NARROWED_FIELDS, valid_until=IN_30_DAYS,
               **NARROWED_FILTER)
    assert r.status_code == 303, r.text
    with db.session() as s:
        grant = s.execute(select(Grant).where(Grant.request_id == rid)).scalar_one()
        return rid, grant.id


def test_request_through_the_form_review_narrowed_and_grant_shows_the_narrowed_scope(client, db, delivered):
    as_user(client, "rsj_consumer")
    form = client.get("/catalog/GAJ-00001/request")
    assert form.status_code == 200 and "申请共享" in form.text
    # Every item is offered, with how it is masked by default; plain text is a separate, explained choice.
    assert 'value="hjdz"' in form.text and "脱敏：证件号码：保留前 6 位和后 4 位" in form.text
    assert 'name="unmasked_fields"' in form.text and "大数据局审核" in form.text
    assert 'type="date"' in form.text and form.text.count('name="cond_field"') >= 3  # 2 blank rows + the template

    rid = submit_request(client)
    req = stored(db, rid)
    assert (req.fields, req.row_filter, req.status) == (ASKED_FIELDS, [{"field": "xbdm", "op": "eq", "value": "1"}],
                                                        "submitted")
    detail = client.get(f"/requests/{rid}?done=created")
    assert "申请已提交" in detail.text and "待提供方审核" in detail.text and "社保参保资格核验" in detail.text
    assert f'action="/requests/{rid}/decide"' not in detail.text  # the consumer does not review its own request
    mine = client.get("/requests")
    assert f'href="/requests/{rid}"' in mine.text and "示范市人力资源和社会保障局" in mine.text

    as_user(client, "gaj_publisher")
    review = client.get("/requests", params={"tab": "review"})
    assert review.status_code == 200 and f'href="/requests/{rid}"' in review.text
    page = client.get(f"/requests/{rid}")
    assert f'action="/requests/{rid}/decide"' in page.text
    assert re.findall(r'name="fields" value="(\w+)" checked', page.text) == ASKED_FIELDS  # pre-checked as asked

    r = decide(client, rid, action="approve", reason="同意，限1970年后出生人员", fields=NARROWED_FIELDS,
               valid_until=IN_30_DAYS, **NARROWED_FILTER)
    assert r.status_code == 303
    req = stored(db, rid)
    assert req.status == "pending_steward" and req.approved_fields == NARROWED_FIELDS
    assert req.approved_filter[1] == {"field": "csrq", "op": "ge", "value": "1970-01-01"}
    assert f'href="/requests/{rid}"' not in client.get("/requests", params={"tab": "review"}).text  # no longer waiting

    as_user(client, "steward")
    queue = client.get("/requests", params={"tab": "steward"})
    assert f'href="/requests/{rid}"' in queue.text and "待大数据局审核" in queue.text
    r = decide(client, rid, action="approve", reason="符合性审查通过", fields=NARROWED_FIELDS, valid_until=IN_30_DAYS,
               **NARROWED_FILTER)
    assert r.status_code == 303
    detail = client.get(r.headers["location"])
    assert "已通过" in detail.text and "符合性审查通过" in detail.text and "已删减" in detail.text
    grant_id = int(re.search(r'href="/grants/(\d+)"', detail.text).group(1))

    as_user(client, "rsj_consumer")
    grant = client.get(f"/grants/{grant_id}")
    assert grant.status_code == 200 and "有效" in grant.text
    fields = section(grant.text, "grant-fields")
    for name in ("公民身份号码", "姓名", "出生日期", "户籍地行政区划代码"):
        assert name in fields
    assert "性别代码" not in fields and "脱敏（证件号码：保留前 6 位和后 4 位）" in fields
    conditions = section(grant.text, "grant-filter")
    assert "性别代码（xbdm） 等于 1" in conditions and "出生日期（csrq） 大于等于 1970-01-01" in conditions
    assert f'href="/grants/{grant_id}"' in client.get("/grants").text


def test_widening_approval_is_refused_inline_and_changes_nothing(client, db, delivered):
    as_user(client, "rsj_consumer")
    rid = submit_request(client)
    as_user(client, "gaj_publisher")
    r = decide(client, rid, action="approve", reason="同意", fields=[*ASKED_FIELDS, "mzdm"], valid_until=IN_30_DAYS,
               cond_field=["xbdm"], cond_op=["eq"], cond_value=["1"])
    assert r.status_code == 422 and "审批只能收窄范围，不能增加字段 mzdm" in r.text
    assert 'role="alert"' in r.text and 'name="reason"' in r.text  # the form is back, to correct
    # Dropping the consumer's own filter would widen it too.
    r = decide(client, rid, action="approve", reason="同意", fields=ASKED_FIELDS, valid_until=IN_30_DAYS)
    assert r.status_code == 422 and "不能放宽" in r.text
    later = (dt.date.today() + dt.timedelta(days=60)).isoformat()
    r = decide(client, rid, action="approve", reason="同意", fields=ASKED_FIELDS, valid_until=later,
               cond_field=["xbdm"], cond_op=["eq"], cond_value=["1"])
    assert r.status_code == 422 and "审批不能延长有效期" in r.text
    req = stored(db, rid)
    assert req.status == "submitted" and req.approved_fields == ASKED_FIELDS and len(req.decisions) == 1


def test_reject_and_return_need_a_reason_then_resubmit_and_withdraw(client, db, delivered):
    as_user(client, "rsj_consumer")
    rid = submit_request(client)
    as_user(client, "gaj_publisher")
    r = decide(client, rid, action="reject", reason=" ")
    assert r.status_code == 422 and "驳回或退回必须说明理由" in r.text and 'aria-invalid="true"' in r.text
    assert stored(db, rid).status == "submitted"
    r = decide(client, rid, action="return", reason="请补充参保登记业务的具体依据条款")
    assert r.status_code == 303 and stored(db, rid).status == "returned"

    as_user(client, "rsj_consumer")
    page = client.get(f"/requests/{rid}")
    assert "请补充参保登记业务的具体依据条款" in page.text and f'action="/requests/{rid}/resubmit"' in page.text
    csrf = _csrf(page.text)
    bad = client.post(f"/requests/{rid}/resubmit",
                      data={"csrf": csrf, **request_form(basis="x", comment="已补充")}, follow_redirects=False)
    assert bad.status_code == 422 and "依据：至少填写 2 个字" in bad.text and "已补充" in bad.text
    r = client.post(f"/requests/{rid}/resubmit", data={
        "csrf": csrf, **request_form(basis="《社会保险法》第五十八条、《社会保险费征缴暂行条例》", comment="已补充依据")},
        follow_redirects=False)
    assert r.status_code == 303
    req = stored(db, rid)
    assert req.status == "submitted" and "征缴暂行条例" in req.basis

    r = client.post(f"/requests/{rid}/withdraw", data={"csrf": csrf, "reason": "业务调整，暂不需要"},
                    follow_redirects=False)
    assert r.status_code == 303 and stored(db, rid).status == "withdrawn"
    page = client.get(r.headers["location"])
    assert "申请已撤回" in page.text and "业务调整，暂不需要" in page.text
    assert f'action="/requests/{rid}/withdraw"' not in page.text  # nothing left to withdraw

    as_user(client, "gaj_publisher")
    r = decide(client, rid, action="approve", reason="同意", fields=ASKED_FIELDS)
    assert r.status_code == 409 and "已撤回" in r.text and stored(db, rid).status == "withdrawn"


def test_request_form_errors_are_inline_and_keep_what_was_typed(client, db, delivered):
    as_user(client, "rsj_consumer")
    csrf = csrf_of(client, "/catalog/GAJ-00001/request")
    r = client.post("/catalog/GAJ-00001/request", data={"csrf": csrf, **request_form(
        purpose="核验参保人身份（第一稿）", basis="x", fields=[])})
    assert r.status_code == 422
    assert "申请字段：至少选择 1 项" in r.text and "依据：至少填写 2 个字" in r.text
    assert "核验参保人身份（第一稿）" in r.text and 'value="1"' in r.text  # typed text and the filter row kept

    r = client.post("/catalog/GAJ-00001/request", data={"csrf": csrf, **request_form(
        cond_field=["csrq"], cond_op=["ge"], cond_value=["去年"])})
    assert r.status_code == 422 and "csrq" in r.text and "去年" in r.text and "不是有效的" in r.text

    far = (dt.date.today() + dt.timedelta(days=4 * 365)).isoformat()
    r = client.post("/catalog/GAJ-00001/request", data={"csrf": csrf, **request_form(valid_until=far)})
    assert r.status_code == 422 and "有效期最长 3 年" in r.text and f'value="{far}"' in r.text

    r = client.post("/catalog/GAJ-00001/request", data={"csrf": csrf, **request_form(
        fields=["sfzhm"], unmasked_fields=["sfzhm"], cond_field=["bogus"], cond_op=["eq"], cond_value=["1"])})
    assert r.status_code == 422 and "字段 bogus 不存在" in r.text
    with db.session() as s:
        assert s.execute(select(ShareRequest)).first() is None  # nothing was stored by any of these


def test_not_shared_dataset_shows_its_legal_basis_instead_of_a_form(client, db, delivered):
    as_user(client, "rsj_consumer")
    page = client.get("/catalog/GAJ-00006/request")
    assert page.status_code == 422 and "不予共享" in page.text and "刑事诉讼法》第二百八十六条" in page.text
    assert 'name="purpose"' not in page.text
    r = client.post("/catalog/GAJ-00006/request", data={"csrf": _csrf(page.text), **request_form(fields=["fcjlbh"])})
    assert r.status_code == 422 and "刑事诉讼法》第二百八十六条" in r.text
    with db.session() as s:
        assert s.execute(select(ShareRequest)).first() is None


def test_outsiders_get_the_refusal_page_and_nothing_of_the_request(client, db, delivered):
    rid, grant_id = approved_grant_via_pages(client, db)
    as_user(client, "wjw_publisher")  # 卫健委: neither party
    for path in (f"/requests/{rid}", f"/grants/{grant_id}"):
        page = client.get(path)
        assert page.status_code == 404 and "页面不存在" in page.text
        for secret in ("社保参保资格核验", "人口基本信息", "社会保险法", "GAJ-00001", "xbdm"):
            assert secret not in page.text
    csrf = csrf_of(client, "/requests")
    for path, data in ((f"/requests/{rid}/decide", {"action": "reject", "reason": "不同意"}),
                       (f"/requests/{rid}/withdraw", {"reason": "x"}), (f"/grants/{grant_id}/credentials", {}),
                       (f"/grants/{grant_id}/revoke", {"reason": "越权吊销"})):
        r = client.post(path, data={"csrf": csrf, **data}, follow_redirects=False)
        assert r.status_code == 404 and "社保参保资格核验" not in r.text and "人口基本信息" not in r.text
    for tab in ("mine", "review"):
        assert f'href="/requests/{rid}"' not in client.get("/requests", params={"tab": tab}).text
    assert f'href="/grants/{grant_id}"' not in client.get("/grants").text
    assert client.get("/requests", params={"tab": "all"}).status_code == 403  # the steward's box
    with db.session() as s:
        assert s.get(Grant, grant_id).status == "active" and not s.execute(select(GrantCredential)).first()

    # The consumer is a party but may not decide, nor take a grant back; the provider may not take credentials.
    as_user(client, "rsj_consumer")
    assert f'action="/grants/{grant_id}/revoke"' not in client.get(f"/grants/{grant_id}").text
    r = client.post(f"/grants/{grant_id}/revoke", data={"csrf": csrf_of(client, "/grants"), "reason": "不想要了"})
    assert r.status_code == 403
    as_user(client, "gaj_publisher")
    page = client.get(f"/grants/{grant_id}")
    assert "新建访问凭证" not in page.text and 'id="tryout"' not in page.text
    assert client.post(f"/grants/{grant_id}/credentials", data={"csrf": _csrf(page.text)}).status_code == 403

    client.cookies.clear()
    r = client.get(f"/requests/{rid}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/login?next=%2Frequests%2F{rid}"


def test_credential_is_shown_once_works_at_the_gateway_and_usage_counts_the_calls(client, db, delivered):
    _, grant_id = approved_grant_via_pages(client, db)
    as_user(client, "rsj_consumer")
    page = client.get(f"/grants/{grant_id}")
    assert "新建访问凭证" in page.text and 'id="try-credential"' in page.text
    assert re.search(r'id="usage-day-rows">0<', page.text) and re.search(r'id="usage-day-calls">0<', page.text)

    shown = client.post(f"/grants/{grant_id}/credentials", data={"csrf": _csrf(page.text)}, follow_redirects=False)
    assert shown.status_code == 200 and shown.headers["cache-control"] == "no-store"
    assert "只显示这一次，请立即保存" in shown.text
    secret = re.search(r'id="new-credential"[^>]*value="(odg_[A-Za-z0-9_-]+)"', shown.text).group(1)
    assert "/gateway/v1/datasets/GAJ-00001/rows" in shown.text and f"Bearer {secret}" in shown.text
    assert re.search(rf'id="try-credential"[^>]*value="{secret}"', shown.text)  # the try-out panel is prefilled

    again = client.get(f"/grants/{grant_id}")
    assert secret not in again.text and secret[:12] in again.text  # listed by its prefix only

    r = client.get("/gateway/v1/datasets/GAJ-00001/rows", params={"limit": 5}, headers=bearer(secret))
    assert r.status_code == 200
    body = r.json()
    assert body["columns"] == NARROWED_FIELDS and body["masked"] == {"sfzhm": "id_number", "xm": "name"}
    assert all(re.fullmatch(r"\d{6}\*{8}[0-9X]{4}", row["sfzhm"]) for row in body["rows"])
    assert client.get("/gateway/v1/datasets/GAJ-00001/rows", params={"limit": 3}, headers=bearer(secret)
                      ).status_code == 200
    assert client.get("/gateway/v1/datasets/GAJ-00001/rows", params={"filter": "xbdm:eq:1"}, headers=bearer(secret)
                      ).status_code == 403  # a field outside the grant: a refused call, counted as a call

    usage = client.get(f"/grants/{grant_id}").text
    assert re.search(r'id="usage-day-rows">8<', usage) and re.search(r'id="usage-day-calls">3<', usage)
    assert re.search(r'id="usage-minute-calls">3<', usage) and "成功 2，被拒 1" in usage
    calls = section(usage, "recent-calls")
    assert calls.count("<tr>") == 4 and ">403<" in calls and "未授权字段 xbdm" in calls

    # The provider sees the same use of its data; the credential can be revoked from the page.
    as_user(client, "gaj_publisher")
    assert re.search(r'id="usage-day-rows">8<', client.get(f"/grants/{grant_id}").text)
    as_user(client, "rsj_consumer")
    with db.session() as s:
        cred_id = s.execute(select(GrantCredential.id)).scalar_one()
    r = client.post(f"/grants/{grant_id}/credentials/{cred_id}/revoke",
                    data={"csrf": csrf_of(client, f"/grants/{grant_id}")}, follow_redirects=False)
    assert r.status_code == 303 and "凭证已吊销" in client.get(r.headers["location"]).text
    assert client.get("/gateway/v1/datasets/GAJ-00001/rows", headers=bearer(secret)).status_code == 401


def test_provider_revokes_the_grant_with_a_reason(client, db, delivered):
    _, grant_id = approved_grant_via_pages(client, db)
    as_user(client, "rsj_consumer")
    shown = client.post(f"/grants/{grant_id}/credentials", data={"csrf": csrf_of(client, f"/grants/{grant_id}")})
    secret = re.search(r'value="(odg_[A-Za-z0-9_-]+)"', shown.text).group(1)

    as_user(client, "gaj_publisher")
    csrf = csrf_of(client, f"/grants/{grant_id}")
    r = client.post(f"/grants/{grant_id}/revoke", data={"csrf": csrf, "reason": ""})
    assert r.status_code == 422 and "理由：至少填写 2 个字" in r.text
    with db.session() as s:
        assert s.get(Grant, grant_id).status == "active"
    r = client.post(f"/grants/{grant_id}/revoke", data={"csrf": csrf, "reason": "人员调整，暂停共享"},
                    follow_redirects=False)
    assert r.status_code == 303
    page = client.get(r.headers["location"])
    assert "授权已吊销" in page.text and "已吊销" in page.text and "人员调整，暂停共享" in page.text
    refused = client.get("/gateway/v1/datasets/GAJ-00001/rows", headers=bearer(secret))
    assert refused.status_code == 401 and refused.json()["message"] == "授权已吊销"
    as_user(client, "rsj_consumer")
    assert "新建访问凭证" not in client.get(f"/grants/{grant_id}").text


def test_forms_without_the_csrf_token_are_refused(client, db, delivered):
    as_user(client, "rsj_consumer")
    r = client.post("/catalog/GAJ-00001/request", data=request_form(), follow_redirects=False)
    assert r.status_code == 403 and "CSRF" in r.text
    with db.session() as s:
        assert s.execute(select(ShareRequest)).first() is None
    rid = submit_request(client)
    as_user(client, "gaj_publisher")
    r = client.post(f"/requests/{rid}/decide", data={"action": "reject", "reason": "不同意"}, follow_redirects=False)
    assert r.status_code == 403 and stored(db, rid).status == "submitted"


def test_outside_user_makes_an_open_application_without_plain_text_or_audit(client, db, delivered):
    r = client.post("/api/v1/public/register", json={"username": "citizen_li", "password": "a-long-passw0rd",
                                                     "display_name": "李研究", "organisation": "示范大学",
                                                     "contact": "li@example.edu"})
    assert r.status_code == 201
    client.cookies.clear()
    assert login(client, "citizen_li", "a-long-passw0rd").status_code == 303
    assert client.get("/catalog/GAJ-00001/request").status_code == 404  # not in the open catalog
    form = client.get("/catalog/SCJG-00001/request")
    assert form.status_code == 200 and "申请开放" in form.text and 'name="unmasked_fields"' not in form.text
    r = client.post("/catalog/SCJG-00001/request", data={"csrf": _csrf(form.text), **request_form(
        purpose="企业信用研究", basis="科研合作协议", fields=["tyshxydm", "qymc", "fddbrxm"], cond_field=[""],
        cond_op=["eq"], cond_value=[""], unmasked_fields=["fddbrxm"])}, follow_redirects=False)
    assert r.status_code == 303
    rid = int(r.headers["location"].split("/")[2].split("?")[0])
    req = stored(db, rid)
    assert (req.kind, req.unmasked_fields, req.row_filter) == ("open", [], [])
    mine = client.get("/requests")
    assert f'href="/requests/{rid}"' in mine.text and "tab=review" not in mine.text
    assert client.get("/requests", params={"tab": "review"}).status_code == 403

    as_user(client, "scjg_publisher")
    r = decide(client, rid, action="approve", reason="同意", fields=["tyshxydm", "qymc"], valid_until=IN_20_DAYS)
    assert r.status_code == 303 and stored(db, rid).status == "approved"
    with db.session() as s:
        grant_id = s.execute(select(Grant.id).where(Grant.request_id == rid)).scalar_one()

    client.cookies.clear()
    login(client, "citizen_li", "a-long-passw0rd")
    page = client.get(f"/grants/{grant_id}")
    assert page.status_code == 200 and "新建访问凭证" in page.text and IN_20_DAYS in page.text
    assert 'id="usage-day-rows"' not in page.text  # the audit log is for government users only, as in the API
    shown = client.post(f"/grants/{grant_id}/credentials", data={"csrf": _csrf(page.text)})
    secret = re.search(r'value="(odg_[A-Za-z0-9_-]+)"', shown.text).group(1)
    body = client.get("/gateway/v1/datasets/SCJG-00001/rows", params={"limit": 2}, headers=bearer(secret)).json()
    assert body["columns"] == ["tyshxydm", "qymc"] and len(body["rows"]) == 2


def test_request_boxes_filter_by_status_and_mark_overdue_deadlines(client, db, delivered):
    as_user(client, "rsj_consumer")
    waiting = submit_request(client)
    withdrawn = submit_request(client, purpose="第二份申请")
    csrf = csrf_of(client, f"/requests/{withdrawn}")
    assert client.post(f"/requests/{withdrawn}/withdraw", data={"csrf": csrf, "reason": "重复提交"},
                       follow_redirects=False).status_code == 303
    with db.session() as s:
        s.get(ShareRequest, waiting).deadline = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
        s.commit()

    both = client.get("/requests").text
    assert f'href="/requests/{waiting}"' in both and f'href="/requests/{withdrawn}"' in both
    row = re.search(rf'<tr>\s*<td><a href="/requests/{waiting}">.*?</tr>', both, re.DOTALL).group(0)
    assert re.search(r'<span class="bad">[0-9-]+（已超期）</span>', row)
    only = client.get("/requests", params={"status": "withdrawn"}).text
    assert f'href="/requests/{withdrawn}"' in only and f'href="/requests/{waiting}"' not in only
    assert '<option value="withdrawn" selected>' in only
    detail = client.get(f"/requests/{waiting}").text
    assert "已超期" in detail

    as_user(client, "gaj_publisher")  # 待我审核 lists what waits for the provider by default
    review = client.get("/requests", params={"tab": "review"}).text
    assert f'href="/requests/{waiting}"' in review and f'href="/requests/{withdrawn}"' not in review
    everything = client.get("/requests", params={"tab": "review", "status": "all"}).text
    assert f'href="/requests/{withdrawn}"' in everything
