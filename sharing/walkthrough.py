"""The sharing story of the demo, played over HTTP against a running server (`opendata walkthrough`).

A new user of 人力社保局 (a consumer department) asks 公安局 for its 有条件共享 人口基本信息; 公安局 approves it
narrowed; the steward approves (L3 data); the consumer's credential reads exactly the approved, masked scope and is
refused anything else; the steward reads it all in the audit log.
"""
from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from typing import Any

import httpx

DEMO_PASSWORDS = {"steward": "demo-steward-2026", "gaj_publisher": "demo-gaj_publisher-2026"}


class WalkthroughError(RuntimeError):
    pass


def _check(r: httpx.Response, expect: int) -> Any:
    if r.status_code != expect:
        raise WalkthroughError(f"{r.request.method} {r.request.url.path} → {r.status_code}（预期 {expect}）：{r.text[:300]}")
    return r.json() if r.headers.get("content-type", "").startswith("application/json") else r


def run(client: httpx.Client, say: Callable[[str], None] = print) -> dict[str, Any]:
    def login(username: str, password: str) -> dict[str, str]:
        token = _check(client.post("/api/v1/auth/login", json={"username": username, "password": password,
                                                                "token_name": "walkthrough", "expires_in_days": 1}),
                       201)["token"]
        return {"Authorization": f"Bearer {token}"}

    steward, provider = login("steward", DEMO_PASSWORDS["steward"]), login("gaj_publisher", DEMO_PASSWORDS["gaj_publisher"])
    username, password = f"rsj_new_{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    _check(client.post("/api/v1/users", json={"username": username, "display_name": "市人力社保局 新用户",
                                              "department": "RSJ", "roles": ["consumer"], "password": password},
                       headers=steward), 201)
    say(f"1. 管理员新增用户 {username}（人力社保局，数据使用方）")
    consumer = login(username, password)

    valid_until = (dt.date.today() + dt.timedelta(days=90)).isoformat()
    req = _check(client.post("/api/v1/share-requests", headers=consumer, json={
        "dataset": "GAJ-00001", "purpose": "社保参保资格核验", "scenario": "参保登记时核验参保人身份",
        "basis": "《社会保险法》第五十八条", "fields": ["sfzhm", "xm", "xbdm", "csrq", "hjdxzqhdm"],
        "row_filter": [{"field": "xbdm", "op": "eq", "value": "1"}], "valid_until": valid_until,
        "expected_volume": 5000}), 201)
    say(f"2. 申请共享 GAJ-00001 人口基本信息（有条件共享，L3）：申请 {req['id']}，字段 {req['fields']}，状态 {req['status_name']}")

    narrowed = {"action": "approve", "reason": "同意，仅限1970年后出生人员，不提供性别",
                "fields": ["sfzhm", "xm", "csrq", "hjdxzqhdm"],
                "row_filter": [{"field": "xbdm", "op": "eq", "value": "1"},
                               {"field": "csrq", "op": "ge", "value": "1970-01-01"}],
                "requests_per_minute": 120, "rows_per_day": 20000}
    req = _check(client.post(f"/api/v1/share-requests/{req['id']}/decisions", json=narrowed, headers=provider), 200)
    say(f"3. 公安局收窄后同意：字段 {req['approved_fields']}，筛选 {req['approved_filter']}；状态 {req['status_name']}")
    req = _check(client.post(f"/api/v1/share-requests/{req['id']}/decisions",
                             json={"action": "approve", "reason": "符合性审查通过"}, headers=steward), 200)
    say(f"4. 大数据局审核通过：授权 {req['grant_id']}")

    cred = _check(client.post(f"/api/v1/grants/{req['grant_id']}/credentials", headers=consumer), 201)["credential"]
    say(f"5. 使用方领取调用凭证（只显示一次）：{cred[:12]}…")
    gateway = {"Authorization": f"Bearer {cred}"}
    page = _check(client.get("/gateway/v1/datasets/GAJ-00001/rows", params={"limit": 3}, headers=gateway), 200)
    say(f"6. 网关读取：共 {page['total']} 行在授权范围内；字段 {page['columns']}；脱敏 {page['masked']}")
    for row in page["rows"]:
        say(f"     {row}")
    refusals = {
        "读取未授权字段 xbdm": client.get("/gateway/v1/datasets/GAJ-00001/rows", params={"columns": "sfzhm,xbdm"},
                                   headers=gateway),
        "按未授权字段筛选 xbdm=2": client.get("/gateway/v1/datasets/GAJ-00001/rows", params={"filter": "xbdm:eq:2"},
                                      headers=gateway),
        "读取其他资源 SCJG-00001": client.get("/gateway/v1/datasets/SCJG-00001/rows", headers=gateway),
    }
    for what, r in refusals.items():
        if r.status_code < 400:
            raise WalkthroughError(f"{what} 未被拒绝：{r.status_code}")
        say(f"7. {what} → {r.status_code} {r.json()['error']}")
    audit = _check(client.get("/api/v1/audit", params={"grant_id": req["grant_id"], "page_size": 20},
                              headers=steward), 200)
    say(f"8. 大数据局查看审计日志：该授权 {audit['total']} 条记录")
    for entry in audit["items"][:6]:
        say(f"     #{entry['seq']} {entry['action']:<16} {entry['status']} {entry['consumer_department']} "
            f"rows={entry['detail'].get('rows')} {entry['hash'][:12]}…")
    return {"request": req, "page": page, "audit_total": audit["total"], "username": username}
