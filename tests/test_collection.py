"""归集: deliveries become immutable, versioned Parquet snapshots — atomically, or not at all."""
from __future__ import annotations

import datetime as dt
import io
import json
import sqlite3

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from openpyxl import Workbook

from catalog import collection
from catalog.enums import CollectionStatus, UpdateCycle
from catalog.models import DatasetVersion
from catalog.storage import Storage
from tests.conftest import bearer
from tests.helpers import dataset_body, item

ROWS = [("A001", "第一站", "12", "2024-03-01", "3.5"), ("A002", "第二站", "", "20240302", "-1"),
        ("A003", "第三站，含逗号", "7", "2024/3/3", "")]
HEADER = ["bm", "名称", "sl", "rq", "je"]  # codes and names both map


@pytest.fixture
def dataset_code(client, tokens, elements):
    body = dataset_body(elements, name="归集测试资源", update_cycle="每日", items=[
        item("bm", "编码", elements["测试编码"], is_key=True, required=True),
        item("mc", "名称", elements["测试名称"]),
        item("sl", "数量", elements["测试数量"]),
        item("rq", "日期", elements["测试日期"]),
        item("je", "金额", elements["测试金额"]),
    ])
    r = client.post("/api/v1/datasets", json=body, headers=bearer(tokens["gaj_publisher"]))
    assert r.status_code == 201, r.text
    return r.json()["code"]


def csv_bytes(rows=ROWS, header=HEADER, encoding="utf-8") -> bytes:
    buf = io.StringIO()
    import csv
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode(encoding)


def upload(client, token, code, name, content: bytes):
    return client.post(f"/api/v1/datasets/{code}/collections", files={"file": (name, content)},
                       headers=bearer(token))


def versions(client, token, code):
    return client.get(f"/api/v1/datasets/{code}/versions", headers=bearer(token)).json()


def snapshot(db, settings, code, number=None) -> pa.Table:
    from catalog.models import Dataset
    with db.session() as s:
        ds = s.query(Dataset).filter_by(code=code).one()
        q = s.query(DatasetVersion).filter_by(dataset_id=ds.id)
        v = q.filter_by(version=number).one() if number else q.order_by(DatasetVersion.version.desc()).first()
        path = v.path
    storage = Storage(settings.resolved_storage_root())
    with storage.open(path) as fh:
        return pq.read_table(fh)


def test_a_csv_delivery_becomes_a_typed_versioned_snapshot(client, tokens, dataset_code, db, settings):
    r = upload(client, tokens["gaj_publisher"], dataset_code, "站点.csv", csv_bytes())
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "published" and body["version"]["version"] == 1
    assert body["version"]["row_count"] == 3 and len(body["version"]["checksum"]) == 64
    assert body["run"]["delivered_by"] == "gaj_publisher" and body["collection_status"] == "已归集"
    table = snapshot(db, settings, dataset_code)
    assert table.schema.names == ["bm", "mc", "sl", "rq", "je"]
    assert table.schema.field("sl").type == pa.int64() and table.schema.field("rq").type == pa.date32()
    assert table.column("sl").to_pylist() == [12, None, 7]
    assert table.column("rq").to_pylist() == [dt.date(2024, 3, 1), dt.date(2024, 3, 2), dt.date(2024, 3, 3)]
    assert table.column("je").to_pylist() == [3.5, -1.0, None]
    assert table.column("mc").to_pylist()[2] == "第三站，含逗号"
    detail = client.get(f"/api/v1/datasets/{dataset_code}", headers=bearer(tokens["steward"])).json()
    assert detail["latest_version"] == 1 and detail["row_count"] == 3 and detail["collection_status"] == "已归集"


