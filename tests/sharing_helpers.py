"""Shared set-up of the sharing tests: published demo data, a narrowed approved grant, a credential."""
from __future__ import annotations

import datetime as dt

import pyarrow.parquet as pq
from sqlalchemy import select

from catalog.models import Dataset, DatasetVersion, User
from catalog.storage import Storage
from seeds.loader import deliver_demo_data
from tests.conftest import bearer

IN_30_DAYS = (dt.date.today() + dt.timedelta(days=30)).isoformat()
# What 人力社保局 asks of 公安局's 人口基本信息 (有条件共享, L3): men, five fields.
ASKED = {
    "dataset": "GAJ-00001", "purpose": "社保参保资格核验", "scenario": "参保登记时核验参保人身份",
    "basis": "《社会保险法》第五十八条", "fields": ["sfzhm", "xm", "xbdm", "csrq", "hjdxzqhdm"],
    "row_filter": [{"field": "xbdm", "op": "eq", "value": "1"}], "valid_until": IN_30_DAYS, "expected_volume": 5000,
}
# 公安局 narrows it: no gender column, born 1970 or later.
NARROWED = {"action": "approve", "reason": "同意，限1970年后出生人员", "fields": ["sfzhm", "xm", "csrq", "hjdxzqhdm"],
            "row_filter": [{"field": "xbdm", "op": "eq", "value": "1"},
                           {"field": "csrq", "op": "ge", "value": "1970-01-01"}]}


def deliver(db, settings) -> None:  # noqa: ANN001
    with db.session() as s:
        users = {u.username: u for u in s.execute(select(User)).scalars()}
        deliver_demo_data(s, Storage(settings.resolved_storage_root()), users)


def version_table(db, settings, code: str):  # noqa: ANN001, ANN201
    """The whole published version, read straight from storage: the ground truth a test compares against."""
    with db.session() as s:
        ds = s.execute(select(Dataset).where(Dataset.code == code)).unique().scalar_one()
        path = s.execute(select(DatasetVersion.path).where(DatasetVersion.dataset_id == ds.id,
                                                          DatasetVersion.version == ds.latest_version)).scalar_one()
    with Storage(settings.resolved_storage_root()).open(path, "rb") as fh:
        return pq.read_table(fh)


def request(client, token: str, **overrides) -> dict:  # noqa: ANN001
    r = client.post("/api/v1/share-requests", json={**ASKED, **overrides}, headers=bearer(token))
    assert r.status_code == 201, r.text
    return r.json()


def decide(client, token: str, request_id: int, body: dict, expect: int = 200) -> dict:  # noqa: ANN001
    r = client.post(f"/api/v1/share-requests/{request_id}/decisions", json=body, headers=bearer(token))
    assert r.status_code == expect, r.text
    return r.json()


def credential(client, token: str, grant_id: int) -> str:  # noqa: ANN001
    r = client.post(f"/api/v1/grants/{grant_id}/credentials", headers=bearer(token))
    assert r.status_code == 201, r.text
    return r.json()["credential"]


def approved_grant(client, tokens, narrowed: dict = NARROWED, **overrides) -> tuple[dict, str]:  # noqa: ANN001
    """rsj_consumer asks, gaj_publisher narrows, steward approves; returns (request, credential)."""
    req = request(client, tokens["rsj_consumer"], **overrides)
    req = decide(client, tokens["gaj_publisher"], req["id"], narrowed)
    assert req["status"] == "pending_steward"
    req = decide(client, tokens["steward"], req["id"], {"action": "approve", "reason": "符合性审查通过"})
    assert req["status"] == "approved" and req["grant_id"]
    return req, credential(client, tokens["rsj_consumer"], req["grant_id"])


def rows(client, cred: str, code: str = "GAJ-00001", **params):  # noqa: ANN001, ANN201
    return client.get(f"/gateway/v1/datasets/{code}/rows", params=params, headers=bearer(cred))
