"""Federation (市县一体化): a city instance harvests a county instance of this product over HTTP (ckanapi), on SQLite
and PostgreSQL — provenance, mirror departments, incremental runs, withdrawals, local ownership, 一数一源 — and a
tiny fake CKAN for the failures (timeouts, 5xx, malformed JSON) and for CKAN's own range-query listing."""
from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from catalog.app import create_app
from catalog.auth import Principal, issue_token
from catalog.cli import app as cli_app
from catalog.db import Database
from catalog.enums import DatasetStatus, ItemSource
from catalog.errors import CatalogRuleError
from catalog.federation import harvester as harvester_module
from catalog.federation.harvester import Harvester
from catalog.federation.models import HarvestDepartment, HarvestItem, HarvestRecord, HarvestRun, HarvestSource
from catalog.models import AuthoritativeSource, CatalogState, DataItem, Dataset, Department, User
from catalog.schemas import DatasetCreate
from catalog.search import CatalogSearch, backend_for
from catalog.security import hash_password
from catalog.service import create_dataset, withdraw_dataset
from catalog.settings import Settings
from schemas.loader import load_standards, read_standards
from tests.helpers import live_server
from tests.conftest import _pg_url, bearer

runner = CliRunner()


# ---------------------------------------------------------------- two instances: a county (served) and a city
@dataclass
class County:
    url: str
    db: Any
    token: str

    def api(self, method: str, path: str, **kw) -> requests.Response:
        return requests.request(method, f"{self.url}/api/v1{path}", headers=bearer(self.token), timeout=30, **kw)

    def published(self) -> set[str]:
        with self.db.session() as s:
            return set(s.execute(select(Dataset.code).where(Dataset.status == DatasetStatus.published)).scalars())


@pytest.fixture
def county(db, tmp_path):
    """The seeded demo catalog, playing the county, served by uvicorn on a free port (its CKAN API included)."""
    settings = Settings(data_dir=tmp_path / "county", secret_key="county-secret")
    with db.session() as s:
        steward = s.execute(select(User).where(User.username == "steward")).scalar_one()
        token = issue_token(s, settings.secret_key, steward, "federation", 1)[1]
    with live_server(create_app(settings, database=db)) as url:
        yield County(url, db, token)


@dataclass
class City:
    db: Any
    search: CatalogSearch
    steward: Principal
    token: str
    tmp: Path
    sleeps: list[float] = field(default_factory=list)

    def harvester(self, **kw) -> Harvester:
        return Harvester(self.db, self.search, sleep=self.sleeps.append, **kw)

    def add_source(self, name: str, url: str, prefix: str, api_key: str | None = None, **kw) -> None:
        config = {"title": kw.pop("title", name), "page_size": 20, "timeout": 5.0, "retries": 2, "backoff": 0.01,
                  "mode": "auto", **kw}
        with self.db.session() as s:
            s.add(HarvestSource(name=name, url=url, prefix=prefix, api_key=api_key, active=True, **config))

    def dataset(self, code: str) -> Dataset | None:
        with self.db.session() as s:
            d = s.execute(select(Dataset).where(Dataset.code == code)).unique().scalar_one_or_none()
            if d is not None:
                _ = [(i.data_element.identifier, i.reference_item_id) for i in d.items]
            return d

    def harvested(self, source: str | None = None) -> dict[str, Dataset]:
        with self.db.session() as s:
            query = select(Dataset).join(HarvestRecord, HarvestRecord.dataset_id == Dataset.id)
            if source:
                query = query.join(HarvestSource, HarvestSource.id == HarvestRecord.source_id).where(
                    HarvestSource.name == source)
            return {d.code: d for d in s.execute(query).unique().scalars()}

    def claims(self) -> dict[str, str]:
        with self.db.session() as s:
            return {a.element_identifier: a.dataset.code for a in s.execute(select(AuthoritativeSource)).scalars()}

    def app(self):  # noqa: ANN201
        return create_app(Settings(data_dir=self.tmp / "var", secret_key="city-secret"), database=self.db)

    def generation(self) -> int:
        with self.db.session() as s:
            return s.get(CatalogState, 1).generation


CITY_GAJ = {
    "code": "GAJ-00001", "department": "GAJ", "name": "常住人口信息", "summary": "全市常住人口的身份信息（城市自有）。",
    "category": "基础库", "base_library": "人口库", "share_type": "有条件共享", "share_condition": "依法履职核验身份",
    "open_type": "禁止开放", "update_cycle": "每日", "security_grade": "L3",
    "items": [{"code": "sfzhm", "name": "公民身份号码", "element": "DE0101001", "is_key": True, "required": True}],
}


_city_numbers = itertools.count()


def _city_database(backend: str, templates, tmp: Path):  # noqa: ANN001, ANN202
    """A fresh database from the migrated, empty template — named apart from the `db` fixture's databases (this
    module's import of tests.conftest is a second copy of it, with its own counter)."""
    if backend == "sqlite":
        tmp.mkdir()
        path = tmp / "city.db"
        shutil.copy(templates.sqlite_template("empty"), path)
        db = Database(f"sqlite:///{path}")
        yield db
        db.dispose()
        return
    from sqlalchemy.engine import make_url

    from tests.conftest import PG_URL

    name = f"{make_url(PG_URL).database}_city_{os.getpid()}_{next(_city_numbers)}"
    templates.create_pg(name, templates.pg_template("empty"))
    db = Database(_pg_url(name))
    yield db
    db.dispose()
    templates.drop_pg(name)


