"""Small helpers shared by the API tests."""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
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


@contextmanager
def live_server(app, timeout: float = 30) -> Iterator[str]:  # noqa: ANN001
    """Serve `app` with uvicorn on a free loopback port in a thread; yields its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the live server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
