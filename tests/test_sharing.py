"""Share requests end to end: rules at creation, decisions and narrowing, grants, credentials, the gateway serving
exactly the approved scope, the audit log, indicators, and the open-data portal."""
from __future__ import annotations

import datetime as dt
import io

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from catalog.models import Dataset
from sharing.engine import mask_array
from tests.conftest import bearer
from tests.sharing_helpers import (
    ASKED,
    approved_grant,
    credential,
    decide,
    deliver,
    request,
    rows,
    version_table,
)


@pytest.fixture
def delivered(db, settings):
    deliver(db, settings)


def test_done_when_narrowed_grant_serves_exactly_the_approved_masked_scope(client, tokens, db, settings, delivered):
    req, cred = approved_grant(client, tokens)
    assert req["approved_fields"] == ["sfzhm", "xm", "csrq", "hjdxzqhdm"]
    assert [d["stage"] for d in req["decisions"]] == ["consumer", "provider", "steward"]

    truth = version_table(db, settings, "GAJ-00001")
    expected = truth.filter(pc.and_(pc.equal(truth["xbdm"], "1"),
                                    pc.greater_equal(truth["csrq"], pa.scalar(dt.date(1970, 1, 1)))))
    assert 0 < expected.num_rows < truth.num_rows

    got, cursor = [], None
    while True:
        params = {"limit": 50, **({"cursor": cursor} if cursor else {})}
        r = rows(client, cred, **params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["columns"] == ["sfzhm", "xm", "csrq", "hjdxzqhdm"]
        assert body["masked"] == {"sfzhm": "id_number", "xm": "name"}
        assert body["total"] == expected.num_rows
        got.extend(body["rows"])
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert len(got) == expected.num_rows
    assert all(set(row) <= {"sfzhm", "xm", "csrq", "hjdxzqhdm", "_objection"} for row in got)
    plain_ids = set(truth["sfzhm"].to_pylist())
    for row, sfzhm, name, born in zip(got, expected["sfzhm"].to_pylist(), expected["xm"].to_pylist(),
                                      expected["csrq"].to_pylist()):
        assert row["sfzhm"] == sfzhm[:6] + "*" * 8 + sfzhm[-4:]
        assert row["sfzhm"] not in plain_ids
        assert row["xm"] == (name[0] + "*" * (len(name) - 1) if name else None)  # two names are missing on purpose
        assert row["csrq"] == born.isoformat()

    # The steward sees the decisions and the calls in the audit log; the chain verifies.
    audit = client.get("/api/v1/audit", params={"page_size": 100}, headers=bearer(tokens["steward"])).json()
    actions = [e["action"] for e in audit["items"]]
    assert actions.count("rows") >= 2 and "request.submit" in actions and "request.approve" in actions
    call = next(e for e in audit["items"] if e["action"] == "rows")
    assert call["consumer_department"] == "示范市人力资源和社会保障局" and call["status"] == 200
    assert call["detail"]["rows"] > 0 and call["detail"]["bytes"] > 0
    from sharing.audit import verify
    with db.session() as s:
        assert verify(s).ok


def test_unconditional_share_is_approved_automatically(client, tokens):
    r = request(client, tokens["rsj_consumer"], dataset="SCJG-00001", fields=["tyshxydm", "qymc"], row_filter=[])
    assert r["status"] == "approved" and r["grant_id"]
    assert r["decisions"][-1]["stage"] == "auto" and r["decisions"][-1]["actor"] is None


def test_not_shared_dataset_is_refused_at_creation_with_its_basis(client, tokens, db):
    with db.session() as s:
        ds = s.execute(select(Dataset).where(Dataset.share_type == "不予共享")).unique().scalars().first()
        code, basis, item = ds.code, ds.share_condition, ds.items[0].code
    r = client.post("/api/v1/share-requests", json={**ASKED, "dataset": code, "fields": [item], "row_filter": []},
                    headers=bearer(tokens["rsj_consumer"]))
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "share.not_shared" and basis in r.json()["message"]
    assert client.get("/api/v1/share-requests", headers=bearer(tokens["rsj_consumer"])).json()["total"] == 0


def test_reject_and_return_need_a_reason_and_return_can_be_resubmitted(client, tokens):
    req = request(client, tokens["rsj_consumer"])
    r = client.post(f"/api/v1/share-requests/{req['id']}/decisions", json={"action": "reject"},
                    headers=bearer(tokens["gaj_publisher"]))
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "decision.reason_required"
    returned = decide(client, tokens["gaj_publisher"], req["id"], {"action": "return", "reason": "请补充参保地区说明"})
    assert returned["status"] == "returned"
    r = client.post(f"/api/v1/share-requests/{req['id']}/resubmit",
                    json={"scenario": "东城区参保登记", "fields": ["sfzhm", "xm"], "comment": "已补充"},
                    headers=bearer(tokens["rsj_consumer"]))
    assert r.status_code == 200 and r.json()["status"] == "submitted" and r.json()["approved_fields"] == ["sfzhm", "xm"]
    rejected = decide(client, tokens["gaj_publisher"], req["id"], {"action": "reject", "reason": "无法律依据"})
    assert rejected["status"] == "rejected" and rejected["grant_id"] is None
    assert [d["action"] for d in rejected["decisions"]] == ["submit", "return", "resubmit", "reject"]


def test_unmasked_fields_need_the_steward_and_then_arrive_in_plain_text(client, tokens, db, settings, delivered):
    req = request(client, tokens["rsj_consumer"], unmasked_fields=["sfzhm"])
    assert req["needs_steward"]
    req = decide(client, tokens["gaj_publisher"], req["id"], {"action": "approve"})
    assert req["status"] == "pending_steward" and req["grant_id"] is None
    req = decide(client, tokens["steward"], req["id"], {"action": "approve", "reason": "经审核同意明文"})
    cred = credential(client, tokens["rsj_consumer"], req["grant_id"])
    body = rows(client, cred, limit=1000).json()
    truth = set(version_table(db, settings, "GAJ-00001")["sfzhm"].to_pylist())
    assert body["masked"] == {"xm": "name"}
    assert all(r["sfzhm"] in truth for r in body["rows"])


def test_share_rate_counts_approved_over_decided_and_overdue(client, tokens, db):
    approved_grant(client, tokens)
    other = request(client, tokens["rsj_consumer"])
    decide(client, tokens["gaj_publisher"], other["id"], {"action": "reject", "reason": "用途不明确"})
    pending = request(client, tokens["rsj_consumer"])
    from sharing.models import ShareRequest
    with db.session() as s:
        s.get(ShareRequest, pending["id"]).deadline = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
    rate = {r["department"]: r for r in client.get("/api/v1/indicators/sharing",
                                                   headers=bearer(tokens["steward"])).json()}["GAJ"]
    assert (rate["approved"], rate["rejected"], rate["pending_overdue"]) == (1, 1, 1)
    assert rate["rate"] == pytest.approx(1 / 3, abs=1e-4)


def test_formats_csv_arrow_parquet_carry_the_same_scope(client, tokens, delivered):
    _, cred = approved_grant(client, tokens)
    first = rows(client, cred, limit=1000).json()
    n = first["total"]
    csv = rows(client, cred, format="csv", limit=1000)
    assert csv.status_code == 200 and csv.text.splitlines()[0].replace('"', "") == "sfzhm,xm,csrq,hjdxzqhdm,_objection"
    arrow = rows(client, cred, format="arrow")
    table = pa.ipc.open_stream(arrow.content).read_all()
    assert table.num_rows == n and table.column_names == ["sfzhm", "xm", "csrq", "hjdxzqhdm", "_objection"]
    assert table["sfzhm"].to_pylist() == [r["sfzhm"] for r in first["rows"]]
    parquet = pq.read_table(io.BytesIO(rows(client, cred, format="parquet").content))
    assert parquet.equals(table)


def test_a_scope_reads_only_the_columns_it_needs_and_a_wider_one_adds_only_its_own(client, tokens, db, settings,
                                                                                   delivered, monkeypatch):
    """A grant's scope reads its granted items and its filter's from the version's Parquet file, no others; a second
    grant on the same version reads only the items the first did not, and both serve the version's true values."""
    read: list[list[str]] = []
    plain_read = pq.ParquetFile.read

    def recording_read(self, columns=None, **kwargs):  # noqa: ANN001, ANN202
        read.append(list(columns) if columns is not None else ["<all>"])
        return plain_read(self, columns=columns, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read", recording_read)
    truth = version_table(db, settings, "GAJ-00001")
    assert {"mzdm", "hjdz", "hh"} <= set(truth.column_names)  # items no grant below needs first

    _, first = approved_grant(client, tokens)  # sfzhm xm csrq hjdxzqhdm, filter on xbdm and csrq
    one = rows(client, first, format="arrow")
    assert one.status_code == 200, one.text
    assert len(read) == 1 and sorted(read[0]) == ["csrq", "hjdxzqhdm", "sfzhm", "xbdm", "xm"]

    wider = {"action": "approve", "reason": "同意"}
    _, second = approved_grant(client, tokens, narrowed=wider, fields=["sfzhm", "mzdm", "hh"],
                               row_filter=[{"field": "xbdm", "op": "eq", "value": "2"}])
    two = rows(client, second, format="arrow")
    assert two.status_code == 200, two.text
    assert len(read) == 2 and sorted(read[1]) == ["hh", "mzdm"]  # sfzhm and xbdm were read already

    served = pa.ipc.open_stream(two.content).read_all()
    women = truth.filter(pc.equal(truth["xbdm"], "2"))
    assert 0 < served.num_rows == women.num_rows
    masked = rows(client, second, limit=1).json()["masked"]
    assert "mzdm" not in masked and masked.get("hh")  # 户号 is masked by default
    assert served["mzdm"].to_pylist() == women["mzdm"].to_pylist()
    assert served["hh"].to_pylist() == mask_array(women["hh"].combine_chunks(), masked["hh"]).to_pylist()
    again = pa.ipc.open_stream(rows(client, first, format="arrow").content).read_all()
    assert again.equals(pa.ipc.open_stream(one.content).read_all())
    assert len(read) == 2


def test_client_filter_and_sort_narrow_within_the_grant(client, tokens, db, settings, delivered):
    _, cred = approved_grant(client, tokens)
    body = rows(client, cred, sort="-csrq", limit=1000, filter=["csrq:lt:1990-01-01"]).json()
    born = [r["csrq"] for r in body["rows"]]
    assert born == sorted(born, reverse=True) and all("1970-01-01" <= b < "1990-01-01" for b in born)
    assert body["total"] == len(born) > 0


def test_objection_marks_flag_rows_under_open_tickets(client, tokens, delivered):
    # 人口基本信息 was delivered with two names missing (rows 33, 34): an open 完整性 ticket on xm.
    _, cred = approved_grant(client, tokens, narrowed={"action": "approve"}, row_filter=[],
                             fields=["sfzhm", "xm", "xbdm", "csrq"])
    body = rows(client, cred, limit=1000).json()
    marked = [r for r in body["rows"] if r["_objection"]]
    assert marked and all(set(r["_objection"].split(",")) <= {"sfzhm", "xm", "xbdm", "csrq"} for r in marked)
    assert any(r["xm"] is None and "xm" in r["_objection"] for r in marked)
    assert len(marked) < len(body["rows"])


def test_revocation_takes_effect_on_the_next_call(client, tokens, delivered):
    req, cred = approved_grant(client, tokens)
    assert rows(client, cred).status_code == 200
    r = client.post(f"/api/v1/grants/{req['grant_id']}/revoke", json={"reason": "合作结束"},
                    headers=bearer(tokens["gaj_publisher"]))
    assert r.status_code == 200 and r.json()["status"] == "revoked"
    after = rows(client, cred)
    assert after.status_code == 401 and 'error="invalid_token"' in after.headers["www-authenticate"]


def test_a_grant_kept_in_memory_is_read_again_after_a_change_made_elsewhere(db, settings, tokens, delivered):
    """A worker keeps a credential's grant in memory (a repeat call reads nothing from the database), and drops it
    on the very next call once the deployment's generation moves: here the grant is revoked by plain SQL (no
    application hook fires) and the generation bumped as another worker's commit would — through Redis."""
    from fastapi.testclient import TestClient
    from sqlalchemy import event, text

    from catalog.app import create_app
    from sharing.quota import RedisQuota

    shared = settings.model_copy(update={"rate_limit_storage": "redis://127.0.0.1:6379"})
    with TestClient(create_app(shared, database=db)) as worker:
        req, cred = approved_grant(worker, tokens)
        assert rows(worker, cred, limit=1).status_code == 200
        statements: list[str] = []

        def seen(_conn, _cursor, statement, *_args) -> None:  # noqa: ANN001
            statements.append(statement)

        event.listen(db.engine, "before_cursor_execute", seen)
        try:
            assert rows(worker, cred, limit=1).status_code == 200
        finally:
            event.remove(db.engine, "before_cursor_execute", seen)
        assert statements == []  # the grant came from memory

        with db.engine.begin() as conn:  # outside the application: nothing tells the worker
            conn.execute(text("UPDATE grants SET status = 'revoked' WHERE id = :id"), {"id": req["grant_id"]})
        RedisQuota("redis://127.0.0.1:6379", worker.app.state.gateway.ns).bump_generation()  # another worker's commit
        after = rows(worker, cred, limit=1)
        assert after.status_code == 401 and "吊销" in after.json()["message"]


def test_concurrent_calls_share_one_quota_round_trip_and_each_is_counted(db, settings, tokens, delivered):
    """Calls that reach the quota in the same pass of a worker's event loop go to Redis together (one round trip),
    and every one of them is still counted: with 5 requests a minute, 5 of 8 concurrent calls pass."""
    import asyncio

    from fastapi.testclient import TestClient

    from catalog.app import create_app
    from sharing.models import Grant

    shared = settings.model_copy(update={"rate_limit_storage": "redis://127.0.0.1:6379"})
    with TestClient(create_app(shared, database=db)) as worker:
        req, cred = approved_grant(worker, tokens)
        with db.session() as s:
            s.get(Grant, req["grant_id"]).requests_per_minute = 5
        runtime = worker.app.state.gateway
        round_trips: list[int] = []
        take_many = runtime.quota.take_many

        def counting(calls):  # noqa: ANN001, ANN202
            round_trips.append(len(calls))
            return take_many(calls)

        runtime.quota.take_many = counting

        async def eight() -> list:
            return await asyncio.gather(*(runtime.admit(cred, lambda c: 10) for _ in range(8)))

        admitted = asyncio.run(eight())
    assert round_trips == [8]
    assert sorted(taken.refused or "ok" for _caller, taken in admitted) == ["ok"] * 5 + ["rate"] * 3


def test_a_change_committed_through_any_session_reaches_the_gateway(client, db, tokens, delivered):
    """Grants changed through a session the app did not open (a script, the CLI) still count as a change."""
    from catalog.db import Database
    from sharing.models import GrantCredential

    _, cred = approved_grant(client, tokens)
    assert rows(client, cred, limit=1).status_code == 200
    other = Database(db.url)
    try:
        with other.session() as s:
            for c in s.execute(select(GrantCredential)).scalars():
                c.revoked_at = dt.datetime.now(dt.timezone.utc)
    finally:
        other.dispose()
    after = rows(client, cred, limit=1)
    assert after.status_code == 401 and "吊销" in after.json()["message"]


def test_a_process_without_a_gateway_bumps_the_generation_through_redis(db, monkeypatch):
    """`opendata collect` publishing a version runs in its own process, with no gateway in it: its commit still
    moves the deployment's generation in Redis (named by the database URL), so the workers re-read the grant."""
    import hashlib
    import weakref

    import sharing.gateway
    from catalog.settings import get_settings
    from sharing.quota import RedisQuota

    monkeypatch.setattr(sharing.gateway, "_RUNTIMES", weakref.WeakSet())
    monkeypatch.setenv("ODH_RATE_LIMIT_STORAGE", "redis://127.0.0.1:6379")
    get_settings.cache_clear()
    try:
        quota = RedisQuota("redis://127.0.0.1:6379", hashlib.sha256(db.url.encode()).hexdigest()[:12])
        before = quota.take(1, 10**6, 10**6, 1).generation
        with db.session() as s:
            s.execute(select(Dataset).limit(1)).unique().scalar_one().summary = "改一改"
        assert quota.take(1, 10**6, 10**6, 1).generation == before + 1
        with db.session() as s:  # a commit that touches no grant, credential or dataset moves nothing
            s.execute(select(Dataset).limit(1)).unique().scalar_one()
        assert quota.take(1, 10**6, 10**6, 1).generation == before + 1
    finally:
        get_settings.cache_clear()


def test_a_grant_kept_in_memory_still_expires_on_time(client, tokens, delivered, monkeypatch):
    import sharing.gateway

    req, cred = approved_grant(client, tokens)
    assert rows(client, cred, limit=1).status_code == 200
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=400)
    monkeypatch.setattr(sharing.gateway, "utcnow", lambda: later)
    after = rows(client, cred, limit=1)
    assert after.status_code == 401 and "过期" in after.json()["message"]


def test_open_portal_lists_and_downloads_unconditional_open_data(client, delivered):
    listing = client.get("/open/v1/datasets", params={"page_size": 100}).json()
    codes = {d["code"]: d for d in listing["items"]}
    assert "STHJ-00001" in codes and "GAJ-00001" not in codes
    assert codes["STHJ-00001"]["download"]["csv"].endswith("format=csv")
    csv = client.get("/open/v1/datasets/STHJ-00001/download", params={"format": "csv"})
    assert csv.status_code == 200 and csv.content.startswith(b"\xef\xbb\xbf")
    assert csv.text.count("\n") == 41
    data = client.get("/open/v1/datasets/STHJ-00001/download", params={"format": "json", "limit": 10}).json()
    assert len(data["rows"]) == 10 and data["total"] == 40 and data["next_cursor"]
    restricted = client.get("/open/v1/datasets/SCJG-00001/download")
    assert restricted.status_code == 403 and "开放申请" in restricted.json()["message"]
    assert client.get("/open/v1/datasets/GAJ-00001/download").status_code == 404


def test_open_application_by_a_registered_outside_user(client, tokens, delivered):
    r = client.post("/api/v1/public/register", json={"username": "citizen_li", "password": "a-long-passw0rd",
                                                     "display_name": "李研究", "organisation": "示范大学",
                                                     "contact": "li@example.edu"})
    assert r.status_code == 201
    token = client.post("/api/v1/auth/login", json={"username": "citizen_li", "password": "a-long-passw0rd"}
                        ).json()["token"]
    # An outside user sees the open catalog only.
    assert client.get("/api/v1/datasets/GAJ-00001", headers=bearer(token)).status_code == 404
    assert client.get("/api/v1/departments", headers=bearer(token)).status_code == 403
    hits = client.get("/api/v1/datasets", params={"page_size": 100}, headers=bearer(token)).json()
    anonymous = client.get("/api/v1/datasets", params={"page_size": 100}).json()
    assert hits["total"] == anonymous["total"] and all(h["open_type"] != "禁止开放" for h in hits["items"])
    req = request(client, token, dataset="SCJG-00001", fields=["tyshxydm", "qymc", "fddbrxm"], row_filter=[],
                  purpose="企业信用研究", basis="科研合作协议")
    assert req["kind"] == "open" and req["status"] == "submitted"
    req = decide(client, tokens["scjg_publisher"], req["id"], {"action": "approve", "fields": ["tyshxydm", "qymc"]})
    cred = credential(client, token, req["grant_id"])
    body = rows(client, cred, code="SCJG-00001", limit=5).json()
    assert body["columns"] == ["tyshxydm", "qymc"] and len(body["rows"]) == 5
    open_rate = client.get("/api/v1/indicators/open", headers=bearer(tokens["steward"])).json()
    assert open_rate["collected_items"] > open_rate["open_items"] > 0


def test_demo_walkthrough_runs_over_http(client, delivered, db):
    """`opendata walkthrough`: a new consumer user, a narrowed approval, a scoped read, refusals, the audit log."""
    from sharing.audit import verify
    from sharing.walkthrough import run

    said: list[str] = []
    result = run(client, said.append)
    assert result["page"]["columns"] == ["sfzhm", "xm", "csrq", "hjdxzqhdm"] and result["audit_total"] >= 5
    assert sum(line.startswith("7.") for line in said) == 3
    with db.session() as s:
        assert verify(s).ok


def test_two_workers_share_one_quota_through_redis(db, settings, tokens, delivered):
    """Two app instances (as two API worker processes) count one grant's calls in the same Redis."""
    from fastapi.testclient import TestClient

    from catalog.app import create_app
    from sharing.models import Grant

    shared = settings.model_copy(update={"rate_limit_storage": "redis://127.0.0.1:6379"})
    with TestClient(create_app(shared, database=db)) as one, TestClient(create_app(shared, database=db)) as two:
        req, cred = approved_grant(one, tokens)
        with db.session() as s:
            s.get(Grant, req["grant_id"]).requests_per_minute = 3
        answers = [rows(c, cred, limit=1).status_code for c in (one, two, one, two)]
    assert answers == [200, 200, 200, 429]


def test_response_size_ceiling_trims_arrow_reads_and_hands_back_a_cursor(db, settings, tokens, delivered):
    from fastapi.testclient import TestClient

    from catalog.app import create_app

    small = settings.model_copy(update={"gateway_max_response_bytes": 2000})
    with TestClient(create_app(small, database=db)) as c:
        _, cred = approved_grant(c, tokens)
        whole = rows(c, cred, limit=1).json()["total"]
        r = rows(c, cred, format="arrow")
        got = pa.ipc.open_stream(r.content).read_all().num_rows
        assert r.status_code == 200 and 0 < got < whole and r.headers["x-next-cursor"]
        rest = rows(c, cred, format="arrow", cursor=r.headers["x-next-cursor"])
        assert pa.ipc.open_stream(rest.content).read_all().num_rows > 0


def test_open_downloads_are_rate_limited_per_client(db, settings, delivered):
    from fastapi.testclient import TestClient

    from catalog.app import create_app

    strict = settings.model_copy(update={"open_rate_limit": "2/minute"})
    with TestClient(create_app(strict, database=db)) as c:
        answers = [c.get("/open/v1/datasets/STHJ-00001/download", params={"format": "csv"}) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert int(answers[2].headers["retry-after"]) >= 1 and "1001" not in answers[2].text


def test_quotas_set_by_the_provider_survive_the_stewards_approval(client, tokens):
    req = request(client, tokens["rsj_consumer"])
    decide(client, tokens["gaj_publisher"], req["id"], {"action": "approve", "requests_per_minute": 7,
                                                        "rows_per_day": 321})
    req = decide(client, tokens["steward"], req["id"], {"action": "approve"})
    grant = client.get(f"/api/v1/grants/{req['grant_id']}", headers=bearer(tokens["rsj_consumer"])).json()
    assert (grant["requests_per_minute"], grant["rows_per_day"]) == (7, 321)


def test_objection_marks_refresh_in_the_background_when_tickets_close(db, settings, tokens, delivered):
    import time

    from fastapi.testclient import TestClient
    from sqlalchemy import update

    from catalog.app import create_app
    from quality.models import ProblemTicket

    fast = settings.model_copy(update={"gateway_objection_refresh_seconds": 0.0})
    with TestClient(create_app(fast, database=db)) as c:
        _, cred = approved_grant(c, tokens, narrowed={"action": "approve"}, row_filter=[], fields=["sfzhm", "xm"])
        assert any(r["_objection"] for r in rows(c, cred, limit=1000).json()["rows"])
        with db.session() as s:
            s.execute(update(ProblemTicket).values(status="closed", open_key=None))
        deadline = time.monotonic() + 20
        while any(r["_objection"] for r in rows(c, cred, limit=1000).json()["rows"]):  # stale scope serves meanwhile
            assert time.monotonic() < deadline, "objection marks never refreshed"
            time.sleep(0.05)
