"""问题数据工单: routed by 一数一源, deduplicated across runs, verified automatically, worked through a lifecycle."""
from __future__ import annotations

import csv
import datetime as dt
import io

import pytest

from quality import tickets as ticket_service
from quality.models import ProblemTicket
from tests.conftest import bearer
from tests.test_quality import population_rows

HEADER = ["sfzhm", "xm", "cyrq"]


@pytest.fixture
def employee_dataset(client, tokens):
    """A 市场监管局 dataset whose ID number and name are references to 公安局's authoritative items."""
    body = {"name": "企业从业人员信息", "summary": "企业登记的从业人员。", "category": "部门库", "share_type": "有条件共享",
            "share_condition": "依职责使用", "open_type": "禁止开放", "update_cycle": "每月", "security_grade": "L3",
            "items": [{"code": "sfzhm", "name": "公民身份号码", "element": "DE0101001", "is_key": True, "required": True,
                       "source": "reference"},
                      {"code": "xm", "name": "姓名", "element": "DE0101002", "required": True, "source": "reference"},
                      {"code": "cyrq", "name": "从业日期", "element": "DE0401001", "source": "reference"}]}
    r = client.post("/api/v1/datasets", json=body, headers=bearer(tokens["scjg_publisher"]))
    assert r.status_code == 201, r.text
    return r.json()["code"]


def employees(n=30, bad_id_at=(), blank_name_at=()):
    rows = []
    for i, person in enumerate(population_rows(n, seed=11)):
        sfzhm = person[0]
        if i in bad_id_at:
            sfzhm = sfzhm[:17] + ("0" if sfzhm[17] != "0" else "1")
        rows.append([sfzhm, "" if i in blank_name_at else person[1], "2024-01-15"])
    return rows


def deliver(client, token, code, rows):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HEADER)
    w.writerows(rows)
    r = client.post(f"/api/v1/datasets/{code}/collections", files={"file": ("ry.csv", buf.getvalue().encode())},
                    headers=bearer(token))
    assert r.status_code == 201, r.text


def tickets_of(client, token, code, **params):
    r = client.get("/api/v1/tickets", params={"dataset": code, **params}, headers=bearer(token))
    assert r.status_code == 200, r.text
    return r.json()["items"]


def the_ticket(client, token, code, rule_id):
    return next(t for t in tickets_of(client, token, code) if t["rule_id"] == rule_id)


def test_a_failing_rule_is_routed_to_the_items_authoritative_source(client, tokens, employee_dataset):
    deliver(client, tokens["scjg_publisher"], employee_dataset, employees(bad_id_at={4}))
    ticket = the_ticket(client, tokens["steward"], employee_dataset, "cn_resident_id:sfzhm")
    assert ticket["assigned_department"] == "示范市公安局"  # the source of 公民身份号码, not the deliverer
    assert ticket["first_receiver_department"] == "示范市市场监督管理局"
    assert ticket["status"] == "assigned" and ticket["failing_count"] == 1 and len(ticket["sample_keys"]) == 1
    assert [e["to_status"] for e in ticket["events"]] == ["open", "assigned"]
    assert ticket["deadline"] > ticket["created_at"]
    # Both the source and the first receiver see it; an unrelated department does not.
    assert tickets_of(client, tokens["gaj_publisher"], employee_dataset)
    assert tickets_of(client, tokens["scjg_publisher"], employee_dataset)
    assert tickets_of(client, tokens["wjw_publisher"], employee_dataset) == []
    assert client.get(f"/api/v1/tickets/{ticket['id']}", headers=bearer(tokens["wjw_publisher"])).status_code == 404


def test_later_failing_runs_update_the_same_ticket(client, tokens, employee_dataset):
    deliver(client, tokens["scjg_publisher"], employee_dataset, employees(bad_id_at={4}))
    deliver(client, tokens["scjg_publisher"], employee_dataset, employees(40, bad_id_at={4, 7}))
    found = [t for t in tickets_of(client, tokens["steward"], employee_dataset) if t["rule_id"] == "cn_resident_id:sfzhm"]
    assert len(found) == 1
    assert found[0]["runs_seen"] == 2 and found[0]["latest_version"] == 2 and found[0]["failing_count"] == 2


def test_a_corrected_version_verifies_and_closes_the_ticket(client, tokens, employee_dataset):
    deliver(client, tokens["scjg_publisher"], employee_dataset, employees(bad_id_at={4}, blank_name_at={9}))
    before = {t["rule_id"] for t in tickets_of(client, tokens["steward"], employee_dataset, status="active")}
    assert before == {"cn_resident_id:sfzhm", "not_null:xm"}
    deliver(client, tokens["scjg_publisher"], employee_dataset, employees(31))
    assert tickets_of(client, tokens["steward"], employee_dataset, status="active") == []
    closed = the_ticket(client, tokens["steward"], employee_dataset, "cn_resident_id:sfzhm")
    assert closed["status"] == "closed" and closed["closed_at"] and closed["latest_version"] == 2
    assert [e["to_status"] for e in closed["events"]][-3:] == ["fixed", "verified", "closed"]
    # A new failure after closure opens a new ticket rather than reviving the old one.
    deliver(client, tokens["scjg_publisher"], employee_dataset, employees(32, bad_id_at={1}))
    found = [t for t in tickets_of(client, tokens["steward"], employee_dataset) if t["rule_id"] == "cn_resident_id:sfzhm"]
    assert len(found) == 2 and {t["status"] for t in found} == {"closed", "assigned"}


