"""CKAN Action API compatibility, driven with the real client: ckanapi.RemoteCKAN and the `ckanapi` command line
against a live uvicorn server (one per backend for the whole module), on SQLite and PostgreSQL."""
from __future__ import annotations

import datetime as dt
import io
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import requests
from ckanapi import NotAuthorized, NotFound, RemoteCKAN, ValidationError
from sqlalchemy import select

from catalog.app import create_app
from catalog.auth import issue_token
from catalog.enums import DatasetStatus, OpenType
from catalog.models import DataElement, Dataset, User
from catalog.settings import Settings
from sharing.models import AuditEntry
from tests.helpers import live_server
from tests.conftest import PG_URL, TEST_ELEMENTS, _database
from tests.sharing_helpers import approved_grant, deliver, version_table

CKANAPI = str(Path(sys.executable).parent / "ckanapi")
PUBLIC = {OpenType.unconditional.value, OpenType.restricted.value}


class LiveClient:
    """What tests/sharing_helpers expects of a client, over HTTP to the live server."""

    def __init__(self, url: str):
        self.url = url
        self.http = requests.Session()

    def get(self, path: str, **kw):  # noqa: ANN003, ANN201
        return self.http.get(self.url + path, **kw)

    def post(self, path: str, **kw):  # noqa: ANN003, ANN201
        return self.http.post(self.url + path, **kw)


class Live:
    def __init__(self, url: str, db, settings: Settings, tokens: dict[str, str]):  # noqa: ANN001
        self.url = url
        self.db = db
        self.settings = settings
        self.tokens = tokens
        self.http = LiveClient(url)

    def ckan(self, user: str | None = None, apikey: str | None = None) -> RemoteCKAN:
        return RemoteCKAN(self.url, apikey=apikey or (self.tokens[user] if user else None))

    def action(self, name: str, body=None, *, token: str | None = None, method: str = "POST",  # noqa: ANN001
               headers: dict | None = None, **kw) -> requests.Response:
        h = dict(headers or {})
        if token:
            h["Authorization"] = token
        if method == "GET":
            return requests.get(f"{self.url}/api/3/action/{name}", params=body, headers=h, **kw)
        return requests.post(f"{self.url}/api/3/action/{name}", json=body if body is not None else {}, headers=h, **kw)

    def codes(self, *, public_only: bool) -> set[str]:
        with self.db.session() as s:
            rows = s.execute(select(Dataset.code, Dataset.open_type).where(Dataset.status == DatasetStatus.published))
            return {c.lower() for c, o in rows if not public_only or getattr(o, "value", o) in PUBLIC}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live(request, templates, tmp_path_factory):  # noqa: ANN001, ANN201
    """A seeded catalog with the demo deliveries, test data elements and a token per user, served by uvicorn."""
    if request.param == "postgresql" and not PG_URL:
        if os.environ.get("CI"):
            pytest.fail("ODH_TEST_POSTGRES_URL is not set: the PostgreSQL tests must run in CI (see tests/run.sh)")
        pytest.skip("PostgreSQL tests need ODH_TEST_POSTGRES_URL (tests/run.sh sets it)")
    tmp = tmp_path_factory.mktemp(f"ckan_{request.param}")
    databases = _database(request.param, "seeded", templates, tmp)
    db = next(databases)
    settings = Settings(data_dir=tmp / "var", secret_key="test-secret")
    deliver(db, settings)
    tokens = {}
    with db.session() as s:
        for identifier, (name, sensitivity, grade, max_length, data_type) in TEST_ELEMENTS.items():
            s.add(DataElement(identifier=identifier, version="1.0", name=name, data_type=data_type,
                              max_length=max_length, sensitivity=sensitivity, security_grade=grade, checks=[]))
        for user in s.execute(select(User)).scalars():
            tokens[user.username] = issue_token(s, settings.secret_key, user, "test", 1)[1]
    app = create_app(settings, database=db)
    try:
        with live_server(app) as url:
            yield Live(url, db, settings, tokens)
    finally:
        next(databases, None)