@pytest.fixture
def city(backend, templates, tmp_path):
    """A second, migrated database holding the standards and the city's own 公安局 with one authoritative claim."""
    databases = _city_database(backend, templates, tmp_path / "city")
    db = next(databases)
    search = CatalogSearch(backend_for(db.dialect))
    with db.session() as s:
        load_standards(s, read_standards())
        dsj = Department(code="DSJ", name="示范市大数据发展管理局", short_name="大数据局")
        gaj = Department(code="GAJ", name="示范市公安局", short_name="市公安局")  # the county's 公安局 has this name too
        s.add_all([dsj, gaj])
        s.flush()
        user = User(username="city_steward", display_name="市大数据局", department_id=dsj.id,
                    roles=["steward", "admin"], password_hash=hash_password("city-steward-2026"))
        s.add(user)
        s.flush()
        user = s.get(User, user.id)
        steward = Principal.of(user)
        token = issue_token(s, "city-secret", user, "test", 1)[1]
        create_dataset(s, search, steward, DatasetCreate.model_validate(CITY_GAJ))
    try:
        yield City(db, search, steward, token, tmp_path / "city")
    finally:
        next(databases, None)


# ---------------------------------------------------------------- the city harvests the county
def test_the_city_harvests_the_county_with_provenance_and_mirror_departments(county, city):
    city.add_source("xc", county.url, "XC", api_key=county.token, title="示范县")
    run = city.harvester().run("xc")

    assert run.status == "ok", run.errors
    assert run.mode == "search_desc"  # our CKAN API has no metadata_modified range queries: the descending sweep
    expected = {f"XC{code}" for code in county.published()}
    assert run.created == len(expected) > 50 and run.pages >= 3  # 20 per page: several transactions
    assert (run.updated, run.withdrawn, run.skipped, run.errors) == (0, 0, 0, [])
    assert run.started_at <= run.finished_at
    assert set(city.harvested("xc")) == expected

    population = city.dataset("XCGAJ-00001")
    assert population.name == "人口基本信息" and population.status == DatasetStatus.published
    assert population.department.code == "XCGAJ"
    # The county's 公安局 is named like the city's own: the mirror says whose it is.
    assert population.department.name == "示范市公安局（示范县）"
    assert population.related == ["XCGAJ-00002", "XCGAJ-00004"]
    assert population.created_by_id is None
    with city.db.session() as s:
        record = s.get(HarvestRecord, population.id)
        assert (record.remote_id, record.remote_name, record.remote_org, record.remote_state) == (
            "GAJ-00001", "gaj-00001", "gaj", "active")
        with county.db.session() as cs:
            remote = cs.execute(select(Dataset).where(Dataset.code == "GAJ-00001")).unique().scalar_one()
            assert record.remote_modified == remote.updated_at
            assert remote.department.name == "示范市公安局"
        mirrors = {m.department.code: m.remote_org for m in s.execute(select(HarvestDepartment)).scalars()}
        assert mirrors["XCGAJ"] == "gaj" and mirrors["XCSCJG"] == "scjg" and "GAJ" not in mirrors
        # 一数一源 across the federation: every harvested item is a copy here; its role at the county is recorded.
        items = {(d, i.code): i for d in ("XCGAJ-00001", "XCGAJ-00002")
                 for i in s.execute(select(DataItem).join(Dataset).where(Dataset.code == d)).scalars()}
        assert all(i.source == ItemSource.reference and i.reference_item_id is None for i in items.values())
        provenance = {(h.remote_item, h.remote_source, h.remote_dataset)
                      for h in s.execute(select(HarvestItem).join(Dataset, Dataset.id == HarvestItem.dataset_id)
                                         .where(Dataset.code.in_(["XCGAJ-00001", "XCGAJ-00002"]))).scalars()}
        assert ("sfzhm", "authoritative", "GAJ-00001") in provenance  # the county's 人口基本信息 is the source there
        assert ("hjdxzqhdm", "reference", "MZJ-00002") in provenance
        assert ("jzzbh", "authoritative", "GAJ-00002") in provenance
        assert ("sfzhm", "reference", "GAJ-00001") in provenance  # 居住证信息 copies it at the county too

    # The harvested datasets are in the city's catalog: searchable, with the mirror department as a facet.
    with TestClient(city.app()) as client:
        hits = client.get("/api/v1/datasets", params={"q": "人口基本信息"}, headers=bearer(city.token)).json()
        assert "XCGAJ-00001" in [h["code"] for h in hits["items"]]
        detail = client.get("/api/v1/datasets/XCGAJ-00001", headers=bearer(city.token)).json()
        assert detail["department"]["code"] == "XCGAJ"
        assert {i["source"] for i in detail["items"]} == {"reference"}


def test_a_second_run_with_nothing_changed_writes_nothing(county, city):
    city.add_source("xc", county.url, "XC", api_key=county.token, title="示范县")
    harvester = city.harvester()
    first = harvester.run("xc")
    assert first.status == "ok" and first.created > 50
    generation = city.generation()
    with city.db.session() as s:
        before = {r.dataset_id: (r.remote_modified, r.fingerprint) for r in s.execute(select(HarvestRecord)).scalars()}

    second = harvester.run("xc")
    assert second.status == "ok", second.errors
    assert (second.created, second.updated, second.withdrawn, second.skipped) == (0, 0, 0, 0)
    assert second.since is not None  # the watermark the first run left
    assert city.generation() == generation  # not one catalog write
    with city.db.session() as s:
        after = {r.dataset_id: (r.remote_modified, r.fingerprint) for r in s.execute(select(HarvestRecord)).scalars()}
    assert after == before
    # --full re-reads every package: still nothing to write
    third = harvester.run("xc", full=True)
    assert (third.created, third.updated, third.withdrawn) == (0, 0, 0) and third.unchanged == first.created
    assert city.generation() == generation


