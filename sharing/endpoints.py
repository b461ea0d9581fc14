"""HTTP layer of sharing: share/open requests, decisions, grants, credentials, audit queries, indicators,
registration of outside users. Rules live in sharing/service.py."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status
from sqlalchemy import select

from catalog import service as catalog_service
from catalog.deps import PrincipalDep, SessionDep, SettingsDep
from catalog.endpoints import ERRORS, PageNo, PageSize
from catalog.models import Dataset
from catalog.permissions import check_read_catalog
from catalog.repository import department_and_user_names
from catalog.schemas import Page
from sharing import service
from sharing.audit import search as search_audit
from sharing.models import Grant, GrantCredential, ShareRequest
from sharing.schemas import (
    AuditEntryOut,
    CredentialIssued,
    CredentialOut,
    DecisionIn,
    DecisionOut,
    GrantOut,
    OpenRateOut,
    RegisterIn,
    ResubmitIn,
    RevokeIn,
    ShareRateOut,
    ShareRequestIn,
    ShareRequestOut,
    WithdrawIn,
)

router = APIRouter(prefix="/api/v1", tags=["sharing"], responses={k: ERRORS[k] for k in (400, 401, 403, 404, 409, 422)})
RequestId = Annotated[int, Path(ge=1, le=2**31 - 1)]
GrantId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def request_out(session, req: ShareRequest, names=None) -> ShareRequestOut:  # noqa: ANN001
    depts, users = names or department_and_user_names(session)
    grant = service.grant_of(session, req.id)
    return ShareRequestOut(
        id=req.id, kind=req.kind, dataset=req.dataset.code, dataset_name=req.dataset.name,
        provider_department=depts[req.provider_department_id], consumer_department=depts[req.consumer_department_id],
        requested_by=users[req.requested_by_id], purpose=req.purpose, scenario=req.scenario, basis=req.basis,
        expected_volume=req.expected_volume, fields=req.fields, row_filter=req.row_filter,
        unmasked_fields=req.unmasked_fields, valid_until=req.valid_until, approved_fields=req.approved_fields,
        approved_filter=req.approved_filter, approved_unmasked=req.approved_unmasked,
        approved_valid_until=req.approved_valid_until, status=req.status, status_name=service.STATUS_NAMES[req.status],
        needs_steward=req.needs_steward, deadline=req.deadline,
        overdue=req.status in service.PENDING and req.deadline < service.utcnow(), created_at=req.created_at,
        decided_at=req.decided_at, grant_id=grant.id if grant else None,
        decisions=[DecisionOut(at=d.at, actor=users.get(d.actor_user_id), actor_department=depts.get(d.actor_department_id),
                               stage=d.stage, action=d.action, from_status=d.from_status, to_status=d.to_status,
                               reason=d.reason, scope=d.scope) for d in req.decisions])


def grant_out(session, grant: Grant, names=None) -> GrantOut:  # noqa: ANN001
    depts, _ = names or department_and_user_names(session)
    return GrantOut(
        id=grant.id, request_id=grant.request_id, kind=grant.kind, dataset=grant.dataset.code,
        dataset_name=grant.dataset.name, provider_department=depts[grant.provider_department_id],
        consumer_department=depts[grant.consumer_department_id], fields=grant.fields,
        masked_fields=service.masked_fields(grant), row_filter=grant.row_filter, unmasked_fields=grant.unmasked_fields,
        valid_until=grant.valid_until, requests_per_minute=grant.requests_per_minute, rows_per_day=grant.rows_per_day,
        status=service.grant_status(grant), created_at=grant.created_at, revoked_at=grant.revoked_at,
        revoke_reason=grant.revoke_reason, gateway_url=f"/gateway/v1/datasets/{grant.dataset.code}/rows")


# ---------------------------------------------------------------- requests
@router.post("/share-requests", response_model=ShareRequestOut, status_code=status.HTTP_201_CREATED,
             summary="提交共享申请（政务部门）或开放申请（注册的社会用户，受限开放资源）")
def create_request(body: ShareRequestIn, session: SessionDep, principal: PrincipalDep,
                   settings: SettingsDep) -> ShareRequestOut:
    dataset = catalog_service.find_dataset(session, body.dataset)
    req = service.create_request(session, principal, dataset, body, settings)
    session.commit()
    return request_out(session, req)


@router.get("/share-requests", response_model=Page[ShareRequestOut],
            summary="申请列表：mine 本部门提出的；review 待本部门（或大数据局）审核的；all 全部（大数据局）")
def list_requests(session: SessionDep, principal: PrincipalDep, page: PageNo = 1, page_size: PageSize = 20,
                  box: Annotated[str, Query(pattern="^(mine|review|all)$")] = "mine",
                  status_: Annotated[str | None, Query(alias="status", pattern="^(submitted|pending_steward|approved|rejected|returned|withdrawn)$")] = None
                  ) -> Page[ShareRequestOut]:
    total, rows = service.list_requests(session, principal, box, status_, (page - 1) * page_size, page_size)
    names = department_and_user_names(session)
    return Page(total=total, page=page, page_size=page_size, items=[request_out(session, r, names) for r in rows])


@router.get("/share-requests/{request_id}", response_model=ShareRequestOut, summary="申请详情（含每一步审核记录）")
def get_request(request_id: RequestId, session: SessionDep, principal: PrincipalDep) -> ShareRequestOut:
    return request_out(session, service.get_request(session, principal, request_id))


@router.post("/share-requests/{request_id}/decisions", response_model=ShareRequestOut,
             summary="审核：同意（可收窄字段、筛选、有效期，不可放宽）、驳回或退回（须说明理由）")
def decide(request_id: RequestId, body: DecisionIn, session: SessionDep, principal: PrincipalDep,
           settings: SettingsDep) -> ShareRequestOut:
    req = service.decide(session, principal, request_id, body, settings)
    session.commit()
    return request_out(session, req)


@router.post("/share-requests/{request_id}/resubmit", response_model=ShareRequestOut,
             summary="被退回的申请补充后重新提交")
def resubmit(request_id: RequestId, body: ResubmitIn, session: SessionDep, principal: PrincipalDep,
             settings: SettingsDep) -> ShareRequestOut:
    req = service.resubmit(session, principal, request_id, body, settings)
    session.commit()
    return request_out(session, req)


@router.post("/share-requests/{request_id}/withdraw", response_model=ShareRequestOut, summary="撤回申请")
def withdraw(request_id: RequestId, body: WithdrawIn, session: SessionDep, principal: PrincipalDep) -> ShareRequestOut:
    req = service.withdraw(session, principal, request_id, body.reason)
    session.commit()
    return request_out(session, req)


# ---------------------------------------------------------------- grants and credentials
@router.get("/grants", response_model=Page[GrantOut], summary="授权列表（本部门获得的、本部门数据被授予的；大数据局全部）")
def list_grants(session: SessionDep, principal: PrincipalDep, page: PageNo = 1,
                page_size: PageSize = 20) -> Page[GrantOut]:
    total, rows = service.list_grants(session, principal, (page - 1) * page_size, page_size)
    names = department_and_user_names(session)
    return Page(total=total, page=page, page_size=page_size, items=[grant_out(session, g, names) for g in rows])


@router.get("/grants/{grant_id}", response_model=GrantOut, summary="授权详情")
def get_grant(grant_id: GrantId, session: SessionDep, principal: PrincipalDep) -> GrantOut:
    return grant_out(session, service.get_grant(session, principal, grant_id))


@router.post("/grants/{grant_id}/revoke", response_model=GrantOut, summary="吊销授权（提供方或大数据局），下一次调用即生效")
def revoke_grant(grant_id: GrantId, body: RevokeIn, session: SessionDep, principal: PrincipalDep) -> GrantOut:
    grant = service.revoke_grant(session, principal, grant_id, body.reason)
    session.commit()
    return grant_out(session, grant)


@router.post("/grants/{grant_id}/credentials", response_model=CredentialIssued, status_code=status.HTTP_201_CREATED,
             summary="领取调用凭证（只显示一次，平台只保存哈希）")
def issue_credential(grant_id: GrantId, session: SessionDep, principal: PrincipalDep,
                     settings: SettingsDep) -> CredentialIssued:
    cred, secret = service.issue_credential(session, principal, grant_id, settings)
    session.commit()
    return CredentialIssued(id=cred.id, grant_id=cred.grant_id, prefix=cred.prefix, created_at=cred.created_at,
                            revoked_at=None, credential=secret)


@router.get("/grants/{grant_id}/credentials", response_model=list[CredentialOut], summary="凭证列表（不含密钥）")
def list_credentials(grant_id: GrantId, session: SessionDep, principal: PrincipalDep) -> list[CredentialOut]:
    return [CredentialOut(id=c.id, grant_id=c.grant_id, prefix=c.prefix, created_at=c.created_at,
                          revoked_at=c.revoked_at) for c in service.list_credentials(session, principal, grant_id)]


@router.post("/grants/{grant_id}/credentials/{credential_id}/revoke", response_model=CredentialOut,
             summary="吊销一个调用凭证")
def revoke_credential(grant_id: GrantId, credential_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
                      session: SessionDep, principal: PrincipalDep) -> CredentialOut:
    c: GrantCredential = service.revoke_credential(session, principal, grant_id, credential_id)
    session.commit()
    return CredentialOut(id=c.id, grant_id=c.grant_id, prefix=c.prefix, created_at=c.created_at,
                         revoked_at=c.revoked_at)


# ---------------------------------------------------------------- audit
@router.get("/audit", response_model=Page[AuditEntryOut],
            summary="审计日志：大数据局看全部；提供方看本部门数据的使用；使用方看本部门的调用")
def list_audit(session: SessionDep, principal: PrincipalDep, page: PageNo = 1, page_size: PageSize = 50,
               dataset: Annotated[str | None, Query(max_length=32)] = None,
               grant_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
               kind: Annotated[str | None, Query(pattern="^(gateway|decision|grant|credential|open)$")] = None,
               ) -> Page[AuditEntryOut]:
    total, rows = search_audit(session, principal, dataset, grant_id, kind, (page - 1) * page_size, page_size)
    depts, _ = department_and_user_names(session)
    codes = dict(session.execute(select(Dataset.id, Dataset.code).where(
        Dataset.id.in_({r.dataset_id for r in rows if r.dataset_id}))).all())
    return Page(total=total, page=page, page_size=page_size, items=[AuditEntryOut(
        seq=r.seq, at=r.at, kind=r.kind, action=r.action, status=r.status, actor_user_id=r.actor_user_id,
        actor_department=depts.get(r.actor_department_id), grant_id=r.grant_id, request_id=r.request_id,
        dataset=codes.get(r.dataset_id), provider_department=depts.get(r.provider_department_id),
        consumer_department=depts.get(r.consumer_department_id), detail=r.detail, hash=r.hash) for r in rows])


# ---------------------------------------------------------------- indicators
@router.get("/indicators/sharing", response_model=list[ShareRateOut], tags=["indicators"],
            summary="数据共享率（需求满足率），按提供方部门")
def sharing_indicator(session: SessionDep, principal: PrincipalDep) -> list[ShareRateOut]:
    check_read_catalog(principal)
    return [ShareRateOut(**row) for row in service.share_rate(session)]


@router.get("/indicators/open", response_model=OpenRateOut, tags=["indicators"], summary="数据开放率")
def open_indicator(session: SessionDep, principal: PrincipalDep) -> OpenRateOut:
    check_read_catalog(principal)
    return OpenRateOut(**service.open_rate(session))


# ---------------------------------------------------------------- outside users
@router.post("/public/register", status_code=status.HTTP_201_CREATED, tags=["open"],
             summary="社会用户注册（可申请受限开放数据）")
def register(body: RegisterIn, request: Request, session: SessionDep) -> dict[str, str]:
    service.register_public_user(session, body)
    session.commit()
    return {"username": body.username, "message": "注册成功，请用 POST /api/v1/auth/login 登录换取令牌"}
