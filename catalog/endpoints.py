"""Thin HTTP layer of the catalog API: parse, call the service, shape the answer. Rules live in service.py."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status
from sqlalchemy import select

from catalog import auth, indicators, repository, service
from catalog.deps import PrincipalDep, SearchDep, SessionDep, SettingsDep
from catalog.enums import Category, CollectionStatus, OpenType, SecurityGrade, ShareType
from catalog.errors import Conflict
from catalog.models import Department, User
from catalog.permissions import check_manage_departments, check_read_catalog, require_principal
from catalog.schemas import (
    CataloguingIndicator,
    DataElementDetail,
    DataElementOut,
    DataItemOut,
    DatasetCreate,
    DatasetOut,
    DatasetUpdate,
    DepartmentIn,
    DepartmentOut,
    DepartmentPatch,
    ErrorBody,
    FacetValue,
    LoginIn,
    MeOut,
    Page,
    SearchHit,
    SearchPage,
    TokenCreated,
    TokenOut,
    UserIn,
)
from catalog.security import hash_password
from catalog.search import SORTS, SearchQuery, highlight
from catalog.schemas import _CONTROL as CONTROL_CHARACTERS

ERRORS = {
    400: {"model": ErrorBody, "description": "bad request"},
    401: {"model": ErrorBody, "description": "missing, invalid, expired or revoked token"},
    403: {"model": ErrorBody, "description": "the caller may not do this"},
    404: {"model": ErrorBody, "description": "not found (or not visible to the caller)"},
    409: {"model": ErrorBody, "description": "conflict, e.g. 一数一源: the element already has an authoritative source"},
    422: {"model": ErrorBody, "description": "a field or catalog rule is violated; `detail` names each field and rule"},
}

router = APIRouter(prefix="/api/v1", responses={k: ERRORS[k] for k in (400, 401, 422)})

PageNo = Annotated[int, Query(ge=1, le=100_000, description="page number, from 1")]
PageSize = Annotated[int, Query(ge=1, le=100, description="rows per page (at most 100)")]
DeptCode = Annotated[str, Path(pattern=r"^[A-Z][A-Z0-9]{1,15}$", examples=["GAJ"])]
DATASET_CODE_PATTERN = r"[A-Z][A-Z0-9]{1,15}-[0-9]{5}"  # also the gateway fast path's (sharing.gateway_endpoints)
DatasetCodePath = Annotated[str, Path(pattern=f"^{DATASET_CODE_PATTERN}$", examples=["SCJG-00001"])]
ElementPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,32}$", examples=["DE0101001"])]


# ---------------------------------------------------------------- auth
@router.post("/auth/login", response_model=TokenCreated, status_code=status.HTTP_201_CREATED, tags=["auth"],
             summary="用户名密码登录，换取 API 令牌（只显示一次）")
def login(body: LoginIn, session: SessionDep, settings: SettingsDep) -> TokenCreated:
    token, secret = auth.login(session, settings.secret_key, body.username, body.password, body.token_name,
                               body.expires_in_days)
    session.commit()
    return TokenCreated(id=token.id, name=token.name, token=secret, expires_at=token.expires_at)


@router.get("/me", response_model=MeOut, tags=["auth"], summary="当前用户")
def me(session: SessionDep, principal: PrincipalDep) -> MeOut:
    p = require_principal(principal)
    user = session.get(User, p.user_id)
    return MeOut(username=user.username, display_name=user.display_name,
                 department=repository.department_out(user.department), roles=sorted(p.roles))


@router.get("/auth/tokens", response_model=Page[TokenOut], tags=["auth"], summary="我的令牌")
def list_tokens(session: SessionDep, principal: PrincipalDep, page: PageNo = 1, page_size: PageSize = 20):
    tokens = auth.list_tokens(session, require_principal(principal))
    start = (page - 1) * page_size
    return Page[TokenOut](total=len(tokens), page=page, page_size=page_size,
                          items=[TokenOut.model_validate(t) for t in tokens[start:start + page_size]])


@router.delete("/auth/tokens/{token_id}", response_model=TokenOut, tags=["auth"], summary="吊销令牌",
               responses={404: ERRORS[404]})
def revoke_token(token_id: Annotated[int, Path(ge=1, le=2**31 - 1)], session: SessionDep, principal: PrincipalDep):
    token = auth.revoke_token(session, require_principal(principal), token_id)
    session.commit()
    return TokenOut.model_validate(token)


# ---------------------------------------------------------------- departments
@router.post("/users", response_model=MeOut, status_code=201, tags=["auth"], summary="新增政务用户（管理员）",
             responses={403: ERRORS[403], 404: ERRORS[404], 409: ERRORS[409]})
def create_user(body: UserIn, session: SessionDep, principal: PrincipalDep) -> MeOut:
    check_manage_departments(principal)
    department = service.get_department(session, body.department)
    if session.execute(select(User.id).where(User.username == body.username)).first():
        raise Conflict(f"用户名 {body.username} 已被使用")
    user = User(username=body.username, display_name=body.display_name, department_id=department.id,
                roles=sorted(set(body.roles)), password_hash=hash_password(body.password))
    session.add(user)
    session.commit()
    return MeOut(username=user.username, display_name=user.display_name,
                 department=repository.department_out(department), roles=user.roles)


@router.get("/departments", response_model=Page[DepartmentOut], tags=["departments"], summary="部门列表")
def list_departments(session: SessionDep, principal: PrincipalDep, page: PageNo = 1, page_size: PageSize = 20):
    check_read_catalog(principal)
    total, rows = repository.list_departments(session, (page - 1) * page_size, page_size)
    return Page[DepartmentOut](total=total, page=page, page_size=page_size,
                               items=[repository.department_out(d) for d in rows])


@router.get("/departments/{code}", response_model=DepartmentOut, tags=["departments"], summary="部门详情",
            responses={404: ERRORS[404]})
def get_department(code: DeptCode, session: SessionDep, principal: PrincipalDep):
    check_read_catalog(principal)
    return repository.department_out(service.get_department(session, code))


@router.post("/departments", response_model=DepartmentOut, status_code=201, tags=["departments"],
             summary="新增部门（管理员）", responses={403: ERRORS[403], 404: ERRORS[404], 409: ERRORS[409]})
def create_department(body: DepartmentIn, session: SessionDep, principal: PrincipalDep):
    check_manage_departments(principal)
    parent = service.get_department(session, body.parent_code) if body.parent_code else None
    clash = session.execute(
        select(Department).where((Department.code == body.code) | (Department.name == body.name))
    ).scalar_one_or_none()
    if clash is not None:
        raise Conflict(f"部门代码或名称已存在：{clash.code} {clash.name}")
    dept = Department(code=body.code, name=body.name, short_name=body.short_name,
                      parent_id=parent.id if parent else None)
    session.add(dept)
    session.commit()
    return repository.department_out(dept)


@router.patch("/departments/{code}", response_model=DepartmentOut, tags=["departments"], summary="修改部门（管理员）",
              responses={403: ERRORS[403], 404: ERRORS[404], 409: ERRORS[409]})
def update_department(code: DeptCode, body: DepartmentPatch, session: SessionDep, principal: PrincipalDep):
    check_manage_departments(principal)
    dept = service.get_department(session, code)
    if body.name is not None and body.name != dept.name:
        if session.execute(select(Department.id).where(Department.name == body.name)).first():
            raise Conflict(f"部门名称已存在：{body.name}")
        dept.name = body.name
    if body.short_name is not None:
        dept.short_name = body.short_name
    service.bump_generation(session)  # department names appear in search facets
    session.commit()
    return repository.department_out(dept)


# ---------------------------------------------------------------- standards
@router.get("/standards", response_model=Page[DataElementOut], tags=["standards"],
            summary="数据元标准列表（每个数据元的最新版本）")
def list_standards(session: SessionDep, principal: PrincipalDep, page: PageNo = 1, page_size: PageSize = 20,
                   q: Annotated[str | None, Query(max_length=100, description="名称、标识符或英文名包含")] = None):
    check_read_catalog(principal)
    total, rows = repository.list_standards(session, q, (page - 1) * page_size, page_size)
    return Page[DataElementOut](total=total, page=page, page_size=page_size,
                                items=[DataElementOut.model_validate(e) for e in rows])


@router.get("/standards/{identifier}", response_model=DataElementDetail, tags=["standards"],
            summary="数据元详情：最新版本、全部版本与权威来源", responses={404: ERRORS[404]})
def get_standard(identifier: ElementPath, session: SessionDep, principal: PrincipalDep):
    check_read_catalog(principal)
    return repository.standard_detail(session, identifier)


@router.get("/standards/{identifier}/versions/{version}", response_model=DataElementOut, tags=["standards"],
            summary="数据元的某一版本", responses={404: ERRORS[404]})
def get_standard_version(identifier: ElementPath,
                         version: Annotated[str, Path(pattern=r"^[0-9A-Za-z.\-]{1,16}$")],
                         session: SessionDep, principal: PrincipalDep):
    check_read_catalog(principal)
    return DataElementOut.model_validate(repository.standard_version(session, identifier, version))


# ---------------------------------------------------------------- datasets and search
@router.get("/datasets", response_model=SearchPage, tags=["datasets"],
            summary="检索与浏览资源目录（中文全文检索、分面、筛选、排序、分页）",
            description="`q` 为空时按资源代码列出全部资源并给出分面计数。匿名调用只能看到开放目录（无条件开放、受限开放）。"
                        "同一分面内的多个取值为“或”，不同分面之间为“与”；分面计数不受该分面自身筛选的影响。")
def search_datasets(
    session: SessionDep, principal: PrincipalDep, search: SearchDep,
    q: Annotated[str, Query(max_length=200, description="检索词，如 `信用` 或 `企业 登记`", examples=["信用"])] = "",
    department: Annotated[list[Annotated[str, Query(max_length=16)]], Query(max_length=50, description="部门代码")] = [],
    category: Annotated[list[Category], Query(max_length=10, description="分类")] = [],
    share_type: Annotated[list[ShareType], Query(max_length=10, description="共享类型")] = [],
    open_type: Annotated[list[OpenType], Query(max_length=10, description="开放类型")] = [],
    security_grade: Annotated[list[SecurityGrade], Query(max_length=10, description="安全分级")] = [],
    collection_status: Annotated[list[CollectionStatus], Query(max_length=10, description="归集状态")] = [],
    sort: Annotated[str, Query(pattern="^(" + "|".join(s.replace("-", r"\-") for s in SORTS) + ")$",
                               description="relevance (有检索词时默认) / code / name / -release_date / release_date / -updated_at")] = "relevance",
    page: PageNo = 1, page_size: PageSize = 20,
) -> SearchPage:
    filters = tuple((name, tuple(str(getattr(v, "value", v)) for v in values)) for name, values in (
        ("department", department), ("category", category), ("share_type", share_type), ("open_type", open_type),
        ("security_grade", security_grade), ("collection_status", collection_status)) if values)
    query = SearchQuery(q=" ".join(CONTROL_CHARACTERS.sub(" ", q).split()), filters=filters, sort=sort, page=page, page_size=page_size,
                        public_only=principal is None or principal.is_external)
    result = search.search(session, query)
    hits = []
    for dataset, score in zip(repository.datasets_by_id(session, result.ids), result.scores):
        hits.append(SearchHit(**repository.summary_fields(dataset), score=score, highlights={
            "name": highlight(dataset.name, result.highlight_words),
            "summary": highlight(dataset.summary, result.highlight_words, limit=120),
        }))
    effective_sort = sort if (sort != "relevance" or query.q) else "code"
    return SearchPage(total=result.total, page=page, page_size=page_size, sort=effective_sort, items=hits,
                      facets={k: [FacetValue(**v) for v in vals] for k, vals in result.facets.items()})


@router.post("/datasets", response_model=DatasetOut, status_code=201, tags=["datasets"],
             summary="登记资源（编目），含数据项；一数一源冲突返回 409",
             responses={403: ERRORS[403], 404: ERRORS[404], 409: ERRORS[409]})
def create_dataset(body: DatasetCreate, session: SessionDep, principal: PrincipalDep, search: SearchDep):
    dataset = service.create_dataset(session, search, principal, body)
    session.commit()
    return repository.dataset_out(dataset)


@router.get("/datasets/{code}", response_model=DatasetOut, tags=["datasets"], summary="资源详情",
            responses={404: ERRORS[404]})
def get_dataset(code: DatasetCodePath, session: SessionDep, principal: PrincipalDep):
    return repository.dataset_out(service.get_dataset(session, principal, code))


@router.get("/datasets/{code}/items", response_model=Page[DataItemOut], tags=["datasets"],
            summary="资源的数据项（含数据元与一数一源来源）", responses={404: ERRORS[404]})
def list_items(code: DatasetCodePath, session: SessionDep, principal: PrincipalDep, page: PageNo = 1,
               page_size: PageSize = 100):
    dataset = service.get_dataset(session, principal, code)
    start = (page - 1) * page_size
    return Page[DataItemOut](total=len(dataset.items), page=page, page_size=page_size,
                             items=[repository.item_out(i) for i in dataset.items[start:start + page_size]])


@router.patch("/datasets/{code}", response_model=DatasetOut, tags=["datasets"],
              summary="修改资源；给出 items 时整体替换数据项",
              responses={403: ERRORS[403], 404: ERRORS[404], 409: ERRORS[409]})
def update_dataset(code: DatasetCodePath, body: DatasetUpdate, session: SessionDep, principal: PrincipalDep,
                   search: SearchDep):
    dataset = service.update_dataset(session, search, principal, code, body)
    session.commit()
    return repository.dataset_out(dataset)


@router.delete("/datasets/{code}", response_model=DatasetOut, tags=["datasets"],
               summary="撤销资源（保留历史，不再出现在目录中）",
               responses={403: ERRORS[403], 404: ERRORS[404], 409: ERRORS[409]})
def withdraw_dataset(code: DatasetCodePath, session: SessionDep, principal: PrincipalDep, search: SearchDep,
                     reason: Annotated[str, Query(min_length=2, max_length=2000, description="撤销原因")]):
    dataset = service.withdraw_dataset(session, search, principal, code, reason)
    session.commit()
    return repository.dataset_out(dataset)


# ---------------------------------------------------------------- indicators
@router.get("/indicators/cataloguing", response_model=CataloguingIndicator, tags=["indicators"],
            summary="数据编目率（按部门与全市）")
def cataloguing(session: SessionDep, principal: PrincipalDep):
    check_read_catalog(principal)
    return indicators.cataloguing_rate(session)