def test_a_change_at_the_county_is_picked_up_by_the_next_run(county, city):
    city.add_source("xc", county.url, "XC", api_key=county.token, title="示范县")
    harvester = city.harvester()
    assert harvester.run("xc").status == "ok"

    items = county.api("GET", "/datasets/GAJ-00003").json()["items"]
    kept_items = [{"code": i["code"], "name": i["name"], "element": i["element"]["identifier"], "is_key": i["is_key"],
                   "required": i["required"], "source": i["source"]} for i in items[:-1]]
    r = county.api("PATCH", "/datasets/GAJ-00003", json={
        "summary": "实有房屋信息（县级）", "keywords": ["房屋", "县级"], "items": kept_items})
    assert r.status_code == 200, r.text
    new = county.api("POST", "/datasets", json={
        "code": "GAJ-00060", "department": "GAJ", "name": "县域治安卡口点位", "category": "部门库",
        "share_type": "有条件共享", "share_condition": "依法履职", "open_type": "禁止开放", "update_cycle": "每月",
        "security_grade": "L3",
        "items": [{"code": "sfzhm", "name": "公民身份号码", "element": "DE0101001", "source": "reference", "is_key": True}]})
    assert new.status_code == 201, new.text

    run = harvester.run("xc")
    assert run.status == "ok", run.errors
    assert (run.created, run.updated, run.withdrawn, run.skipped) == (1, 1, 0, 0)
    changed = city.dataset("XCGAJ-00003")
    assert changed.summary == "实有房屋信息（县级）" and changed.keywords == ["房屋", "县级"]
    assert [i.code for i in changed.items] == [i["code"] for i in kept_items]
    assert city.dataset("XCGAJ-00060").department.code == "XCGAJ"
    with city.db.session() as s, county.db.session() as cs:
        record = s.get(HarvestRecord, changed.id)
        assert record.remote_modified == cs.execute(
            select(Dataset.updated_at).where(Dataset.code == "GAJ-00003")).scalar_one()
        kept = s.execute(select(HarvestItem.remote_item).where(HarvestItem.dataset_id == changed.id)).scalars()
        assert sorted(kept) == sorted(i["code"] for i in kept_items)

    quiet = harvester.run("xc")
    assert (quiet.created, quiet.updated) == (0, 0)

    # --full compares what every package maps to, whatever its metadata_modified says
    items = county.api("GET", "/datasets/GAJ-00004").json()["items"]
    r = county.api("PATCH", "/datasets/GAJ-00004", json={"items": [
        {"code": i["code"], "name": i["name"], "element": i["element"]["identifier"], "is_key": i["is_key"],
         "required": i["required"], "source": i["source"]} for i in items[:-1]]})
    assert r.status_code == 200, r.text
    full = harvester.run("xc", full=True)
    assert (full.created, full.updated, full.withdrawn) == (0, 1, 0)
    assert len(city.dataset("XCGAJ-00004").items) == len(items) - 1


def test_a_dataset_withdrawn_at_the_county_is_withdrawn_at_the_city(county, city):
    city.add_source("xc", county.url, "XC", api_key=county.token, title="示范县")
    harvester = city.harvester()
    assert harvester.run("xc").status == "ok"
    assert city.dataset("XCGAJ-00005").status == DatasetStatus.published

    r = county.api("DELETE", "/datasets/GAJ-00005", params={"reason": "并入县车辆综合库"})
    assert r.status_code == 200, r.text

    run = harvester.run("xc")
    assert run.status == "ok", run.errors
    assert (run.created, run.updated, run.withdrawn) == (0, 0, 1)
    gone = city.dataset("XCGAJ-00005")
    assert gone.status == DatasetStatus.withdrawn
    assert "来源目录" in gone.withdrawn_reason and "示范县" in gone.withdrawn_reason and "GAJ-00005" in gone.withdrawn_reason
    with city.db.session() as s:
        record = s.get(HarvestRecord, gone.id)
        assert record.remote_state == "deleted" and record.withdrawn_by_harvest
    with TestClient(city.app()) as client:
        hits = client.get("/api/v1/datasets", params={"q": "机动车"}, headers=bearer(city.token)).json()
        assert "XCGAJ-00005" not in [h["code"] for h in hits["items"]]
        hits = client.get("/api/v1/datasets", params={"q": "人口基本信息"}, headers=bearer(city.token)).json()
        assert "XCGAJ-00001" in [h["code"] for h in hits["items"]]
    assert harvester.run("xc").withdrawn == 0  # withdrawn once


def test_a_locally_owned_dataset_is_never_overwritten(county, city):
    city.add_source("xc", county.url, "XC", api_key=county.token, title="示范县")
    harvester = city.harvester()
    assert harvester.run("xc").status == "ok"
    # The city's steward registers a dataset of its own in the mirror department, with the code a county dataset
    # will later map to.
    with city.db.session() as s:
        create_dataset(s, city.search, city.steward, DatasetCreate.model_validate({
            "code": "XCGAJ-00050", "department": "XCGAJ", "name": "市级补录的县公安数据", "category": "部门库",
            "share_type": "有条件共享", "share_condition": "依法履职", "open_type": "禁止开放", "update_cycle": "每月",
            "security_grade": "L3",
            "items": [{"code": "sfzhm", "name": "公民身份号码", "element": "DE0101001", "source": "reference",
                       "is_key": True}]}))
    local_before = city.dataset("XCGAJ-00050")
    r = county.api("POST", "/datasets", json={
        "code": "GAJ-00050", "department": "GAJ", "name": "县公安新资源", "category": "部门库", "share_type": "有条件共享",
        "share_condition": "依法履职", "open_type": "禁止开放", "update_cycle": "每月", "security_grade": "L3",
        "items": [{"code": "sfzhm", "name": "公民身份号码", "element": "DE0101001", "source": "reference", "is_key": True}]})
    assert r.status_code == 201, r.text

    run = harvester.run("xc")
    assert run.status == "ok"  # a clash is reported, not an error
    assert (run.created, run.updated, run.skipped) == (0, 0, 1)
    [problem] = run.problems
    assert problem["remote_id"] == "GAJ-00050" and problem["kind"] == "clash"
    assert "XCGAJ-00050" in problem["message"] and "本地资源" in problem["message"]
    local_after = city.dataset("XCGAJ-00050")
    assert (local_after.name, local_after.created_by_id, local_after.updated_at) == (
        local_before.name, city.steward.user_id, local_before.updated_at)
    with city.db.session() as s:
        assert s.get(HarvestRecord, local_after.id) is None
    # the city's own 公安局 and its dataset were never touched either
    own = city.dataset("GAJ-00001")
    assert own.name == "常住人口信息" and own.department.name == "示范市公安局"


