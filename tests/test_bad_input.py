"""Bad input gets a 4xx with a message saying what and why — never a 500 — and changes nothing."""
from __future__ import annotations

import pytest

from tests.conftest import bearer
from tests.helpers import dataset_body


@pytest.mark.parametrize("method,url,kwargs,status", [
    ("post", "/api/v1/datasets", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 422),
    ("post", "/api/v1/datasets", {"json": {}}, 422),
    ("post", "/api/v1/datasets", {"json": {"name": "x", "unknown_field": 1}}, 422),
    ("get", "/api/v1/datasets", {"params": {"page": 0}}, 422),
    ("get", "/api/v1/datasets", {"params": {"page_size": 10**9}}, 422),
    ("get", "/api/v1/datasets", {"params": {"sort": "password"}}, 422),
    ("get", "/api/v1/datasets", {"params": {"share_type": "随便共享"}}, 422),
    ("get", "/api/v1/datasets/not-a-code", {}, 422),
    ("get", "/api/v1/datasets/ZZZ-99999", {}, 404),
    ("get", "/api/v1/standards/NOPE", {}, 404),
    ("get", "/api/v1/standards/NOPE/versions/1.0", {}, 404),
    ("get", "/api/v1/departments/NOPE", {}, 404),
    ("delete", "/api/v1/datasets/ZZZ-99999", {"params": {"reason": "测试"}}, 404),
    ("delete", "/api/v1/auth/tokens/99999999999", {}, 422),
    ("patch", "/api/v1/datasets/ZZZ-99999", {"json": {"summary": "x"}}, 404),
    ("get", "/api/v1/datasets", {"params": {"q": "x" * 201}}, 422),
])
def test_bad_requests_are_4xx_with_a_message(client, tokens, method, url, kwargs, status):
    kwargs = dict(kwargs)
    headers = {**bearer(tokens["steward"]), **kwargs.pop("headers", {})}
    r = client.request(method.upper(), url, headers=headers, **kwargs)
    assert r.status_code == status, r.text
    assert r.json()["message"]


def test_a_nul_character_is_bad_input_not_a_server_error(client, tokens, elements):
    r = client.post("/api/v1/datasets", json=dataset_body(elements, summary="含\x00字符"),
                    headers=bearer(tokens["gaj_publisher"]))
    assert 400 <= r.status_code < 500, r.text
    r = client.get("/api/v1/datasets", params={"q": "信用\x00"}, headers=bearer(tokens["steward"]))
    assert r.status_code < 500


def test_a_withdraw_needs_a_reason(client, tokens, elements):
    code = client.post("/api/v1/datasets", json=dataset_body(elements), headers=bearer(tokens["gaj_publisher"])).json()["code"]
    r = client.delete(f"/api/v1/datasets/{code}", headers=bearer(tokens["gaj_publisher"]))
    assert r.status_code == 422 and "reason" in r.json()["message"]
    r = client.delete(f"/api/v1/datasets/{code}", params={"reason": "   "}, headers=bearer(tokens["gaj_publisher"]))
    assert r.status_code == 422
    assert client.get(f"/api/v1/datasets/{code}", headers=bearer(tokens["steward"])).json()["status"] == "published"


def test_a_taken_dataset_code_is_a_conflict(client, tokens, elements):
    code = client.post("/api/v1/datasets", json=dataset_body(elements), headers=bearer(tokens["gaj_publisher"])).json()["code"]
    body = dataset_body(elements, code=code, name="重复代码", items=[
        {"code": "bm", "name": "编码", "element": elements["测试编码"], "is_key": True}])
    r = client.post("/api/v1/datasets", json=body, headers=bearer(tokens["gaj_publisher"]))
    assert r.status_code == 409 and code in r.json()["message"]
