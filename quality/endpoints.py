"""HTTP layer of quality: run the generated suite, read results and every failing row key."""
from __future__ import annotations

from typing import Annotated

from pathlib import Path as TemplatePath

from fastapi import APIRouter, Path, Query, Response
from sqlalchemy import select

from catalog import service
from catalog.deps import PrincipalDep, SessionDep, SettingsDep
from catalog.endpoints import ERRORS, DatasetCodePath, PageNo, PageSize
from catalog.errors import NotFound, PermissionDenied
from catalog.permissions import require_principal
from catalog.models import DatasetVersion
from catalog.schemas import Page
from catalog.storage import storage_for
from quality import service as quality
from quality.models import QualityRun
from quality.report import build_report, report_csv
from quality.schemas import FailingKeysOut, QualityReport, QualityRunOut, RuleResultOut

router = APIRouter(prefix="/api/v1", tags=["quality"],
                   responses={k: ERRORS[k] for k in (400, 401, 403, 404, 422)})


def run_out(run: QualityRun, code: str, version: int) -> QualityRunOut:
    return QualityRunOut(
        id=run.id, dataset_code=code, version=version, executor=run.executor, row_count=run.row_count,
        scores=run.scores, overall_score=run.overall_score, started_at=run.started_at, finished_at=run.finished_at,
        rules=[RuleResultOut(rule_id=r.rule_id, kind=r.kind, dimension=r.dimension, columns=r.columns,
                             element=r.element_identifier, description=r.description, evaluated=r.evaluated,
                             failing=r.failing, rate=r.rate, sample_keys=r.sample_keys) for r in run.rule_results])


def _version_number(session, run: QualityRun) -> int:
    return session.execute(select(DatasetVersion.version).where(DatasetVersion.id == run.version_id)).scalar_one()


@router.post("/datasets/{code}/quality/runs", response_model=QualityRunOut, status_code=201,
             summary="对最新版本重新运行由标准生成的质量规则")
def run_now(code: DatasetCodePath, session: SessionDep, principal: PrincipalDep, settings: SettingsDep,
            executor: Annotated[str, Query(pattern="^(fast|gx)$", description="fast（默认）或 gx（Great Expectations）")] = "fast"):
    dataset = service.find_dataset(session, code)
    quality.check_read_quality(principal, dataset)
    run = quality.run_quality(session, storage_for(settings.resolved_storage_root()), dataset, executor=executor,
                              gx_docs_root=gx_docs_root(settings))
    session.commit()
    return run_out(run, code, _version_number(session, run))


@router.get("/datasets/{code}/quality", response_model=QualityRunOut, summary="最新一次质量检查的结果与各维度得分")
def latest(code: DatasetCodePath, session: SessionDep, principal: PrincipalDep):
    dataset = service.find_dataset(session, code)
    quality.check_read_quality(principal, dataset)
    run = quality.latest_run(session, dataset)
    if run is None:
        raise NotFound(f"资源 {code} 尚无质量检查结果")
    return run_out(run, code, _version_number(session, run))


@router.get("/datasets/{code}/quality/runs", response_model=Page[QualityRunOut], summary="质量检查历史（新→旧）")
def history(code: DatasetCodePath, session: SessionDep, principal: PrincipalDep, page: PageNo = 1,
            page_size: PageSize = 20):
    dataset = service.find_dataset(session, code)
    quality.check_read_quality(principal, dataset)
    runs = session.execute(select(QualityRun).where(QualityRun.dataset_id == dataset.id)
                           .order_by(QualityRun.id.desc())).scalars().all()
    chunk = runs[(page - 1) * page_size: page * page_size]
    versions = dict(session.execute(select(DatasetVersion.id, DatasetVersion.version)
                                    .where(DatasetVersion.dataset_id == dataset.id)).all())
    return Page[QualityRunOut](total=len(runs), page=page, page_size=page_size,
                               items=[run_out(r, code, versions[r.version_id]) for r in chunk])


@router.get("/datasets/{code}/quality/runs/{run_id}/failing", response_model=FailingKeysOut,
            summary="某条规则的全部不合格记录主键（分页）")
def failing(code: DatasetCodePath, run_id: Annotated[int, Path(ge=1, le=2**31 - 1)], session: SessionDep,
            principal: PrincipalDep, settings: SettingsDep,
            rule_id: Annotated[str, Query(min_length=1, max_length=128)], page: PageNo = 1,
            page_size: Annotated[int, Query(ge=1, le=1000)] = 100):
    dataset = service.find_dataset(session, code)
    quality.check_read_quality(principal, dataset)
    run = session.get(QualityRun, run_id)
    if run is None or run.dataset_id != dataset.id:
        raise NotFound(f"质量检查 {run_id} 不存在")
    total, keys = quality.failing_keys(storage_for(settings.resolved_storage_root()), run, rule_id,
                                       (page - 1) * page_size, page_size)
    return FailingKeysOut(rule_id=rule_id, total=total, offset=(page - 1) * page_size, keys=keys)


# ---------------------------------------------------------------- the steward's report
def check_quality_report(principal) -> None:  # noqa: ANN001
    p = require_principal(principal)
    if not p.is_steward:
        raise PermissionDenied("质量报告面向大数据局 (steward)；部门请查看本部门资源的质量结果与工单")


@router.get("/quality/report", response_model=QualityReport, summary="大数据局质量报告：各部门与各资源的维度得分、趋势、工单、问题规则")
def report_json(session: SessionDep, principal: PrincipalDep):
    check_quality_report(principal)
    return build_report(session)


@router.get("/quality/report.csv", summary="质量报告导出（CSV，Excel 可直接打开）",
            responses={200: {"content": {"text/csv": {}}, "description": "one row per dataset"}})
def report_csv_export(session: SessionDep, principal: PrincipalDep) -> Response:
    check_quality_report(principal)
    return Response(report_csv(build_report(session)), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": "attachment; filename=quality-report.csv"})


html_router = APIRouter(tags=["quality"], include_in_schema=False)


def gx_docs_root(settings) -> str:  # noqa: ANN001
    return str((settings.data_dir / "gx").resolve())


@html_router.get("/quality/datadocs/{path:path}")
def data_docs(path: str, session: SessionDep, principal: PrincipalDep, settings: SettingsDep):
    """GX Data Docs of the runs made with executor=gx (stewards)."""
    from fastapi.responses import FileResponse

    check_quality_report(principal)
    site = (TemplatePath(gx_docs_root(settings)) / "gx" / "uncommitted" / "data_docs" / "local_site").resolve()
    target = (site / (path or "index.html")).resolve()
    if not target.is_relative_to(site) or not target.is_file():
        raise NotFound("没有该 Data Docs 页面（先以 executor=gx 运行一次质量检查）")
    return FileResponse(target)