def test_a_local_department_holding_a_mirror_code_is_left_alone(county, city):
    with city.db.session() as s:
        s.add(Department(code="XCSCJG", name="市场监管协查专班", short_name="协查专班"))
    city.add_source("xc", county.url, "XC", api_key=county.token, title="示范县")
    run = city.harvester().run("xc")
    assert run.status == "ok"
    clashes = [p for p in run.problems if p["kind"] == "clash"]
    assert clashes and all("XCSCJG" in p["message"] for p in clashes)
    assert {p["remote_id"].split("-")[0] for p in clashes} == {"SCJG"}
    assert run.skipped == len(clashes) and run.created == len(county.published()) - len(clashes)
    with city.db.session() as s:
        dept = s.execute(select(Department).where(Department.code == "XCSCJG")).scalar_one()
        assert dept.name == "市场监管协查专班"
        assert s.execute(select(Dataset.id).where(Dataset.department_id == dept.id)).first() is None
        assert s.execute(select(HarvestDepartment).where(HarvestDepartment.department_id == dept.id)).first() is None


def test_the_citys_own_one_source_claims_are_unaffected(county, city):
    claims = city.claims()
    assert claims == {"DE0101001": "GAJ-00001"}
    own_before = city.dataset("GAJ-00001")
    city.add_source("xc", county.url, "XC", api_key=county.token, title="示范县")
    assert city.harvester().run("xc").status == "ok"

    # The county sources 公民身份号码 and 统一社会信用代码; the city's claims are exactly what they were.
    assert city.claims() == claims
    assert city.dataset("GAJ-00001").updated_at == own_before.updated_at
    with city.db.session() as s:
        harvested_ids = set(s.execute(select(HarvestRecord.dataset_id)).scalars())
        assert not set(s.execute(select(AuthoritativeSource.dataset_id)).scalars()) & harvested_ids
        county_sources = {(h.element_identifier, h.remote_dataset) for h in s.execute(
            select(HarvestItem).where(HarvestItem.remote_source == "authoritative")).scalars()}
        assert {("DE0101001", "GAJ-00001"), ("DE0201001", "SCJG-00001")} <= county_sources

    body = {"category": "部门库", "share_type": "有条件共享", "share_condition": "依法履职", "open_type": "禁止开放",
            "update_cycle": "每月", "security_grade": "L1"}
    with city.db.session() as s:
        # An element authoritative only at the county is free to be claimed here (harvested copies do not block)…
        created = create_dataset(s, city.search, city.steward, DatasetCreate.model_validate({
            **body, "department": "DSJ", "name": "市级法人名录",
            "items": [{"code": "tyshxydm", "name": "统一社会信用代码", "element": "DE0201001", "is_key": True}]}))
        code = created.code
    assert city.claims() == {"DE0101001": "GAJ-00001", "DE0201001": code}
    # …and nothing can reference a harvested copy as if it were a local source (they never steal a claim).
    with city.db.session() as s, pytest.raises(CatalogRuleError) as refused:
        create_dataset(s, city.search, city.steward, DatasetCreate.model_validate({
            **body, "department": "DSJ", "name": "公厕引用",
            "items": [{"code": "gcbm", "name": "公厕编码", "element": "DE0608001", "source": "reference", "is_key": True}]}))
    assert refused.value.violations[0].rule == "items.reference_without_source"
    # Harvested copies of the city's own source do not hold it hostage: it can still be withdrawn.
    with city.db.session() as s:
        withdraw_dataset(s, city.search, city.steward, "GAJ-00001", "测试撤销")
    assert "DE0101001" not in city.claims()


def test_provenance_api_for_the_steward(county, city):
    city.add_source("xc", county.url, "XC", api_key=county.token, title="示范县")
    city.harvester().run("xc")
    with TestClient(city.app()) as client:
        assert client.get("/api/v1/harvest/sources").status_code == 401
        sources = client.get("/api/v1/harvest/sources", headers=bearer(city.token)).json()
        assert [(s["name"], s["prefix"], s["authenticated"]) for s in sources] == [("xc", "XC", True)]
        assert sources[0]["datasets"] == len(county.published()) and sources[0]["last_run"]["status"] == "ok"
        assert "api_key" not in sources[0]
        runs = client.get("/api/v1/harvest/sources/xc/runs", headers=bearer(city.token)).json()
        assert len(runs) == 1 and runs[0]["created"] == len(county.published())
        prov = client.get("/api/v1/harvest/datasets/XCGAJ-00001", headers=bearer(city.token)).json()
        assert prov["remote_id"] == "GAJ-00001" and prov["source"] == "xc" and prov["remote_organization"] == "gaj"
        assert {"item_code": "sfzhm", "element": "DE0101001", "remote_source": "authoritative",
                "remote_dataset": "GAJ-00001"} in prov["items"]
        assert client.get("/api/v1/harvest/datasets/GAJ-00001", headers=bearer(city.token)).status_code == 404