@pytest.mark.parametrize("name,content", [
    ("gbk.csv", csv_bytes(encoding="gbk")),
    ("gb18030.csv", csv_bytes(encoding="gb18030")),
    ("bom.csv", b"\xef\xbb\xbf" + csv_bytes()),
    ("data.jsonl", "\n".join(json.dumps(dict(zip(HEADER, r)), ensure_ascii=False) for r in ROWS).encode()),
], ids=["gbk", "gb18030", "utf8-bom", "jsonl"])
def test_the_same_content_in_another_encoding_or_format_publishes_nothing_new(
        client, tokens, dataset_code, name, content):
    assert upload(client, tokens["gaj_publisher"], dataset_code, "a.csv", csv_bytes()).status_code == 201
    r = upload(client, tokens["gaj_publisher"], dataset_code, name, content)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "unchanged" and r.json()["version"]["version"] == 1
    assert versions(client, tokens["gaj_publisher"], dataset_code)["total"] == 1


def test_xlsx_and_parquet_deliveries(client, tokens, dataset_code, db, settings):
    wb = Workbook()
    ws = wb.active
    ws.append(HEADER)
    ws.append(["B001", "表格站", 5, dt.datetime(2024, 5, 6), 1.25])
    ws.append(["B002", "表格站二", None, "2024-05-07", 2])
    buf = io.BytesIO()
    wb.save(buf)
    r = upload(client, tokens["gaj_publisher"], dataset_code, "站点.xlsx", buf.getvalue())
    assert r.status_code == 201, r.text
    table = snapshot(db, settings, dataset_code)
    assert table.column("rq").to_pylist() == [dt.date(2024, 5, 6), dt.date(2024, 5, 7)]
    assert table.column("sl").to_pylist() == [5, None] and table.column("je").to_pylist() == [1.25, 2.0]

    pbuf = io.BytesIO()
    pq.write_table(pa.table({"bm": ["C001"], "名称": ["列存站"], "sl": [3], "rq": [dt.date(2024, 6, 1)],
                             "je": [9.5]}), pbuf)
    r = upload(client, tokens["gaj_publisher"], dataset_code, "站点.parquet", pbuf.getvalue())
    assert r.status_code == 201, r.text
    assert r.json()["version"]["version"] == 2
    assert snapshot(db, settings, dataset_code).to_pylist() == [
        {"bm": "C001", "mc": "列存站", "sl": 3, "rq": dt.date(2024, 6, 1), "je": 9.5}]
    # Versions are immutable: version 1 still reads as it was published.
    assert snapshot(db, settings, dataset_code, 1).num_rows == 2


BAD = [
    ("missing column", "a.csv", csv_bytes(rows=[r[:4] for r in ROWS], header=HEADER[:4]), 422, ["缺少列", "金额(je)"]),
    ("extra column", "a.csv", csv_bytes(rows=[r + ("x",) for r in ROWS], header=HEADER + ["备注"]), 422,
     ["多余的列", "备注"]),
    ("undecodable", "a.csv", b"bm,mc\n\x80\x80\xff,\x80\n", 422, ["编码"]),
    ("not an integer", "a.csv", csv_bytes(rows=[ROWS[0], ("A002", "x", "十二", "2024-01-01", "1")]), 422,
     ["第 2 条记录", "文件第 3 行", "sl", "十二", "整数"]),
    ("impossible date", "a.csv", csv_bytes(rows=[ROWS[0], ROWS[1], ("A009", "x", "1", "2023-02-30", "1")]), 422,
     ["第 3 条记录", "rq", "2023-02-30", "日期"]),
    ("empty file", "a.csv", b"", 422, ["文件为空"]),
    ("header only", "a.csv", csv_bytes(rows=[]), 422, ["没有数据行"]),
    ("unsupported type", "a.pdf", b"%PDF-1.4", 422, ["不支持的文件类型"]),
    ("bad json line", "a.jsonl", json.dumps(dict(zip(HEADER, ROWS[0])), ensure_ascii=False).encode() + b"\n{not json}\n",
     422, ["第 2 条记录", "JSON"]),
]


