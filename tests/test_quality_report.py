"""The demo story: seeded deliveries with deliberate errors → tickets routed by 一数一源 → corrected data closes
them → the steward's report shows the score rise (JSON, CSV, HTML)."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from catalog.models import User
from catalog.storage import Storage
from seeds.deliveries import csv_bytes, population
from seeds.loader import deliver_demo_data
from tests.conftest import bearer
from tests.test_web import login


@pytest.fixture
def delivered(db, settings):
    with db.session() as s:
        users = {u.username: u for u in s.execute(select(User)).scalars()}
        assert deliver_demo_data(s, Storage(settings.resolved_storage_root()), users) == [
            "GAJ-00001", "SCJG-00001", "RSJ-00001", "STHJ-00001"]


def _active(client, token, code):
    return client.get("/api/v1/tickets", params={"dataset": code, "status": "active", "page_size": 100},
                      headers=bearer(token)).json()["items"]


def test_seeded_problems_are_routed_to_their_sources(client, tokens, delivered):
    rsj = {t["rule_id"]: t for t in _active(client, tokens["steward"], "RSJ-00001")}
    assert rsj["cn_resident_id:sfzhm"]["assigned_department"] == "示范市公安局"
    assert rsj["cn_uscc:dwtyshxydm"]["assigned_department"] == "示范市市场监督管理局"
    assert rsj["in_set:cbztdm"]["first_receiver_department"] == "示范市人力资源和社会保障局"
    # 一致性: RSJ's copy of a name differs from 公安局's source; the copy's department is asked to fix it.
    assert rsj["consistency:xm"]["assigned_department"] == "示范市人力资源和社会保障局"
    assert rsj["consistency:xm"]["dimension"] == "一致性" and rsj["consistency:xm"]["failing_count"] == 1
    assert "GAJ-00001" in rsj["consistency:xm"]["description"]
    gaj = {t["rule_id"] for t in _active(client, tokens["gaj_publisher"], "GAJ-00001")}
    assert {"cn_resident_id:sfzhm", "unique:sfzhm", "not_null:xm", "id_birth_date:sfzhm+csrq"} <= gaj


def test_corrected_data_closes_the_tickets_and_the_report_shows_the_score_rise(client, tokens, delivered):
    before = client.get("/api/v1/quality/report", headers=bearer(tokens["steward"])).json()
    row = next(r for r in before["datasets"] if r["dataset_code"] == "GAJ-00001")
    assert row["overall_score"] < 100 and row["open_tickets"] >= 5 and row["worst_rules"]
    r = client.post("/api/v1/datasets/GAJ-00001/collections",
                    files={"file": ("人口基本信息-修正.csv", csv_bytes(population(corrected=True)))},
                    headers=bearer(tokens["gaj_publisher"]))
    assert r.status_code == 201, r.text
    assert _active(client, tokens["steward"], "GAJ-00001") == []
    after = client.get("/api/v1/quality/report", headers=bearer(tokens["steward"])).json()
    row2 = next(r for r in after["datasets"] if r["dataset_code"] == "GAJ-00001")
    assert row2["overall_score"] == 100.0 > row["overall_score"]
    assert [p["version"] for p in row2["trend"]] == [1, 2]
    assert row2["trend"][0]["overall_score"] < row2["trend"][1]["overall_score"]
    dept = next(d for d in after["departments"] if d["department_code"] == "GAJ")
    assert dept["open_tickets_assigned"] == 1  # RSJ-00001's ticket for its bad ID numbers still waits at 公安局


def test_the_report_exports_csv_and_renders_html(client, tokens, delivered):
    r = client.get("/api/v1/quality/report.csv", headers=bearer(tokens["steward"]))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    lines = r.text.lstrip("\ufeff").splitlines()
    assert lines[0].startswith("资源代码,资源名称,部门") and len(lines) == 5  # header + the four demo deliveries
    login(client, "steward")  # the page reads the browser session (tests/test_web_quality.py covers it in depth)
    page = client.get("/quality/report")
    assert page.status_code == 200 and "数据质量报告" in page.text and "<svg" in page.text
    assert "人口基本信息" in page.text


def test_the_report_is_for_the_steward(client, tokens, delivered):
    assert client.get("/api/v1/quality/report", headers=bearer(tokens["gaj_publisher"])).status_code == 403
    login(client, "gaj_publisher")
    assert client.get("/quality/report").status_code == 403
    assert client.get("/api/v1/quality/report").status_code == 401