def test_a_harvested_copy_is_read_only_here(county, city):
    """Local edits would be overwritten by the next run, and requests belong at the source."""
    city.add_source("xc", county.url, "XC", api_key=county.token, title="示范县")
    city.harvester().run("xc")
    with TestClient(city.app()) as client:
        patch = client.patch("/api/v1/datasets/XCGAJ-00001", json={"summary": "本地改动"}, headers=bearer(city.token))
        assert patch.status_code == 409 and "只读副本" in patch.json()["message"]
        withdraw = client.delete("/api/v1/datasets/XCGAJ-00001", params={"reason": "本地撤销"},
                                 headers=bearer(city.token))
        assert withdraw.status_code == 409 and withdraw.json()["harvest_source"] == "xc"
        assert client.get("/api/v1/datasets/XCGAJ-00001", headers=bearer(city.token)).json()["status"] == "published"


# ---------------------------------------------------------------- a fake CKAN for failures and CKAN's own listing
def our_package(code: str, modified: str, *, title: str | None = None, state: str = "active") -> dict[str, Any]:
    """A package as this product (or a CKAN with our fields) shows it: a public 公厕 dataset."""
    org = code.split("-")[0].lower()
    return {
        "id": code, "name": code.lower(), "title": title or f"公厕点位 {code}", "notes": "县城公共厕所点位。",
        "metadata_modified": modified, "state": state, "private": False,
        "organization": {"id": org.upper(), "name": org, "title": f"示范县{org.upper()}"}, "owner_org": org.upper(),
        "groups": [{"name": "主题库"}, {"name": "城乡建设"}], "tags": [{"name": "公厕"}],
        "extras": [{"key": "共享类型", "value": "无条件共享"}, {"key": "开放类型", "value": "无条件开放"},
                   {"key": "安全分级", "value": "L1"}, {"key": "更新周期", "value": "每月"},
                   {"key": "资源代码", "value": code}],
        "items": [{"code": "gcbm", "name": "公厕编码", "element": "DE0608001", "element_version": "1.0",
                   "is_key": True, "required": True, "source": "authoritative", "reference": None},
                  {"code": "gcmc", "name": "公厕名称", "element": "DE0608002", "source": "authoritative"}],
    }


def ckan_package(uid: str, name: str, modified: str, **kw) -> dict[str, Any]:
    """A package of a plain CKAN: no 资源代码, no extras of ours, no items."""
    return {"id": uid, "name": name, "title": kw.get("title", name), "notes": "Monitoring data.",
            "metadata_modified": modified, "state": "active", "private": kw.get("private", False),
            "isopen": kw.get("isopen", True), "license_id": "cc-by",
            "organization": {"id": "0b6c-env", "name": "env-bureau", "title": "县生态环境分局"},
            "owner_org": "0b6c-env", "tags": [{"name": "air"}], "groups": [], "extras": [{"key": "spatial", "value": "{}"}]}