@pytest.mark.parametrize("case,name,content,status,fragments", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_refused_precisely_and_publishes_nothing(client, tokens, dataset_code, case, name, content,
                                                              status, fragments):
    assert upload(client, tokens["gaj_publisher"], dataset_code, "ok.csv", csv_bytes()).status_code == 201
    r = upload(client, tokens["gaj_publisher"], dataset_code, name, content)
    assert r.status_code == status, r.text
    for fragment in fragments:
        assert fragment in r.json()["message"], (fragment, r.json()["message"])
    assert versions(client, tokens["gaj_publisher"], dataset_code)["total"] == 1
    detail = client.get(f"/api/v1/datasets/{dataset_code}", headers=bearer(tokens["gaj_publisher"])).json()
    assert detail["latest_version"] == 1
    if case != "unsupported type":  # refused before it is a delivery at all
        runs = client.get(f"/api/v1/datasets/{dataset_code}/collections", headers=bearer(tokens["gaj_publisher"])).json()
        assert runs["items"][0]["status"] == "failed" and runs["items"][0]["error"]
        assert detail["collection_status"] == "归集失败"


def test_a_file_over_the_size_limit_is_refused(client, tokens, dataset_code, settings):
    settings.max_upload_bytes = 50
    r = upload(client, tokens["gaj_publisher"], dataset_code, "big.csv", csv_bytes())
    assert r.status_code == 413
    assert versions(client, tokens["gaj_publisher"], dataset_code)["total"] == 0


@pytest.mark.parametrize("crash_at", ["move", "flush"])
def test_a_crash_while_publishing_leaves_the_previous_version_served(client, tokens, dataset_code, db, settings,
                                                                     monkeypatch, crash_at):
    assert upload(client, tokens["gaj_publisher"], dataset_code, "v1.csv", csv_bytes()).status_code == 201
    storage = Storage(settings.resolved_storage_root())
    before = set(storage.fs.find(storage.base))

    class Crash(RuntimeError):
        pass

    def boom(*args, **kwargs):
        raise Crash("simulated crash")

    if crash_at == "move":
        monkeypatch.setattr(Storage, "move", boom)
    else:
        monkeypatch.setattr(collection, "_record", boom)  # after the file is in place, before the commit
    changed = csv_bytes(rows=ROWS[:2])
    with pytest.raises(Crash):
        upload(client, tokens["gaj_publisher"], dataset_code, "v2.csv", changed)
    monkeypatch.undo()
    assert versions(client, tokens["gaj_publisher"], dataset_code)["total"] == 1
    assert snapshot(db, settings, dataset_code).num_rows == 3
    # No half-written file remains visible; anything left behind is an orphan the cleanup removes.
    with db.session() as s:
        referenced = {v.path for v in s.query(DatasetVersion)}
    storage.cleanup_orphans(referenced, grace_seconds=0)
    assert set(storage.fs.find(storage.base)) == before
    # The next delivery publishes normally.
    r = upload(client, tokens["gaj_publisher"], dataset_code, "v2.csv", changed)
    assert r.status_code == 201 and r.json()["version"]["version"] == 2


def test_only_the_provider_or_steward_may_deliver(client, tokens, dataset_code):
    assert upload(client, tokens["scjg_publisher"], dataset_code, "a.csv", csv_bytes()).status_code == 403
    assert upload(client, tokens["rsj_consumer"], dataset_code, "a.csv", csv_bytes()).status_code == 403
    r = client.post(f"/api/v1/datasets/{dataset_code}/collections", files={"file": ("a.csv", csv_bytes())})
    assert r.status_code == 401
    assert upload(client, tokens["steward"], dataset_code, "a.csv", csv_bytes()).status_code == 201
    assert client.get(f"/api/v1/datasets/{dataset_code}/collections",
                      headers=bearer(tokens["scjg_publisher"])).status_code == 403


def test_a_withdrawn_dataset_takes_no_delivery(client, tokens, dataset_code):
    client.delete(f"/api/v1/datasets/{dataset_code}", params={"reason": "测试"}, headers=bearer(tokens["gaj_publisher"]))
    assert upload(client, tokens["gaj_publisher"], dataset_code, "a.csv", csv_bytes()).status_code == 409


def test_a_sql_source_is_pulled(client, tokens, dataset_code, db, settings, tmp_path):
    source = tmp_path / "source.db"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE zd (bm TEXT, mc TEXT, sl INTEGER, rq TEXT, je REAL)")
        conn.executemany("INSERT INTO zd VALUES (?, ?, ?, ?, ?)",
                         [("S1", "库表站", 4, "2024-07-01", 1.5), ("S2", "库表站二", None, "2024-07-02", None)])
    r = client.post(f"/api/v1/datasets/{dataset_code}/collections/sql", headers=bearer(tokens["gaj_publisher"]),
                    json={"url": f"sqlite:///{source}", "query": "SELECT bm, mc AS 名称, sl, rq, je FROM zd"})
    assert r.status_code == 201, r.text
    assert r.json()["run"]["source_kind"] == "sql"
    assert snapshot(db, settings, dataset_code).column("sl").to_pylist() == [4, None]


def test_a_sql_source_password_is_never_echoed_or_stored(client, tokens, dataset_code):
    url = "postgresql://reader:Very-s3cret-pw@127.0.0.1:1/none"
    r = client.post(f"/api/v1/datasets/{dataset_code}/collections/sql", headers=bearer(tokens["gaj_publisher"]),
                    json={"url": url, "query": "SELECT 1"})
    assert r.status_code == 422
    assert "Very-s3cret-pw" not in r.text
    runs = client.get(f"/api/v1/datasets/{dataset_code}/collections", headers=bearer(tokens["gaj_publisher"]))
    assert "Very-s3cret-pw" not in runs.text and "***" in runs.json()["items"][0]["source_name"]


def test_status_follows_the_update_cycle():
    class D:
        update_cycle = UpdateCycle.monthly

    now = dt.datetime(2026, 11, 23, tzinfo=dt.timezone.utc)
    assert collection.derive_status(D, None, False, now) == CollectionStatus.not_collected
    assert collection.derive_status(D, now - dt.timedelta(days=10), False, now) == CollectionStatus.collected
    assert collection.derive_status(D, now - dt.timedelta(days=40), False, now) == CollectionStatus.expired
    assert collection.derive_status(D, now - dt.timedelta(days=1), True, now) == CollectionStatus.failed
    D.update_cycle = UpdateCycle.irregular
    assert collection.derive_status(D, now - dt.timedelta(days=4000), False, now) == CollectionStatus.collected


def test_collection_rate_counts_collected_resources(client, tokens, dataset_code):
    before = client.get("/api/v1/indicators/collection", headers=bearer(tokens["steward"])).json()
    upload(client, tokens["gaj_publisher"], dataset_code, "a.csv", csv_bytes())
    after = client.get("/api/v1/indicators/collection", headers=bearer(tokens["steward"])).json()
    assert after["overall"]["collected"] == before["overall"]["collected"] + 1
    gaj = next(d for d in after["departments"] if d["department_code"] == "GAJ")
    assert gaj["rate"] == round(gaj["collected"] / gaj["required"], 4)
    assert sum(gaj["by_status"].values()) == gaj["required"]


def test_an_fsspec_url_as_storage_root_works_like_a_directory(client, tokens, dataset_code, settings, db):
    """The storage seam takes any fsspec URL (s3:// in the scaled deployment); memory:// stands in for it here."""
    import uuid
    settings.storage_root = f"memory://odh-{uuid.uuid4().hex}"
    r = upload(client, tokens["gaj_publisher"], dataset_code, "a.csv", csv_bytes())
    assert r.status_code == 201, r.text
    with db.session() as s:
        path = s.query(DatasetVersion).one().path
    storage = Storage(settings.storage_root)
    assert not storage.is_local and storage.fs.exists(path)
    assert snapshot(db, settings, dataset_code).num_rows == 3
    assert upload(client, tokens["gaj_publisher"], dataset_code, "a.csv", csv_bytes()).json()["status"] == "unchanged"