def _cli(live: Live, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(CKANAPI).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    out = subprocess.run([CKANAPI, *args, "-r", live.url], capture_output=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr.decode()
    return out


def _our_search(live: Live, q: str, token: str | None = None) -> list[str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = live.http.get("/api/v1/datasets", params={"q": q, "page_size": 100}, headers=headers).json()
    return [h["code"].lower() for h in body["items"]]


# ---------------------------------------------------------------- the command line
def test_done_when_cli_package_search_prints_the_credit_datasets(live):
    out = _cli(live, "action", "package_search", "q=信用")
    result = json.loads(out.stdout)
    ours = _our_search(live, "信用")  # what our own API shows anonymous callers, best first
    assert result["count"] == len(ours) > 10
    assert [p["name"] for p in result["results"]] == ours[:10]  # CKAN's default rows=10, same ranking
    assert {"fgw-00001", "fgw-00002"} <= {p["name"] for p in result["results"]}
    assert all(not p["private"] and "信用" in json.dumps(p, ensure_ascii=False) for p in result["results"])
    everything = json.loads(_cli(live, "action", "package_search", "q=信用", "rows=100").stdout)
    assert [p["name"] for p in everything["results"]] == ours


def test_cli_dump_yields_every_visible_dataset_as_json_lines(live):
    anonymous = _cli(live, "dump", "datasets", "--all", "-q")
    lines = [json.loads(line) for line in anonymous.stdout.decode().splitlines() if line.strip()]
    assert {p["name"] for p in lines} == live.codes(public_only=True)
    assert all(p["organization"]["name"] == p["owner_org"].lower() for p in lines)

    steward = _cli(live, "dump", "datasets", "--all", "-q", "--include-private", "-a", live.tokens["steward"])
    lines = [json.loads(line) for line in steward.stdout.decode().splitlines() if line.strip()]
    assert {p["name"] for p in lines} == live.codes(public_only=False)
    gaj = next(p for p in lines if p["name"] == "gaj-00001")
    assert gaj["private"] is True and [r["format"] for r in gaj["resources"]] == ["CSV", "JSON", "Parquet"]

    searched = _cli(live, "search", "datasets", "q=信用", "fq=organization:fgw")
    names = {json.loads(line)["name"] for line in searched.stdout.decode().splitlines() if line.strip()}
    assert names and all(n.startswith("fgw-") for n in names)


# ---------------------------------------------------------------- reading with RemoteCKAN
def test_package_search_filters_facets_paging_and_sort(live):
    ckan = live.ckan()
    result = ckan.call_action("package_search", {
        "q": "信用", "fq": "organization:fgw", "rows": 3,
        "facet.field": ["organization", "tags", "groups", "license_id", "share_type"], "facet.limit": 5})
    assert 3 < result["count"] == len([n for n in _our_search(live, "信用") if n.startswith("fgw-")])
    assert len(result["results"]) == 3 and result["sort"] == "score desc, metadata_modified desc"
    assert result["facets"]["organization"] == {"fgw": result["count"]}  # counts over the result set
    assert 0 < result["facets"]["tags"]["信用"] <= result["count"] and len(result["facets"]["tags"]) <= 5
    items = result["search_facets"]["organization"]["items"]
    assert items == [{"name": "fgw", "display_name": "示范市发展和改革委员会", "count": result["count"]}]
    assert set(result["facets"]["license_id"]) <= {"odh-open-unconditional", "odh-open-restricted"}

    tagged = ckan.call_action("package_search", {"fq": 'tags:失信 +groups:"基础库"', "rows": 50})
    assert tagged["count"] >= 1
    assert all("失信" in [t["name"] for t in p["tags"]] and "基础库" in [g["name"] for g in p["groups"]]
               for p in tagged["results"])
    collected = ckan.call_action("package_search", {"fq": "res_format:CSV", "rows": 50})
    with live.db.session() as s:
        with_data = {c.lower() for c, o in s.execute(select(Dataset.code, Dataset.open_type).where(
            Dataset.status == DatasetStatus.published, Dataset.latest_version.is_not(None)))
            if getattr(o, "value", o) in PUBLIC}
    assert {p["name"] for p in collected["results"]} == with_data >= {"sthj-00001", "scjg-00001"}

    everything = ckan.call_action("package_search", {"sort": "name asc", "rows": 1000})
    names = [p["name"] for p in everything["results"]]
    assert names == sorted(names) and set(names) == live.codes(public_only=True)
    page = ckan.call_action("package_search", {"sort": "name asc", "rows": 4, "start": 3})
    assert [p["name"] for p in page["results"]] == names[3:7]
    odd = ckan.call_action("package_search", {"sort": "name asc", "rows": 3, "start": 5})
    assert [p["name"] for p in odd["results"]] == names[5:8]
    assert ckan.call_action("package_search", {"rows": 5000})["count"] == len(names)  # rows capped, not refused
    assert ckan.call_action("package_search", {"q": "name:fgw-00003"})["count"] == 1


def test_anonymous_sees_only_the_open_catalog_and_include_private_adds_only_what_the_caller_may_see(live):
    anonymous, steward = live.ckan(), live.ckan("steward")
    public = live.codes(public_only=True)
    everything = live.codes(public_only=False)
    assert public < everything
    assert anonymous.call_action("package_search", {"include_private": True, "rows": 0})["count"] == len(public)
    assert steward.call_action("package_search", {"rows": 0})["count"] == len(public)
    assert steward.call_action("package_search", {"include_private": True, "rows": 0})["count"] == len(everything)
    assert set(anonymous.action.package_list(include_private=True)) == public
    assert set(steward.action.package_list(include_private=True)) == everything
    r = live.http.post("/api/v1/public/register", json={"username": "citizen_ckan", "display_name": "市民",
                                                         "password": "long-password-123", "contact": "13800000000"})
    assert r.status_code == 201, r.text
    citizen = live.http.post("/api/v1/auth/login", json={"username": "citizen_ckan",
                                                          "password": "long-password-123"}).json()["token"]
    outside = live.ckan(apikey=citizen)  # a registered outside user sees what the public sees
    assert outside.call_action("package_search", {"include_private": True, "rows": 0})["count"] == len(public)
    assert set(outside.action.package_list(include_private=True)) == public
    with pytest.raises(NotFound):
        outside.action.package_show(id="gaj-00001")
    with pytest.raises(NotFound):
        anonymous.action.package_show(id="gaj-00001")  # 禁止开放
    assert steward.action.package_show(id="gaj-00001")["private"] is True
    assert set(anonymous.action.organization_list()) < set(steward.action.organization_list())
    with pytest.raises(NotFound):
        anonymous.action.organization_show(id="gaj")  # provides no open dataset
    assert anonymous.action.organization_show(id="FGW")["package_count"] == len(
        [c for c in public if c.startswith("fgw-")])


def test_package_show_maps_a_dataset_to_a_package(live):
    steward = live.ckan("steward")
    by_name = steward.action.package_show(id="scjg-00001")
    assert by_name == steward.action.package_show(id="SCJG-00001")
    assert by_name["id"] == "SCJG-00001" and by_name["title"] == "企业登记基本信息"
    assert by_name["organization"]["name"] == "scjg" and by_name["owner_org"] == "SCJG"
    extras = {e["key"]: e["value"] for e in by_name["extras"]}
    assert extras["共享类型"] == "无条件共享" and extras["开放类型"] == "受限开放" and extras["归集状态"] == "已归集"
    assert "统一社会信用代码(tyshxydm, DE0201001)" in extras["权威来源数据项"]
    assert by_name["license_id"] == "odh-open-restricted" and by_name["private"] is False
    assert [g["name"] for g in by_name["groups"]][0] == "基础库"
    resources = by_name["resources"]
    assert [r["id"] for r in resources] == ["scjg-00001-v1-csv", "scjg-00001-v1-json", "scjg-00001-v1-parquet"]
    assert all(r["datastore_active"] and "/gateway/v1/datasets/SCJG-00001/rows" in r["url"] for r in resources)
    assert steward.action.resource_show(id="scjg-00001-v1-json") == resources[1]
    items = {i["code"]: i for i in by_name["items"]}
    assert items["tyshxydm"]["source"] == "authoritative" and items["tyshxydm"]["element"] == "DE0201001"
    rsj = {i["code"]: i for i in steward.action.package_show(id="rsj-00001")["items"]}
    assert rsj["sfzhm"]["source"] == "reference" and rsj["sfzhm"]["reference"] == "GAJ-00001"

    sthj = live.ckan().action.package_show(id="sthj-00001")
    assert sthj["isopen"] and "/open/v1/datasets/STHJ-00001/download?format=csv&version=1" in sthj["resources"][0]["url"]
    groups = live.ckan().action.group_list(all_fields=True)
    assert {"基础库", "主题库", "专题库", "部门库"} <= {g["name"] for g in groups}
    assert "信用" in live.ckan().action.tag_list(query="信用")
    assert {lic["id"] for lic in live.ckan().action.license_list()} >= {"odh-open-unconditional", "odh-not-open"}
    me = live.ckan("gaj_publisher").action.user_show()
    assert me["name"] == "gaj_publisher" and me["organization"] == "gaj"
    with pytest.raises(NotAuthorized):
        live.ckan("gaj_publisher").action.user_show(id="steward")
    assert live.ckan().action.status_show()["ckan_version"].startswith("2.")


# ---------------------------------------------------------------- the envelope and the transports
def test_envelope_errors_and_transports_match_ckan(live):
    ok = live.action("package_show", {"id": "fgw-00003"})
    assert ok.status_code == 200 and ok.headers["content-type"].startswith("application/json")
    body = ok.json()
    assert body["success"] is True and body["help"].endswith("/api/3/action/help_show?name=package_show")

    missing = live.action("package_show", {"id": "fgw-99999"})
    assert missing.status_code == 404
    assert missing.json()["error"] == {"__type": "Not Found Error", "message": "Not found: 资源 FGW-99999 不存在"}
    denied = live.action("package_create", {"title": "x"})
    assert denied.status_code == 403 and denied.json()["error"]["__type"] == "Authorization Error"
    assert denied.json()["error"]["message"].startswith("Access denied")
    invalid = live.action("package_create", {"title": "x"}, token=live.tokens["mzj_user"])
    assert invalid.status_code == 409 and invalid.json()["success"] is False
    error = invalid.json()["error"]
    assert error["__type"] == "Validation Error" and "message" not in error
    assert all(isinstance(v, list) for k, v in error.items() if k != "__type") and "groups" in error
    bad_query = live.action("package_search", {"fq": "-tags:x"})
    assert bad_query.status_code == 400 and bad_query.json()["error"]["__type"] == "Search Query Error"

    unknown = live.action("no_such_action")
    assert unknown.status_code == 400 and unknown.json() == "Bad request: Action name not known: no_such_action"
    get_write = requests.get(f"{live.url}/api/action/package_create", params={"title": "x"})
    assert get_write.status_code == 400
    assert get_write.json() == "Bad request: JSON Error: Invalid request. Please use POST method for your request"

    # GET, form, urllib-style JSON-in-a-form, multipart, the unversioned path; both token headers.
    get = live.action("package_search", {"q": "信用", "rows": "2", "facet.field": '["organization"]'}, method="GET")
    assert get.json()["result"]["count"] == len(_our_search(live, "信用")) and len(get.json()["result"]["results"]) == 2
    form = requests.post(f"{live.url}/api/action/package_show", data={"id": "fgw-00003"})
    assert form.json()["result"]["name"] == "fgw-00003"
    urllib_style = requests.post(f"{live.url}/api/action/package_show", data=json.dumps({"id": "fgw-00003"}) + "=1",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert urllib_style.json()["result"]["name"] == "fgw-00003"
    multipart = requests.post(f"{live.url}/api/3/action/package_show", files={"id": (None, "fgw-00003")})
    assert multipart.json()["result"]["name"] == "fgw-00003"
    private = {"include_private": True, "rows": 0}
    total = len(live.codes(public_only=False))
    for headers in ({"X-CKAN-API-Key": live.tokens["steward"]}, {"Authorization": live.tokens["steward"]},
                    {"Authorization": f"Bearer {live.tokens['steward']}"}):
        assert live.action("package_search", private, headers=headers).json()["result"]["count"] == total
    bad_token = live.action("package_search", private, headers={"Authorization": "odh_not-a-token"})
    assert bad_token.status_code == 403 and bad_token.json()["error"]["__type"] == "Authorization Error"


# ---------------------------------------------------------------- writing
def _package(element: str = "测试名称", **overrides) -> dict:
    body = {
        "name": "mzj-00091", "title": "便民服务驿站点位", "notes": "全市便民服务驿站的位置与开放时间。",
        "tags": [{"name": "便民"}, {"name": "驿站"}], "owner_org": "mzj",
        "groups": [{"name": "主题库"}, {"name": "民政服务"}], "maintainer": "周芳",
        "extras": [{"key": "共享类型", "value": "无条件共享"}, {"key": "开放类型", "value": "无条件开放"},
                   {"key": "安全分级", "value": "L1"}, {"key": "更新周期", "value": "每月"}],
        "items": [{"code": "mc", "name": "名称", "element": TEST_ELEMENTS_BY_NAME[element], "is_key": True,
                   "required": True}],
    }
    body.update(overrides)
    return body


TEST_ELEMENTS_BY_NAME = {name: identifier for identifier, (name, *_rest) in TEST_ELEMENTS.items()}


def test_create_show_patch_update_delete_through_remoteckan(live):
    publisher = live.ckan("mzj_user")
    created = publisher.action.package_create(**_package())
    assert created["id"] == "MZJ-00091" and created["name"] == "mzj-00091" and created["resources"] == []
    assert [t["name"] for t in created["tags"]] == ["便民", "驿站"]
    assert [g["name"] for g in created["groups"]] == ["主题库", "民政服务"]
    extras = {e["key"]: e["value"] for e in created["extras"]}
    assert extras["开放类型"] == "无条件开放" and extras["权威来源数据项"] == f"名称(mc, {TEST_ELEMENTS_BY_NAME['测试名称']})"
    assert live.ckan().action.package_search(q="便民 驿站")["count"] == 1  # indexed at once, visible to anyone

    patched = publisher.action.package_patch(id="mzj-00091", notes="改过的摘要", share_type="有条件共享",
                                             share_condition="用于民政业务")  # our field names, top level
    assert patched["notes"] == "改过的摘要" and patched["title"] == "便民服务驿站点位"
    patched_extras = {e["key"]: e["value"] for e in patched["extras"]}
    assert patched_extras["共享类型"] == "有条件共享" and patched_extras["共享条件"] == "用于民政业务"
    assert patched_extras["开放类型"] == "无条件开放" and [t["name"] for t in patched["tags"]] == ["便民", "驿站"]
    regrouped = publisher.action.package_patch(id="mzj-00091", topic="社会救助")
    assert [g["name"] for g in regrouped["groups"]] == ["主题库", "社会救助"]
    regrouped = publisher.action.package_patch(id="mzj-00091", groups=[{"name": "专题库"}])
    assert [g["name"] for g in regrouped["groups"]] == ["专题库"]
    with pytest.raises(ValidationError) as conflict:  # the same field given two ways must agree
        publisher.action.package_patch(id="mzj-00091", share_type="无条件共享", extras=patched["extras"])
    assert "share_type" in conflict.value.error_dict

    shown = publisher.action.package_show(id="mzj-00091")
    shown["title"] = "便民服务驿站点位（更新）"
    shown["tags"] = [{"name": "便民"}]
    updated = publisher.action.package_update(**shown)  # show → update round-trips (items, read-only extras)
    assert updated["title"].endswith("（更新）") and [t["name"] for t in updated["tags"]] == ["便民"]
    assert updated["items"] == shown["items"]
    dropped = publisher.action.package_update(**{k: v for k, v in shown.items() if k != "notes"})
    assert dropped["notes"] == ""  # package_update replaces: a field left out is cleared
    with pytest.raises(ValidationError) as missing:
        publisher.action.package_update(id="mzj-00091", title="只有标题")
    assert set(missing.value.error_dict) >= {"groups", "share_type", "open_type"}

    with pytest.raises(NotAuthorized):
        live.ckan("gaj_publisher").action.package_patch(id="mzj-00091", notes="别的部门")
    with pytest.raises(NotAuthorized):
        live.ckan("gaj_publisher").action.package_delete(id="mzj-00091")
    assert publisher.action.package_delete(id="mzj-00091") is None
    assert publisher.action.package_show(id="mzj-00091")["state"] == "deleted"
    with pytest.raises(NotFound):
        live.ckan().action.package_show(id="mzj-00091")
    assert live.ckan().action.package_search(q="便民 驿站")["count"] == 0
    assert "mzj-00091" not in live.ckan("steward").action.package_list(include_private=True)


def test_catalog_rules_and_one_source_answer_validation_errors(live):
    publisher = live.ckan("mzj_user")
    with pytest.raises(ValidationError) as rules:
        publisher.action.package_create(**_package("测试编码", name="mzj-00092", extras=[
            {"key": "共享类型", "value": "无条件共享"}, {"key": "开放类型", "value": "无条件开放"},
            {"key": "安全分级", "value": "L3"}, {"key": "更新周期", "value": "每月"}]))
    errors = rules.value.error_dict
    assert errors["__type"] == "Validation Error" and "message" not in errors
    assert any("L1" in m for m in errors["open_type"]) and all(isinstance(v, list) for k, v in errors.items()
                                                               if k != "__type")

    # 一数一源: 公民身份号码 is sourced by 公安局's 人口基本信息; a second authoritative claim names that source.
    claim = [{"code": "sfzhm", "name": "公民身份号码", "element": "DE0101001", "is_key": True, "required": True}]
    with pytest.raises(ValidationError) as conflict:
        publisher.action.package_create(**_package(name="mzj-00093", items=claim, extras=[
            {"key": "共享类型", "value": "有条件共享"}, {"key": "共享条件", "value": "民政业务"},
            {"key": "开放类型", "value": "禁止开放"}, {"key": "安全分级", "value": "L3"},
            {"key": "更新周期", "value": "每月"}]))
    errors = conflict.value.error_dict
    assert "GAJ-00001" in errors["items.0.source"][0] and "GAJ-00001" in errors["authoritative_source"][0]
    with pytest.raises(ValidationError) as unknown_extra:
        publisher.action.package_create(**_package("测试编码", name="mzj-00094", extras=[{"key": "颜色", "value": "红"}]))
    assert any("颜色" in m for m in unknown_extra.value.error_dict["extras"])
    with pytest.raises(NotAuthorized):
        publisher.action.package_create(**_package("测试编码", name="gaj-00094", owner_org="gaj"))  # not its own
    with pytest.raises(NotFound):
        live.ckan("mzj_user").action.package_patch(id="gaj-09999", notes="x")


# ---------------------------------------------------------------- data: upload and datastore_search
def test_resource_create_uploads_a_version_and_open_data_is_searchable_anonymously(live):
    csv = "xzqhdm,xzqhmc,qhjbdm,cxfldm\n330100,示范市,2,\n330102,上城区,3,111\n330106,西湖区,3,111\n330110,余杭区,3,112\n"
    publisher = live.ckan("mzj_user")
    resource = publisher.action.resource_create(package_id="mzj-00002", upload=("行政区划.csv", io.BytesIO(csv.encode())))
    assert resource["id"] == "mzj-00002-v1-csv" and resource["format"] == "CSV" and resource["datastore_active"]
    assert resource["row_count"] == 4 and "/open/v1/datasets/MZJ-00002/download" in resource["url"]
    package = live.ckan().action.package_show(id="mzj-00002")
    assert package["resources"][0]["id"] == "mzj-00002-v1-csv" and package["version"] == "1"
    with pytest.raises(ValidationError) as refused:
        publisher.action.resource_create(package_id="mzj-00002", upload=("bad.csv", io.BytesIO(b"foo,bar\n1,2\n")))
    assert refused.value.error_dict["upload"]
    with pytest.raises(NotAuthorized):
        live.ckan("gaj_publisher").action.resource_create(package_id="mzj-00002",
                                                          upload=("x.csv", io.BytesIO(csv.encode())))

    anonymous = live.ckan()
    found = anonymous.action.datastore_search(resource_id="mzj-00002-v1-csv", filters={"qhjbdm": "3"},
                                              sort="xzqhdm desc", limit=2)
    assert found["total"] == 3 and found["limit"] == 2 and found["offset"] == 0
    assert [r["xzqhdm"] for r in found["records"]] == ["330110", "330106"]
    assert [f["id"] for f in found["fields"]][:5] == ["_id", "xzqhdm", "xzqhmc", "qhjbdm", "cxfldm"]
    assert found["_links"]["next"].endswith("offset=2")
    rest = anonymous.action.datastore_search(resource_id="mzj-00002-v1-csv", filters={"qhjbdm": "3"},
                                             sort="xzqhdm desc", limit=2, offset=2)
    assert [r["xzqhdm"] for r in rest["records"]] == ["330102"]
    by_get = RemoteCKAN(live.url, get_only=True).call_action(
        "datastore_search", {"resource_id": "mzj-00002-v1-csv", "filters": json.dumps({"xzqhdm": ["330102", "330110"]}),
                             "fields": "xzqhdm,xzqhmc"})
    assert [(r["xzqhdm"], r["xzqhmc"]) for r in by_get["records"]] == [("330102", "上城区"), ("330110", "余杭区")]
    text = anonymous.action.datastore_search(resource_id="mzj-00002-v1-json", q="西湖", fields=["xzqhmc"])
    assert text["records"] == [{"_id": 3, "xzqhmc": "西湖区"}]
    with pytest.raises(ValidationError):
        anonymous.action.datastore_search(resource_id="mzj-00002-v1-csv", filters={"nope": "1"})
    with pytest.raises(NotFound):
        anonymous.action.datastore_search(resource_id="mzj-00002-v9-csv")
    with pytest.raises(NotFound):
        anonymous.action.datastore_search(resource_id="gaj-00001-v1-csv")  # not open: invisible
    with pytest.raises(NotAuthorized):
        live.ckan("steward").action.datastore_search(resource_id="gaj-00001-v1-csv")  # shared: needs a grant

    with live.db.session() as s:
        entries = s.execute(select(AuditEntry).where(AuditEntry.action == "ckan.datastore_search")).scalars().all()
    mine = [e for e in entries if e.detail.get("resource_id", "").startswith("mzj-00002")]
    assert {e.status for e in mine} >= {200, 404, 409} and all(e.kind == "open" for e in mine)
    assert any(e.detail.get("rows") == 2 for e in mine)


def test_datastore_search_with_a_grant_credential_serves_the_masked_scope(live):
    _req, cred = approved_grant(live.http, live.tokens)
    consumer = live.ckan(apikey=cred)
    truth = version_table(live.db, live.settings, "GAJ-00001")
    expected = truth.filter(pc.and_(pc.equal(truth["xbdm"], "1"),
                                    pc.greater_equal(truth["csrq"], pa.scalar(dt.date(1970, 1, 1)))))
    page = consumer.action.datastore_search(resource_id="gaj-00001-v1-json", limit=5)
    assert page["total"] == expected.num_rows and len(page["records"]) == 5
    assert [f["id"] for f in page["fields"]][:5] == ["_id", "sfzhm", "xm", "csrq", "hjdxzqhdm"]
    assert page["masked"] == {"sfzhm": "id_number", "xm": "name"}
    first = expected["sfzhm"][0].as_py()
    assert page["records"][0]["sfzhm"] == first[:6] + "*" * 8 + first[-4:]
    assert [r["_id"] for r in page["records"]] == [1, 2, 3, 4, 5]

    day = Counter(expected["csrq"].to_pylist()).most_common(1)[0][0]  # a birth date that occurs in the scope
    born = consumer.action.datastore_search(resource_id="gaj-00001-v1-csv", filters={"csrq": day.isoformat()})
    assert born["total"] == pc.sum(pc.equal(expected["csrq"], pa.scalar(day))).as_py() >= 1
    assert all(r["csrq"] == day.isoformat() for r in born["records"])
    capped = consumer.action.datastore_search(resource_id="gaj-00001-v1-csv", limit=32000)
    assert capped["limit"] == live.settings.gateway_max_page_rows
    with pytest.raises(NotAuthorized):
        consumer.action.datastore_search(resource_id="gaj-00001-v1-csv", filters={"sfzhm": "x"})  # masked
    with pytest.raises(NotAuthorized):
        consumer.action.datastore_search(resource_id="gaj-00001-v1-csv", filters={"xbdm": "1"})  # not granted
    with pytest.raises(NotAuthorized):
        consumer.action.datastore_search(resource_id="gaj-00001-v1-csv", sort="xm asc")  # masked
    with pytest.raises(NotAuthorized):
        consumer.action.datastore_search(resource_id="scjg-00001-v1-csv")  # another dataset
    with pytest.raises(NotAuthorized):
        live.ckan(apikey="odg_forged").action.datastore_search(resource_id="gaj-00001-v1-csv")
    with pytest.raises(NotAuthorized):
        consumer.action.package_create(**_package(name="mzj-00095"))  # a grant credential is not a user

    with live.db.session() as s:
        entries = s.execute(select(AuditEntry).where(AuditEntry.action == "ckan.datastore_search",
                                                     AuditEntry.grant_id.is_not(None))).scalars().all()
    assert {e.status for e in entries} >= {200, 403} and all(e.kind == "gateway" for e in entries)
    assert any(e.detail.get("rows") == 5 for e in entries)