class FakeCkan:
    """Answers package_search (fq metadata_modified ranges, sorted), package_list and package_show like CKAN.
    `faults` are consumed in order: (action, behaviour, times, match) with behaviour 500 | timeout | malformed."""

    def __init__(self, search: bool = True, delay: float = 1.0):
        self.packages: dict[str, dict] = {}
        self.hidden: dict[str, dict] = {}  # package_show only (e.g. state deleted)
        self.search = search
        self.delay = delay
        self.faults: list[list[Any]] = []
        self.calls: list[tuple[str, dict]] = []
        self.headers: list[dict[str, str]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # noqa: ANN002
                pass

            def do_POST(self):  # noqa: N802
                action = self.path.rsplit("/", 1)[-1]
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                data = json.loads(body or b"{}")
                fake.calls.append((action, data))
                fake.headers.append(dict(self.headers))
                status, payload = fake.answer(action, data)
                raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json;charset=utf-8")
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except OSError:
                    pass  # the client gave up (timeout)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add(self, *packages: dict) -> None:
        for p in packages:
            self.packages[p["id"]] = p

    def fault(self, action: str, behaviour: str, times: int | None = None, match=None) -> None:  # noqa: ANN001
        self.faults.append([action, behaviour, times, match])

    def answer(self, action: str, data: dict) -> tuple[int, Any]:
        for entry in self.faults:
            name, behaviour, times, match = entry
            if name == action and times != 0 and (match is None or match(data)):
                if times is not None:
                    entry[2] -= 1
                if behaviour == "500":
                    return 500, {"success": False, "error": {"__type": "Internal Server Error", "message": "boom"}}
                if behaviour == "malformed":
                    return 200, b'{"help": "x", "success": true, "result": {"count": 3, "resul'
                if behaviour == "timeout":
                    time.sleep(self.delay)
                break
        if action == "package_search":
            if not self.search:
                return 400, "Bad request: Action name not known: package_search"
            return self._search(data)
        if action == "package_list":
            names = sorted(p["name"] for p in self.packages.values())
            offset, limit = int(data.get("offset") or 0), int(data.get("limit") or len(names))
            return 200, {"success": True, "result": names[offset:offset + limit]}
        if action == "package_show":
            ident = data.get("id")
            for p in [*self.packages.values(), *self.hidden.values()]:
                if ident in (p["id"], p["name"]):
                    return 200, {"success": True, "result": p}
            return 404, {"success": False, "error": {"__type": "Not Found Error", "message": "Not found"}}
        return 400, f"Bad request: Action name not known: {action}"

    def _search(self, data: dict) -> tuple[int, Any]:
        packages = list(self.packages.values())
        fq = data.get("fq") or ""
        if fq:
            prefix = "metadata_modified:["
            if not (fq.startswith(prefix) and fq.endswith(" TO *]")):
                return 400, {"success": False, "error": {"__type": "Search Query Error", "message": f"bad fq {fq}"}}
            since = fq[len(prefix):-len(" TO *]")]
            if since != "*":
                since = since.rstrip("Z")
                packages = [p for p in packages if p["metadata_modified"] >= since]
        sort = data.get("sort") or "score desc, metadata_modified desc"
        packages.sort(key=lambda p: (p["metadata_modified"], p["id"]), reverse="desc" in sort)
        start, rows = int(data.get("start") or 0), int(data.get("rows") or 10)
        return 200, {"success": True, "result": {"count": len(packages), "results": packages[start:start + rows]}}


@pytest.fixture
def fakes():
    made: list[FakeCkan] = []

    def make(**kw) -> FakeCkan:
        fake = FakeCkan(**kw)
        made.append(fake)
        return fake

    yield make
    for fake in made:
        fake.close()


T = "2026-05-01T08:00:00.{:06d}"


def test_a_plain_ckan_is_harvested_by_metadata_modified_ranges(city, fakes):
    fake = fakes()
    # five packages, three of them with one timestamp: pages of two must neither lose nor repeat one
    fake.add(our_package("CGJ-00001", T.format(1)), our_package("CGJ-00002", T.format(2)),
             our_package("CGJ-00003", T.format(2)), our_package("CGJ-00004", T.format(2)),
             ckan_package("9f1e2d3c-aaaa", "air-quality-2026", T.format(3), title="空气质量监测"))
    city.add_source("fk", fake.url, "FK", page_size=2)
    harvester = city.harvester()
    run = harvester.run("fk")
    assert run.status == "ok", run.errors
    assert run.mode == "search"
    assert (run.created, run.skipped) == (5, 0)
    searches = [d for a, d in fake.calls if a == "package_search"]
    assert all(d["sort"] == "metadata_modified asc" and d["fq"].startswith("metadata_modified:[") for d in searches)
    with city.db.session() as s:
        assert s.get(HarvestSource, 1).watermark == dt.datetime(2026, 5, 1, 8, 0, 0, 3, tzinfo=dt.timezone.utc)
    assert set(city.harvested("fk")) == {"FKCGJ-00001", "FKCGJ-00002", "FKCGJ-00003", "FKCGJ-00004",
                                         "FKENVBUREAU-00001"}
    plain = city.dataset("FKENVBUREAU-00001")
    assert plain.name == "空气质量监测" and plain.items == []
    assert (plain.category.value, plain.share_type.value, plain.open_type.value, plain.security_grade.value) == (
        "部门库", "有条件共享", "无条件开放", "L1")
    assert "来源目录「fk」" in plain.share_condition
    assert plain.department.name == "县生态环境分局"

    # next run asks from the watermark on (less an overlap for late commits); nothing changed → nothing written
    fake.calls.clear()
    again = harvester.run("fk")
    assert (again.created, again.updated, again.unchanged) == (0, 0, 5)
    assert next(d["fq"] for a, d in fake.calls if a == "package_search") == (
        "metadata_modified:[2026-05-01T07:50:00.000Z TO *]")
    fake.add(*(ckan_package(f"old-{n}", f"old-{n}", f"2026-04-{n:02d}T00:00:00") for n in range(1, 3)))
    late = harvester.run("fk")  # committed late with old timestamps: outside the overlap, but in package_list
    assert late.created == 2 and late.status == "ok"
    assert [d["id"] for a, d in fake.calls if a == "package_show"][-2:] == ["old-1", "old-2"]

    fake.add(our_package("CGJ-00002", T.format(9), title="公厕点位（更新）"))
    changed = harvester.run("fk")
    assert (changed.created, changed.updated) == (0, 1)
    assert city.dataset("FKCGJ-00002").name == "公厕点位（更新）"


def test_deleted_packages_are_withdrawn_and_restored_when_they_return(city, fakes):
    fake = fakes()
    fake.add(our_package("CGJ-00001", T.format(1)), our_package("CGJ-00002", T.format(2)),
             our_package("CGJ-00003", T.format(3)))
    city.add_source("fk", fake.url, "FK", page_size=2)
    harvester = city.harvester()
    assert harvester.run("fk").created == 3

    gone = fake.packages.pop("CGJ-00001")  # purged: package_show says Not Found
    deleted = fake.packages.pop("CGJ-00002")  # deleted: package_show still answers, with state deleted
    fake.hidden["CGJ-00002"] = {**deleted, "state": "deleted", "metadata_modified": T.format(5),
                                "extras": deleted["extras"] + [{"key": "撤销原因", "value": "点位撤并"}]}
    run = harvester.run("fk")
    assert run.status == "ok", run.errors
    assert (run.withdrawn, run.created, run.updated) == (2, 0, 0)
    assert city.dataset("FKCGJ-00001").status == DatasetStatus.withdrawn
    assert "已不存在" in city.dataset("FKCGJ-00001").withdrawn_reason
    assert "点位撤并" in city.dataset("FKCGJ-00002").withdrawn_reason
    assert city.dataset("FKCGJ-00003").status == DatasetStatus.published

    fake.add({**gone, "metadata_modified": T.format(7)})  # back at the source (CKAN can undelete)
    back = harvester.run("fk")
    assert (back.updated, back.withdrawn) == (1, 0)
    restored = city.dataset("FKCGJ-00001")
    assert restored.status == DatasetStatus.published and restored.withdrawn_reason is None


def test_a_listing_without_search_uses_package_list_and_show_and_never_half_applies_a_page(city, fakes):
    fake = fakes(search=False)
    fake.add(*(our_package(f"CGJ-0000{n}", T.format(n)) for n in range(1, 6)))
    fake.fault("package_show", "500", match=lambda d: d.get("id") == "cgj-00004")  # page 2 = 00003 + 00004
    city.add_source("fk", fake.url, "FK", page_size=2, retries=2)
    harvester = city.harvester()
    run = harvester.run("fk")
    assert run.mode == "list"
    assert run.status == "partial" and run.pages == 1 and run.created == 2
    assert "package_show" in run.errors[0] and "HTTP 500" in run.errors[0] and "3 次" in run.errors[0]
    assert run.retried == 2 and city.sleeps == [0.01, 0.02]  # back-off doubles
    # 00003 was read fine, but its page failed: nothing of the page is written
    assert set(city.harvested("fk")) == {"FKCGJ-00001", "FKCGJ-00002"}

    fake.faults.clear()
    after = harvester.run("fk")
    assert after.status == "ok" and (after.created, after.unchanged) == (3, 2)


def test_a_database_failure_mid_page_rolls_the_whole_page_back(city, fakes, monkeypatch):
    fake = fakes(search=False)  # package_list + package_show: pages of exactly two new packages
    fake.add(*(our_package(f"CGJ-0000{n}", T.format(n)) for n in range(1, 5)))
    city.add_source("fk", fake.url, "FK", page_size=2)
    original = harvester_module._Run._set_items

    def failing(self, session, source, dataset, pkg, elements):  # noqa: ANN001, ANN202
        if dataset.code == "FKCGJ-00004":
            raise RuntimeError("disk full")
        return original(self, session, source, dataset, pkg, elements)

    monkeypatch.setattr(harvester_module._Run, "_set_items", failing)
    run = city.harvester().run("fk")
    assert run.status == "partial" and run.pages == 1 and run.created == 2
    assert "本页未写入" in run.errors[0] and "disk full" in run.errors[0]
    assert set(city.harvested("fk")) == {"FKCGJ-00001", "FKCGJ-00002"}  # not 00003 (same page as 00004)
    with city.db.session() as s:
        assert s.execute(select(Department.code).where(Department.code.like("FK%"))).scalars().all() == ["FKCGJ"]

    monkeypatch.setattr(harvester_module._Run, "_set_items", original)
    after = city.harvester().run("fk")
    assert after.status == "ok" and after.created == 2
    assert len(city.harvested("fk")) == 4


def test_transient_failures_are_retried_with_back_off(city, fakes):
    fake = fakes()
    fake.add(our_package("CGJ-00001", T.format(1)))
    fake.fault("package_search", "500", times=1)
    fake.fault("package_search", "malformed", times=1)
    city.add_source("fk", fake.url, "FK", retries=3, backoff=0.5)
    run = city.harvester().run("fk")
    assert run.status == "ok" and run.created == 1 and run.errors == []
    assert run.retried == 2 and city.sleeps == [0.5, 1.0]


def test_an_api_key_can_come_from_the_environment(city, fakes):
    fake = fakes()
    fake.add(our_package("CGJ-00001", T.format(1)))
    city.add_source("fk", fake.url, "FK", api_key_env="ODH_TEST_FK_TOKEN")
    missing = city.harvester(environ={}).run("fk")
    assert missing.status == "failed" and "ODH_TEST_FK_TOKEN" in missing.errors[0] and not fake.calls
    run = city.harvester(environ={"ODH_TEST_FK_TOKEN": "odh_remote_token"}).run("fk")
    assert run.status == "ok" and run.created == 1
    assert fake.headers[0]["Authorization"] == "odh_remote_token"  # as ckanapi sends it (also X-CKAN-API-Key)


def test_failing_sources_are_reported_per_source_and_the_others_go_on(county, city, fakes):
    slow = fakes(delay=1.0)
    slow.add(our_package("CGJ-00001", T.format(1)))
    slow.fault("package_search", "timeout")
    broken = fakes()
    broken.add(our_package("CGJ-00001", T.format(1)))
    broken.fault("package_search", "500")
    garbled = fakes()
    garbled.add(our_package("CGJ-00001", T.format(1)))
    garbled.fault("package_search", "malformed")
    city.add_source("a-slow", slow.url, "AS", timeout=0.2, retries=1)
    city.add_source("b-broken", broken.url, "BB", retries=2)
    city.add_source("c-garbled", garbled.url, "CG", retries=1)
    city.add_source("xc", county.url, "XC", api_key=county.token, title="示范县")

    started = time.monotonic()
    runs = {r.source.name: r for r in city.harvester().run_all()}
    assert time.monotonic() - started < 30
    assert list(runs) == ["a-slow", "b-broken", "c-garbled", "xc"]
    assert runs["xc"].status == "ok" and runs["xc"].created == len(county.published())
    for name, words in (("a-slow", "超时"), ("b-broken", "HTTP 500"), ("c-garbled", "JSON")):
        run = runs[name]
        assert run.status == "failed" and run.created == 0 and run.finished_at is not None, name
        assert len(run.errors) == 1 and words in run.errors[0] and "package_search" in run.errors[0], run.errors
    assert runs["b-broken"].retried == 2 and runs["a-slow"].retried == 1
    assert set(city.harvested()) == {f"XC{c}" for c in county.published()}
    with city.db.session() as s:
        recorded = {(r.source.name, r.status) for r in s.execute(select(HarvestRun)).scalars()}
    assert recorded == {("a-slow", "failed"), ("b-broken", "failed"), ("c-garbled", "failed"), ("xc", "ok")}


def test_packages_that_break_local_rules_or_standards_are_skipped_and_reported(city, fakes):
    fake = fakes()
    old = "2026-04-01T00:00:00.{:06d}"  # long before the good package: outside the next run's window
    unknown = our_package("CGJ-00001", old.format(1))
    unknown["items"][0]["element"] = "DE9999999"
    wrong_grade = our_package("CGJ-00002", old.format(2))
    wrong_grade["extras"][2]["value"] = "L3"  # 无条件共享 + 无条件开放 at L3: two local rules broken
    gibberish = our_package("CGJ-00003", old.format(3))
    gibberish["extras"][0]["value"] = "随便共享"
    copy = our_package("CGJ-00005", old.format(5))  # itself harvested from a third catalog (ckanext-harvest marks it)
    copy["extras"].append({"key": "harvest_source_id", "value": "c0ffee"})
    fake.add(unknown, wrong_grade, gibberish, our_package("CGJ-00004", T.format(4)), copy)
    city.add_source("fk", fake.url, "FK")
    harvester = city.harvester()
    run = harvester.run("fk")
    assert run.status == "ok" and (run.created, run.skipped) == (1, 4)
    kinds = {p["remote_id"]: (p["kind"], p["message"]) for p in run.problems}
    assert kinds["CGJ-00001"][0] == "unknown_element" and "DE9999999" in kinds["CGJ-00001"][1]
    assert kinds["CGJ-00002"][0] == "rules" and "share.grade_forbids_unconditional" in kinds["CGJ-00002"][1]
    assert kinds["CGJ-00003"][0] == "invalid" and "share_type" in kinds["CGJ-00003"][1]
    assert kinds["CGJ-00005"][0] == "harvested_elsewhere" and "harvest_source_id" in kinds["CGJ-00005"][1]
    assert set(city.harvested("fk")) == {"FKCGJ-00004"}
    with city.db.session() as s:  # refused packages leave no mirror department behind
        assert s.execute(select(Department.code).where(Department.code.like("FK%"))).scalars().all() == ["FKCGJ"]

    # Unchanged, they are still reported as skipped — without being fetched one by one again.
    fake.calls.clear()
    fake.hidden["x"] = fake.packages.pop("CGJ-00001")  # no longer listed: no longer reported
    again = harvester.run("fk")
    assert (again.created, again.skipped) == (0, 3)
    assert {p["remote_id"] for p in again.problems} == {"CGJ-00002", "CGJ-00003", "CGJ-00005"}
    assert all(p["carried"] for p in again.problems)
    assert not [d for a, d in fake.calls if a == "package_show"]
    assert harvester.run("fk", full=True).skipped == 3  # --full reads them again


# ---------------------------------------------------------------- the command line
def test_cli_harvest_add_run_list(county, city, fakes):
    url = city.db.url
    r = runner.invoke(cli_app, ["harvest", "add", county.url, "--name", "xc", "--title", "示范县",
                                "--department-prefix", "XC", "--api-key", county.token, "--page-size", "50",
                                "--database-url", url])
    assert r.exit_code == 0, r.output
    assert "已登记采集来源 xc" in r.output and "XC" in r.output
    again = runner.invoke(cli_app, ["harvest", "add", county.url, "--name", "xc", "--database-url", url])
    assert again.exit_code == 2 and "已存在" in again.output
    clash = runner.invoke(cli_app, ["harvest", "add", county.url, "--name", "xcx", "--department-prefix", "XCG",
                                    "--database-url", url])
    assert clash.exit_code == 2 and "前缀" in clash.output
    bad = runner.invoke(cli_app, ["harvest", "add", "ftp://x", "--database-url", url])
    assert bad.exit_code == 2
    nameless = runner.invoke(cli_app, ["harvest", "add", "http://127.0.0.1:9", "--database-url", url])
    assert nameless.exit_code == 2 and "--department-prefix" in nameless.output

    r = runner.invoke(cli_app, ["harvest", "run", "xc", "--database-url", url])
    assert r.exit_code == 0, r.output
    assert f"xc: 成功 · 新增 {len(county.published())} · 更新 0 · 撤销 0" in r.output
    assert runner.invoke(cli_app, ["harvest", "run", "nope", "--database-url", url]).exit_code == 2
    assert runner.invoke(cli_app, ["harvest", "run", "--database-url", url]).exit_code == 2

    broken = fakes()
    broken.fault("package_search", "500")
    r = runner.invoke(cli_app, ["harvest", "add", broken.url, "--name", "broken", "--department-prefix", "BR",
                                "--retries", "1", "--backoff", "0", "--database-url", url])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli_app, ["harvest", "run", "--all", "--database-url", url])
    assert r.exit_code == 1, r.output
    assert "broken: 失败" in r.output and "HTTP 500" in r.output
    assert "xc: 成功 · 新增 0 · 更新 0 · 撤销 0" in r.output  # the county still ran

    r = runner.invoke(cli_app, ["harvest", "list", "--database-url", url])
    assert r.exit_code == 0, r.output
    assert "xc  示范县" in r.output and f"已采集资源 {len(county.published())}" in r.output
    assert "令牌：已设置" in r.output and county.token not in r.output
    assert "broken" in r.output and "失败" in r.output


def test_cli_harvest_needs_a_migrated_database(tmp_path):
    r = runner.invoke(cli_app, ["harvest", "list", "--data-dir", str(tmp_path)])
    assert r.exit_code == 2 and "opendata init" in r.output
