"""Read-only harvest API for the steward and admins: sources with their latest run, a source's runs, and a
harvested dataset's provenance. (Mount with `app.include_router(catalog.federation.endpoints.router)`.)"""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from catalog.endpoints import ERRORS
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from catalog.auth import Principal
from catalog.deps import PrincipalDep, SessionDep
from catalog.enums import DatasetStatus, Role
from catalog.errors import NotFound, PermissionDenied
from catalog.federation.models import HarvestItem, HarvestRecord, HarvestRun, HarvestSource
from catalog.models import DataItem, Dataset
from catalog.permissions import require_principal

router = APIRouter(prefix="/api/v1/harvest", tags=["harvest"], responses={k: ERRORS[k] for k in (400, 401, 403, 404, 422)})

SourceName = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", examples=["xc"])]


class HarvestRunOut(BaseModel):
    id: int
    status: str = Field(description="running | ok | partial | failed")
    mode: str | None = Field(description="how the remote was listed: search | search_desc | list")
    started_at: dt.datetime
    finished_at: dt.datetime | None
    since: dt.datetime | None = Field(description="the remote metadata_modified the run started from")
    pages: int
    created: int
    updated: int
    withdrawn: int
    unchanged: int
    skipped: int
    retried: int
    errors: list[str]
    problems: list[dict[str, Any]]


class HarvestSourceOut(BaseModel):
    name: str
    title: str
    url: str
    prefix: str = Field(description="mirror departments are <prefix><remote organization code>")
    mode: str
    active: bool
    authenticated: bool = Field(description="whether an API key (or the name of its environment variable) is set")
    watermark: dt.datetime | None
    datasets: int = Field(description="harvested datasets currently published here")
    last_run: HarvestRunOut | None


class ItemProvenanceOut(BaseModel):
    item_code: str
    element: str
    remote_source: str = Field(description="authoritative | reference — the item's 一数一源 role at the source")
    remote_dataset: str | None = Field(description="the remote dataset holding the authoritative item")


class ProvenanceOut(BaseModel):
    dataset_code: str
    source: str
    source_title: str
    remote_id: str
    remote_name: str
    remote_organization: str | None
    remote_organization_title: str | None
    remote_modified: dt.datetime | None
    remote_state: str
    harvested_at: dt.datetime
    items: list[ItemProvenanceOut]


def _steward(principal: Principal | None) -> Principal:
    p = require_principal(principal)
    if not (p.is_steward or p.has(Role.admin)):
        raise PermissionDenied("采集来源与采集记录仅向大数据局 (steward) 和管理员开放")
    return p


def _run_out(run: HarvestRun) -> HarvestRunOut:
    return HarvestRunOut(id=run.id, status=run.status, mode=run.mode, started_at=run.started_at,
                         finished_at=run.finished_at, since=run.since, pages=run.pages, created=run.created,
                         updated=run.updated, withdrawn=run.withdrawn, unchanged=run.unchanged, skipped=run.skipped,
                         retried=run.retried, errors=run.errors or [], problems=run.problems or [])


@router.get("/sources", response_model=list[HarvestSourceOut], summary="采集来源")
def list_sources(session: SessionDep, principal: PrincipalDep) -> list[HarvestSourceOut]:
    _steward(principal)
    sources = list(session.execute(select(HarvestSource).order_by(HarvestSource.name)).scalars())
    counts = dict(session.execute(
        select(HarvestRecord.source_id, func.count()).join(Dataset, Dataset.id == HarvestRecord.dataset_id)
        .where(Dataset.status == DatasetStatus.published).group_by(HarvestRecord.source_id)).all())
    out = []
    for s in sources:
        last = session.execute(select(HarvestRun).where(HarvestRun.source_id == s.id)
                               .order_by(HarvestRun.id.desc()).limit(1)).scalar_one_or_none()
        out.append(HarvestSourceOut(name=s.name, title=s.title, url=s.url, prefix=s.prefix, mode=s.mode,
                                    active=s.active, authenticated=bool(s.api_key or s.api_key_env),
                                    watermark=s.watermark, datasets=counts.get(s.id, 0),
                                    last_run=_run_out(last) if last else None))
    return out


@router.get("/sources/{name}/runs", response_model=list[HarvestRunOut], summary="采集记录（最新在前）")
def list_runs(name: SourceName, session: SessionDep, principal: PrincipalDep,
              limit: Annotated[int, Query(ge=1, le=100)] = 20) -> list[HarvestRunOut]:
    _steward(principal)
    source = session.execute(select(HarvestSource).where(HarvestSource.name == name)).scalar_one_or_none()
    if source is None:
        raise NotFound(f"采集来源 {name} 不存在")
    runs = session.execute(select(HarvestRun).where(HarvestRun.source_id == source.id)
                           .order_by(HarvestRun.id.desc()).limit(limit)).scalars()
    return [_run_out(r) for r in runs]


@router.get("/datasets/{code}", response_model=ProvenanceOut, summary="采集资源的来源（溯源）")
def provenance(code: Annotated[str, Path(pattern=r"^[A-Z][A-Z0-9]{1,15}-[0-9]{5}$")], session: SessionDep,
               principal: PrincipalDep) -> ProvenanceOut:
    _steward(principal)
    row = session.execute(select(HarvestRecord).join(Dataset, Dataset.id == HarvestRecord.dataset_id)
                          .where(Dataset.code == code)).scalar_one_or_none()
    if row is None:
        raise NotFound(f"资源 {code} 不是采集而来的资源")
    items = session.execute(select(DataItem.code, HarvestItem).join(HarvestItem, HarvestItem.item_id == DataItem.id)
                            .where(HarvestItem.dataset_id == row.dataset_id).order_by(DataItem.position)).all()
    return ProvenanceOut(
        dataset_code=code, source=row.source.name, source_title=row.source.title, remote_id=row.remote_id,
        remote_name=row.remote_name, remote_organization=row.remote_org,
        remote_organization_title=row.remote_org_title, remote_modified=row.remote_modified,
        remote_state=row.remote_state, harvested_at=row.harvested_at,
        items=[ItemProvenanceOut(item_code=c, element=h.element_identifier, remote_source=h.remote_source,
                                 remote_dataset=h.remote_dataset) for c, h in items])
