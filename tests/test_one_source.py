"""一数一源一标准: one authoritative source per data element, enforced by the domain layer and by the database."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from catalog import service
from catalog.auth import Principal
from catalog.errors import AuthoritativeSourceConflict
from catalog.models import AuthoritativeSource, DataItem, Dataset
from catalog.schemas import DatasetCreate
from catalog.search import CatalogSearch, backend_for
from tests.conftest import bearer
from tests.helpers import dataset_body, item


def _create(client, token, body):
    return client.post("/api/v1/datasets", json=body, headers=bearer(token))


def test_second_authoritative_claim_is_refused_naming_the_existing_source(client, tokens, elements):
    first = _create(client, tokens["gaj_publisher"], dataset_body(elements, name="测试来源资源"))
    assert first.status_code == 201, first.text
    source = first.json()

    second = _create(client, tokens["scjg_publisher"], dataset_body(elements, name="另一部门的同名数据"))
    assert second.status_code == 409
    body = second.json()
    assert body["error"] == "authoritative_source_conflict"
    assert source["code"] in body["message"] and "测试来源资源" in body["message"]
    assert source["department"]["name"] in body["message"]
    assert body["existing_source"]["dataset_code"] == source["code"]
    assert body["existing_source"]["department_code"] == "GAJ"
    # Nothing of the refused dataset was stored.
    r = client.get("/api/v1/datasets", params={"q": "另一部门的同名数据"}, headers=bearer(tokens["steward"]))
    assert all(h["name"] != "另一部门的同名数据" for h in r.json()["items"])


def test_the_refused_item_may_be_registered_as_a_reference(client, tokens, elements):
    source = _create(client, tokens["gaj_publisher"], dataset_body(elements, name="测试来源资源")).json()
    body = dataset_body(elements, name="引用方资源",
                        items=[item("mc", "名称", elements["测试名称"], is_key=True, source="reference")])
    r = _create(client, tokens["scjg_publisher"], body)
    assert r.status_code == 201, r.text
    ref = r.json()["items"][0]
    assert ref["source"] == "reference"
    assert ref["authoritative_source"]["dataset_code"] == source["code"]
    assert ref["authoritative_source"]["department_code"] == "GAJ"
    assert ref["authoritative_source"]["item_code"] == "mc"

    detail = client.get(f"/api/v1/standards/{elements['测试名称']}", headers=bearer(tokens["rsj_consumer"])).json()
    assert detail["authoritative_source"]["dataset_code"] == source["code"]


def test_a_reference_must_point_at_the_actual_source(client, tokens, elements):
    source = _create(client, tokens["gaj_publisher"], dataset_body(elements, name="测试来源资源")).json()
    other = _create(client, tokens["gaj_publisher"], dataset_body(
        elements, name="无关资源", items=[item("bm", "编码", elements["测试编码"], is_key=True)])).json()
    body = dataset_body(elements, name="引用错了来源", items=[
        item("mc", "名称", elements["测试名称"], is_key=True, source="reference", reference=other["code"])])
    r = _create(client, tokens["scjg_publisher"], body)
    assert r.status_code == 422
    detail = r.json()["detail"][0]
    assert detail["loc"] == ["body", "items", 0, "reference"]
    assert detail["type"] == "items.reference_not_source"
    assert source["code"] in detail["msg"]


def test_a_reference_needs_an_existing_source(client, tokens, elements):
    body = dataset_body(elements, items=[item("bm", "编码", elements["测试编码"], is_key=True, source="reference")])
    r = _create(client, tokens["scjg_publisher"], body)
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "items.reference_without_source"


def test_every_item_binds_to_exactly_one_element_version(client, tokens, db):
    r = client.get("/api/v1/standards", params={"page_size": 100}, headers=bearer(tokens["steward"]))
    versioned = [e for e in r.json()["items"]
                 if len(client.get(f"/api/v1/standards/{e['identifier']}",
                                   headers=bearer(tokens["steward"])).json()["versions"]) > 1]
    assert versioned, "the seeds should hold at least one element with several versions"
    with db.session() as session:
        items = session.query(DataItem).all()
        assert items and all(i.data_element_id is not None for i in items)


def test_pinning_an_unknown_element_version_is_refused(client, tokens, elements):
    body = dataset_body(elements, items=[item("mc", "名称", elements["测试名称"], element_version="9.9", is_key=True)])
    r = _create(client, tokens["gaj_publisher"], body)
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "items.unknown_element"
    assert "9.9" in r.json()["detail"][0]["msg"]


def test_the_source_can_update_its_own_dataset_keeping_the_claim(client, tokens, elements):
    source = _create(client, tokens["gaj_publisher"], dataset_body(elements, name="测试来源资源")).json()
    r = client.patch(f"/api/v1/datasets/{source['code']}", json={
        "summary": "更新后的摘要", "items": [item("mc", "名称（新）", elements["测试名称"], is_key=True),
                                          item("bm", "编码", elements["测试编码"])]},
        headers=bearer(tokens["gaj_publisher"]))
    assert r.status_code == 200, r.text
    assert [i["name"] for i in r.json()["items"]] == ["名称（新）", "编码"]
    other = _create(client, tokens["scjg_publisher"], dataset_body(
        elements, name="抢注编码", items=[item("bm", "编码", elements["测试编码"], is_key=True)]))
    assert other.status_code == 409


def test_a_referenced_source_cannot_be_withdrawn_until_its_references_go(client, tokens, elements):
    source = _create(client, tokens["gaj_publisher"], dataset_body(elements, name="测试来源资源")).json()
    ref = _create(client, tokens["scjg_publisher"], dataset_body(elements, name="引用方资源", items=[
        item("mc", "名称", elements["测试名称"], is_key=True, source="reference")])).json()
    r = client.delete(f"/api/v1/datasets/{source['code']}", params={"reason": "测试撤销"},
                      headers=bearer(tokens["gaj_publisher"]))
    assert r.status_code == 409
    assert ref["code"] in r.json()["message"]

    assert client.delete(f"/api/v1/datasets/{ref['code']}", params={"reason": "不再需要"},
                         headers=bearer(tokens["scjg_publisher"])).status_code == 200
    assert client.delete(f"/api/v1/datasets/{source['code']}", params={"reason": "测试撤销"},
                         headers=bearer(tokens["gaj_publisher"])).status_code == 200
    # The claim is free again: another department may now become the source.
    again = _create(client, tokens["scjg_publisher"], dataset_body(elements, name="新的来源"))
    assert again.status_code == 201, again.text


def test_the_database_itself_refuses_a_second_source_row(db, client, tokens, elements):
    _create(client, tokens["gaj_publisher"], dataset_body(elements, name="测试来源资源"))
    with db.sessionmaker() as session:
        src = session.get(AuthoritativeSource, elements["测试名称"])
        other_item = session.query(DataItem).filter(DataItem.id != src.item_id).first()
        with pytest.raises(IntegrityError):
            session.execute(insert(AuthoritativeSource).values(
                element_identifier=elements["测试名称"], item_id=other_item.id, dataset_id=other_item.dataset_id,
                department_id=1))
        session.rollback()


def test_concurrent_conflicting_claims_end_with_exactly_one_source(db, tokens, elements):
    """Two departments claim the same element in two transactions at once; both pass the pre-check."""
    search = CatalogSearch(backend_for(db.dialect))
    barrier = threading.Barrier(2, timeout=20)
    original = service.check_dataset

    def rules_then_wait(*args, **kwargs):
        # Runs after the 一数一源 pre-check and before any write: both transactions have seen "no source yet".
        violations = original(*args, **kwargs)
        barrier.wait()
        return violations

    results: dict[str, object] = {}

    def claim(username: str, name: str) -> None:
        try:
            with db.session() as session:
                from catalog.models import User
                user = session.query(User).filter_by(username=username).one()
                body = DatasetCreate.model_validate(dataset_body(elements, name=name))
                results[username] = service.create_dataset(session, search, Principal.of(user), body).code
        except AuthoritativeSourceConflict as exc:
            results[username] = exc
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            results[username] = exc

    service.check_dataset = rules_then_wait
    try:
        threads = [threading.Thread(target=claim, args=("gaj_publisher", "并发来源甲")),
                   threading.Thread(target=claim, args=("scjg_publisher", "并发来源乙"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        service.check_dataset = original

    outcomes = list(results.values())
    winners = [o for o in outcomes if isinstance(o, str)]
    losers = [o for o in outcomes if isinstance(o, AuthoritativeSourceConflict)]
    assert len(winners) == 1 and len(losers) == 1, outcomes
    assert winners[0] in losers[0].message  # the loser is told who won
    with db.session() as session:
        sources = session.query(AuthoritativeSource).filter_by(element_identifier=elements["测试名称"]).all()
        assert len(sources) == 1
        assert session.query(Dataset).filter(Dataset.name.in_(["并发来源甲", "并发来源乙"])).count() == 1
