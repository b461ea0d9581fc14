"""HTTP layer of 归集: upload a file or pull from a SQL source into a new version; list runs and versions."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Response, UploadFile
from sqlalchemy import select

from catalog import collection, service
from catalog.collection import Delivery, DeliveryTooLarge
from catalog.deps import PrincipalDep, SessionDep, SettingsDep
from catalog.endpoints import ERRORS, DatasetCodePath, PageNo, PageSize
from catalog.indicators import collection_rate
from catalog.models import CollectionRun, DatasetVersion, User
from catalog.permissions import check_read_catalog
from catalog.schemas import (
    CollectionIndicator,
    CollectionOut,
    CollectionRunOut,
    DatasetVersionOut,
    Page,
    SqlPullIn,
)
from catalog.storage import storage_for

router = APIRouter(prefix="/api/v1", tags=["collection"], responses={k: ERRORS[k] for k in (400, 401, 422)})
WRITE_ERRORS = {403: ERRORS[403], 404: ERRORS[404], 409: ERRORS[409],
                413: {"model": ERRORS[400]["model"], "description": "the file is larger than the configured limit"}}


def _usernames(session, ids: set[int | None]) -> dict[int, str]:
    ids = {i for i in ids if i}
    if not ids:
        return {}
    return dict(session.execute(select(User.id, User.username).where(User.id.in_(ids))).all())


def version_out(v: DatasetVersion, names: dict[int, str]) -> DatasetVersionOut:
    return DatasetVersionOut(version=v.version, row_count=v.row_count, byte_size=v.byte_size, checksum=v.checksum,
                             table_schema=v.schema_json, collected_at=v.collected_at,
                             delivered_by=names.get(v.delivered_by_id))


def run_out(run: CollectionRun, versions: dict[int, int], names: dict[int, str]) -> CollectionRunOut:
    return CollectionRunOut(id=run.id, status=run.status, source_kind=run.source_kind, source_name=run.source_name,
                            file_format=run.file_format, row_count=run.row_count,
                            version=versions.get(run.version_id), error=run.error,
                            delivered_by=names.get(run.delivered_by_id), started_at=run.started_at,
                            finished_at=run.finished_at)


def _collect(session, settings, principal, dataset, delivery: Delivery, response: Response) -> CollectionOut:
    """The caller has found the dataset and checked the caller may deliver (refusals are not recorded as runs)."""
    code = dataset.code
    result = collection.deliver_and_check(session, storage_for(settings.resolved_storage_root()), principal, dataset,
                                          delivery, max_bytes=settings.max_upload_bytes)
    names = _usernames(session, {result.run.delivered_by_id, result.version.delivered_by_id})
    response.status_code = 201 if result.status == "published" else 200
    return CollectionOut(status=result.status, dataset_code=code, collection_status=dataset.collection_status,
                         run=run_out(result.run, {result.version.id: result.version.version}, names),
                         version=version_out(result.version, names))


@router.post("/datasets/{code}/collections", response_model=CollectionOut, status_code=201,
             summary="上传文件归集（CSV/XLSX/JSON Lines/Parquet），发布为新的 Parquet 版本",
             description="内容与最新版本完全相同时不产生新版本（200, status=unchanged）。任何错误都不会发布任何内容。",
             responses={**WRITE_ERRORS, 200: {"model": CollectionOut, "description": "identical to the latest version"}})
def upload(code: DatasetCodePath, response: Response, session: SessionDep,
           principal: PrincipalDep, settings: SettingsDep,
           file: Annotated[UploadFile, File(description="数据文件")]) -> CollectionOut:
    name = Path(file.filename or "upload").name
    fmt = collection.detect_format(name)
    dataset = service.find_dataset(session, code)
    collection.check_deliver(principal, dataset)
    with tempfile.TemporaryDirectory(prefix="odh-upload-") as tmp:
        path = Path(tmp) / f"upload{Path(name).suffix.lower()}"
        with path.open("wb") as out:
            copied = 0
            while chunk := file.file.read(8 << 20):
                copied += len(chunk)
                if copied > settings.max_upload_bytes:
                    raise DeliveryTooLarge(f"文件超过上限 {settings.max_upload_bytes:,} 字节")
                out.write(chunk)
        return _collect(session, settings, principal, dataset,
                        Delivery(kind="upload", name=name, path=path, file_format=fmt), response)


@router.post("/datasets/{code}/collections/sql", response_model=CollectionOut, status_code=201,
             summary="从 SQL 数据源拉取归集（口令不会被保存、记录或回显）",
             responses={**WRITE_ERRORS, 200: {"model": CollectionOut, "description": "identical to the latest version"}})
def pull_sql(code: DatasetCodePath, body: SqlPullIn, response: Response, session: SessionDep,
             principal: PrincipalDep, settings: SettingsDep) -> CollectionOut:
    dataset = service.find_dataset(session, code)
    collection.check_deliver(principal, dataset)
    delivery = Delivery(kind="sql", name=collection.describe_sql_source(body.url), sql_url=body.url,
                        sql_query=body.query, file_format="sql")
    return _collect(session, settings, principal, dataset, delivery, response)


@router.get("/datasets/{code}/versions", response_model=Page[DatasetVersionOut], summary="资源的已发布版本（新→旧）",
            responses={404: ERRORS[404]})
def list_versions(code: DatasetCodePath, session: SessionDep, principal: PrincipalDep, page: PageNo = 1,
                  page_size: PageSize = 20):
    dataset = service.get_dataset(session, principal, code)
    rows = session.execute(select(DatasetVersion).where(DatasetVersion.dataset_id == dataset.id)
                           .order_by(DatasetVersion.version.desc())).scalars().all()
    chunk = rows[(page - 1) * page_size: page * page_size]
    names = _usernames(session, {v.delivered_by_id for v in chunk})
    return Page[DatasetVersionOut](total=len(rows), page=page, page_size=page_size,
                                   items=[version_out(v, names) for v in chunk])


@router.get("/datasets/{code}/collections", response_model=Page[CollectionRunOut], summary="资源的归集记录（新→旧）",
            responses={403: ERRORS[403], 404: ERRORS[404]})
def list_runs(code: DatasetCodePath, session: SessionDep, principal: PrincipalDep, page: PageNo = 1,
              page_size: PageSize = 20):
    dataset = service.find_dataset(session, code)
    collection.check_deliver(principal, dataset)  # runs name sources and errors: the provider and steward only
    runs = session.execute(select(CollectionRun).where(CollectionRun.dataset_id == dataset.id)
                           .order_by(CollectionRun.id.desc())).scalars().all()
    chunk = runs[(page - 1) * page_size: page * page_size]
    versions = dict(session.execute(select(DatasetVersion.id, DatasetVersion.version)
                                    .where(DatasetVersion.dataset_id == dataset.id)).all())
    names = _usernames(session, {r.delivered_by_id for r in chunk})
    return Page[CollectionRunOut](total=len(runs), page=page, page_size=page_size,
                                  items=[run_out(r, versions, names) for r in chunk])


@router.get("/indicators/collection", response_model=CollectionIndicator, tags=["indicators"],
            summary="数据归集率（按部门与全市）")
def collection_indicator(session: SessionDep, principal: PrincipalDep):
    check_read_catalog(principal)
    collection.refresh_collection_status(session)  # 已过期 moves with the clock
    session.commit()
    return collection_rate(session)


