"""Small helpers shared by the API tests."""
from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import bearer


def find_dataset(client: TestClient, token: str, name: str) -> dict:
    r = client.get("/api/v1/datasets", params={"q": name, "page_size": 50}, headers=bearer(token))
    assert r.status_code == 200, r.text
    hits = [h for h in r.json()["items"] if h["name"] == name]
    assert hits, f"no dataset named {name}"
    return hits[0]


def item(code: str, name: str, element: str, **kw) -> dict:
    return {"code": code, "name": name, "element": element, **kw}


def dataset_body(elements: dict[str, str], **overrides) -> dict:
    """A valid L1, 无条件共享 / 无条件开放 dataset whose one key item sources 测试名称."""
    body = {
        "name": "便民驿站点位测试资源",
        "summary": "城区公共厕所的位置与开放时间，供市民查询。",
        "keywords": ["便民驿站", "测试"],
        "category": "主题库",
        "topic": "城乡建设",
        "share_type": "无条件共享",
        "share_method": "接口",
        "open_type": "无条件开放",
        "update_cycle": "每月",
        "security_grade": "L1",
        "items": [item("mc", "名称", elements["测试名称"], is_key=True, required=True)],
    }
    body.update(overrides)
    return body
