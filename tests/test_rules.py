"""Catalog rules (DOMAIN.md): each broken rule is a 422 naming the field and the rule, and stores nothing."""
from __future__ import annotations

import pytest

from tests.conftest import bearer
from tests.helpers import dataset_body, item

SENSITIVE = lambda e: [item("zjhm", "证件号码", e["测试证件号码"], is_key=True)]  # noqa: E731
L4_ITEM = lambda e: [item("jm", "机密项", e["测试机密项"], is_key=True)]  # noqa: E731

CASES = [
    # (overrides, field, rule)
    (dict(share_type="不予共享", share_condition=None, open_type="禁止开放"),
     "share_condition", "share.not_shared_requires_legal_basis"),
    (dict(share_type="有条件共享", share_condition="  "), "share_condition", "share.conditional_requires_condition"),
    (dict(security_grade="L3", open_type="禁止开放", share_type="无条件共享"),
     "share_type", "share.grade_forbids_unconditional"),
    (dict(security_grade="L2", open_type="无条件开放"), "open_type", "open.unconditional_requires_l1"),
    (dict(items=SENSITIVE, security_grade="L3", share_type="有条件共享", share_condition="依职责",
          open_type="无条件开放"), "open_type", "open.unconditional_forbids_sensitive"),
    (dict(items=L4_ITEM, security_grade="L4", share_type="有条件共享", share_condition="依职责",
          open_type="受限开放", open_condition="经审批"), "open_type", "open.l4_never_open"),
    (dict(security_grade="L2", open_type="受限开放", open_condition=None), "open_condition",
     "open.restricted_requires_condition"),
    (dict(share_type="不予共享", share_condition="《中华人民共和国统计法》第九条", open_type="受限开放",
          open_condition="经审批"), "open_type", "open.not_shared_cannot_open"),
    (dict(category="基础库"), "base_library", "category.base_requires_library"),
    (dict(category="主题库", base_library="人口库"), "base_library", "category.library_only_for_base"),
    (dict(items=lambda e: [item("mc", "名称", e["测试名称"])]), "items", "items.key_required"),
    (dict(items=lambda e: [item("mc", "名称", e["测试名称"], is_key=True), item("mc", "名称2", e["测试编码"])]),
     "items.1.code", "items.duplicate_code"),
    (dict(items=lambda e: [item("mc", "名称", e["测试名称"], is_key=True), item("mc2", "名称2", e["测试名称"])]),
     "items.1.source", "items.duplicate_authoritative"),
    (dict(items=lambda e: [item("mc", "名称", e["测试名称"], is_key=True, length=500)]),
     "items.0.length", "items.length_exceeds_standard"),
    (dict(items=SENSITIVE, security_grade="L2", share_type="有条件共享", share_condition="依职责",
          open_type="禁止开放"), "security_grade", "grade.not_below_items"),
    (dict(code="GAJ-00777"), "code", "code.department_prefix"),
    (dict(related=["SCJG-99999"]), "related", "related.unknown"),
    (dict(items=lambda e: [item("mc", "名称", "NOPE0001", is_key=True)]), "items.0.element", "items.unknown_element"),
]


@pytest.mark.parametrize("overrides,field,rule", CASES, ids=[c[2] for c in CASES])
def test_a_broken_catalog_rule_is_refused_with_its_field_and_rule(client, tokens, elements, overrides, field, rule):
    overrides = {k: (v(elements) if callable(v) else v) for k, v in overrides.items()}
    body = dataset_body(elements, name="规则测试资源", **overrides)
    r = client.post("/api/v1/datasets", json=body, headers=bearer(tokens["scjg_publisher"]))
    assert r.status_code == 422, r.text
    payload = r.json()
    matching = [d for d in payload["detail"] if d["type"] == rule]
    assert matching, payload
    assert matching[0]["loc"] == ["body", *[int(p) if p.isdigit() else p for p in field.split(".")]]
    assert matching[0]["msg"] and payload["message"]
    listed = client.get("/api/v1/datasets", params={"q": "规则测试资源"}, headers=bearer(tokens["steward"])).json()
    assert all(h["name"] != "规则测试资源" for h in listed["items"])


def test_a_valid_dataset_passes_every_rule(client, tokens, elements):
    r = client.post("/api/v1/datasets", json=dataset_body(elements), headers=bearer(tokens["scjg_publisher"]))
    assert r.status_code == 201, r.text
    assert r.json()["code"].startswith("SCJG-")


def test_rules_apply_to_updates_too(client, tokens, elements):
    created = client.post("/api/v1/datasets", json=dataset_body(elements), headers=bearer(tokens["scjg_publisher"]))
    code = created.json()["code"]
    r = client.patch(f"/api/v1/datasets/{code}", json={"security_grade": "L2"},
                     headers=bearer(tokens["scjg_publisher"]))
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "open.unconditional_requires_l1"
    unchanged = client.get(f"/api/v1/datasets/{code}", headers=bearer(tokens["steward"])).json()
    assert unchanged["security_grade"] == "L1"


def test_several_broken_rules_are_reported_together(client, tokens, elements):
    body = dataset_body(elements, security_grade="L4", share_type="无条件共享", items=L4_ITEM(elements))
    r = client.post("/api/v1/datasets", json=body, headers=bearer(tokens["scjg_publisher"]))
    rules = {d["type"] for d in r.json()["detail"]}
    assert {"share.grade_forbids_unconditional", "open.unconditional_requires_l1", "open.l4_never_open"} <= rules