def test_only_the_assigned_department_or_steward_acts_and_illegal_moves_are_refused(client, tokens, employee_dataset):
    deliver(client, tokens["scjg_publisher"], employee_dataset, employees(bad_id_at={4}))
    tid = the_ticket(client, tokens["steward"], employee_dataset, "cn_resident_id:sfzhm")["id"]
    url = f"/api/v1/tickets/{tid}/transitions"
    r = client.post(url, json={"to": "in_progress", "comment": "我来改"}, headers=bearer(tokens["scjg_publisher"]))
    assert r.status_code == 403
    r = client.post(url, json={"to": "verified", "comment": "直接核验"}, headers=bearer(tokens["gaj_publisher"]))
    assert r.status_code == 409 and r.json()["allowed"] == ["disputed", "fixed", "in_progress"]
    r = client.post(url, json={"to": "in_progress", "comment": "已安排核查"}, headers=bearer(tokens["gaj_publisher"]))
    assert r.status_code == 200 and r.json()["status"] == "in_progress"
    event = r.json()["events"][-1]
    assert event["actor"] == "gaj_publisher" and event["actor_department"] == "示范市公安局" and event["comment"] == "已安排核查"


def test_the_dispute_path_goes_to_the_steward(client, tokens, employee_dataset):
    deliver(client, tokens["scjg_publisher"], employee_dataset, employees(bad_id_at={4}))
    tid = the_ticket(client, tokens["steward"], employee_dataset, "cn_resident_id:sfzhm")["id"]
    url = f"/api/v1/tickets/{tid}/transitions"
    r = client.post(url, json={"to": "disputed", "comment": "该号码为历史号码，数据无误"}, headers=bearer(tokens["gaj_publisher"]))
    assert r.status_code == 200 and r.json()["status"] == "disputed"
    assert client.post(url, json={"to": "closed", "comment": "驳回"},
                       headers=bearer(tokens["gaj_publisher"])).status_code == 403
    r = client.post(url, json={"to": "assigned", "comment": "异议不成立，请整改"}, headers=bearer(tokens["steward"]))
    assert r.status_code == 200 and r.json()["status"] == "assigned"
    client.post(url, json={"to": "disputed", "comment": "补充证明材料"}, headers=bearer(tokens["gaj_publisher"]))
    r = client.post(url, json={"to": "closed", "comment": "异议成立，关闭工单"}, headers=bearer(tokens["steward"]))
    assert r.status_code == 200 and r.json()["status"] == "closed"


def test_a_consumer_report_is_routed_and_its_first_receiver_recorded(client, tokens, employee_dataset):
    r = client.post(f"/api/v1/datasets/{employee_dataset}/problems", headers=bearer(tokens["rsj_consumer"]),
                    json={"item_code": "xm", "description": "某从业人员姓名与社保登记不一致"})
    assert r.status_code == 201, r.text
    t = r.json()
    assert t["origin"] == "report" and t["assigned_department"] == "示范市公安局"
    assert t["first_receiver_department"] == "示范市市场监督管理局"
    mine = client.get("/api/v1/tickets", headers=bearer(tokens["rsj_consumer"])).json()["items"]
    assert [x["id"] for x in mine] == [t["id"]]
    r = client.post(f"/api/v1/datasets/{employee_dataset}/problems", json={"description": "匿名反馈测试", "contact": "x"})
    assert r.status_code == 404  # not an open dataset: the public cannot see it at all


def test_overdue_tickets_escalate_and_count_against_the_rectification_rate(client, tokens, employee_dataset, db):
    deliver(client, tokens["scjg_publisher"], employee_dataset, employees(bad_id_at={4}, blank_name_at={9}))
    with db.session() as s:
        late = s.query(ProblemTicket).filter_by(rule_id="cn_resident_id:sfzhm").one()
        late.deadline = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
    overdue = tickets_of(client, tokens["steward"], employee_dataset, overdue=True)
    assert [t["rule_id"] for t in overdue] == ["cn_resident_id:sfzhm"]
    # Listing escalated it to the steward, once, with an event saying so.
    assert overdue[0]["escalated_at"] and "升级至大数据局" in overdue[0]["events"][-1]["comment"]
    with db.session() as s:
        assert ticket_service.escalate_overdue(s) == 0
    rate = client.get("/api/v1/indicators/rectification", headers=bearer(tokens["steward"])).json()
    gaj = next(d for d in rate["departments"] if d["department_code"] == "GAJ")
    assert gaj["due"] == 1 and gaj["on_time"] == 0 and gaj["rate"] == 0
    # The other ticket is closed on time by a corrected delivery.
    deliver(client, tokens["scjg_publisher"], employee_dataset, employees(33, bad_id_at={4}))
    rate = client.get("/api/v1/indicators/rectification", headers=bearer(tokens["steward"])).json()
    gaj = next(d for d in rate["departments"] if d["department_code"] == "GAJ")
    assert gaj["due"] == 2 and gaj["on_time"] == 1


def test_working_day_deadlines_skip_weekends():
    friday = dt.datetime(2026, 11, 20, 10, tzinfo=dt.timezone.utc)
    assert ticket_service.add_working_days(friday, 1).weekday() == 0
    assert ticket_service.add_working_days(friday, 7) == dt.datetime(2026, 12, 1, 10, tzinfo=dt.timezone.utc)


def test_a_consistency_ticket_is_about_the_copied_item_not_the_join_key(db, settings):
    """The objection mark (异议标注) and the ticket page point at the item whose value disagrees with its source."""
    from sqlalchemy import select

    from quality.models import ProblemTicket
    from tests.sharing_helpers import deliver

    deliver(db, settings)
    with db.session() as s:
        found = s.execute(select(ProblemTicket).where(ProblemTicket.rule_id.like("consistency:%"))).scalars().all()
    assert found, "the demo deliveries carry copies that disagree with their source"
    assert all(t.item_code == t.rule_id.split(":", 1)[1] for t in found)
