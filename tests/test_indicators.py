"""数据编目率: catalogued ÷ declared inventory, per department and overall, computed from the catalog."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import yaml

from tests.conftest import bearer
from tests.helpers import dataset_body

SEEDS = Path(__file__).parent.parent / "seeds"


def _expected_from_seed_files():
    inventory = yaml.safe_load((SEEDS / "inventory.yaml").read_text(encoding="utf-8"))
    catalogued = {d["code"] for f in (SEEDS / "datasets").glob("*.yaml")
                  for d in yaml.safe_load(f.read_text(encoding="utf-8"))}
    per_dept = defaultdict(lambda: [0, 0])
    for entry in inventory:
        per_dept[entry["department"]][0] += 1
        per_dept[entry["department"]][1] += entry["code"] in catalogued
    return per_dept


def test_cataloguing_rate_is_computed_from_inventory_and_catalog(client, tokens):
    r = client.get("/api/v1/indicators/cataloguing", headers=bearer(tokens["steward"]))
    assert r.status_code == 200
    body = r.json()
    expected = _expected_from_seed_files()
    declared = sum(v[0] for v in expected.values())
    done = sum(v[1] for v in expected.values())
    assert body["overall"]["declared"] == declared and body["overall"]["catalogued"] == done
    assert body["overall"]["rate"] == round(done / declared, 4)
    assert 0 < body["overall"]["rate"] < 1, "the seeds deliberately leave some inventory uncatalogued"
    got = {d["department_code"]: (d["declared"], d["catalogued"]) for d in body["departments"]}
    assert got == {k: tuple(v) for k, v in expected.items()}
    rates = {d["rate"] for d in body["departments"]}
    assert len(rates) > 1, "departments differ"
    assert all(len(d["missing"]) == d["declared"] - d["catalogued"] for d in body["departments"])


def test_cataloguing_a_declared_resource_raises_the_rate_and_withdrawing_lowers_it(client, tokens, elements):
    before = client.get("/api/v1/indicators/cataloguing", headers=bearer(tokens["steward"])).json()
    missing = next(d for d in before["departments"] if d["missing"])
    code = missing["missing"][0]
    body = dataset_body(elements, code=code, department=missing["department_code"])
    assert client.post("/api/v1/datasets", json=body, headers=bearer(tokens["steward"])).status_code == 201
    after = client.get("/api/v1/indicators/cataloguing", headers=bearer(tokens["steward"])).json()
    assert after["overall"]["catalogued"] == before["overall"]["catalogued"] + 1
    dept_after = next(d for d in after["departments"] if d["department_code"] == missing["department_code"])
    assert code not in dept_after["missing"]

    client.delete(f"/api/v1/datasets/{code}", params={"reason": "测试"}, headers=bearer(tokens["steward"]))
    again = client.get("/api/v1/indicators/cataloguing", headers=bearer(tokens["steward"])).json()
    assert again["overall"]["catalogued"] == before["overall"]["catalogued"]


def test_indicators_need_a_government_user(client):
    assert client.get("/api/v1/indicators/cataloguing").status_code == 401
