"""What consumer systems and the public call: the sharing gateway (`/gateway/v1`, grant credentials only) and the
open-data portal (`/open/v1`, anonymous). Every call is audited, and its entry is durable before the answer leaves."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from starlette.datastructures import QueryParams
from starlette.types import ASGIApp, Receive, Scope, Send
from fastapi.responses import Response
from sqlalchemy import func, select

from catalog.deps import SessionDep
from catalog.endpoints import DATASET_CODE_PATTERN, ERRORS, DatasetCodePath, PageNo, PageSize
from catalog.enums import DatasetStatus, OpenType
from catalog.errors import DomainError, NotFound, PermissionDenied
from catalog.models import Dataset
from catalog.permissions import can_see_dataset
from catalog.models import utcnow
from sharing.gateway import (
    Caller,
    GatewayRuntime,
    Page,
    DEFAULT_PAGE_ROWS,
    audit_entry,
    grant_specs,
    pinned_version,
    public_specs,
)
from sharing.policy import masked_by_default, mask_kind

GATEWAY_ERRORS = {k: ERRORS[k] for k in (400, 401, 403, 404, 409)}
GATEWAY_ERRORS[429] = {"model": ERRORS[400]["model"], "description": "quota or rate limit reached; see Retry-After"}
gateway = APIRouter(prefix="/gateway/v1", tags=["gateway"], responses=GATEWAY_ERRORS)
portal = APIRouter(prefix="/open/v1", tags=["open"], responses={k: ERRORS[k] for k in (400, 403, 404)})

Limit = Annotated[int | None, Query(ge=-(2**62), le=2**62, description="本页行数；JSON/CSV 最多 1000")]
Cursor = Annotated[str | None, Query(max_length=512, description="上一页返回的 next_cursor")]
Version = Annotated[int | None, Query(ge=1, le=2**31 - 1, description="固定版本；默认最新版本")]


# --- the rows endpoint's query, read by hand --------------------------------------------------------------------------
# FastAPI's validation of eight declared query parameters cost ~11% of a gateway worker's CPU under load (py-spy,
# bench/gateway.py) — more than the credential check and the quota together. The rows endpoint reads its query
# itself, by the rules below; the same rules document it in the OpenAPI schema, and a bad value answers the same
# 422 `validation_error` as everywhere else.
@dataclass(frozen=True, slots=True)
class _Param:
    name: str  # also RowsQuery's field
    schema: dict[str, Any]  # OpenAPI schema: type, and the bounds `_read` enforces
    description: str


ROWS_PARAMS = (
    _Param("format", {"type": "string", "pattern": "^(json|csv|arrow|parquet)$", "default": "json"},
           "json | csv | arrow (IPC stream) | parquet"),
    _Param("columns", {"type": "string", "maxLength": 2000}, "逗号分隔的字段（须在授权范围内）"),
    _Param("filter", {"type": "array", "items": {"type": "string"}, "maxItems": 20},
           "字段:运算:值，可重复，全部同时满足；运算 eq ne lt le gt ge in(值以|分隔) prefix is_null not_null"),
    _Param("sort", {"type": "string", "maxLength": 300}, "排序字段，逗号分隔，前缀 - 表示降序"),
    _Param("limit", {"type": "integer", "minimum": -(2**62), "maximum": 2**62}, "本页行数；JSON/CSV 最多 1000"),
    _Param("cursor", {"type": "string", "maxLength": 512}, "上一页返回的 next_cursor"),
    _Param("version", {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}, "固定版本；默认最新版本"),
)
_ROWS_OPENAPI = {"parameters": [{"name": p.name, "in": "query", "required": False, "description": p.description,
                                 "schema": p.schema,
                                 **({"style": "form", "explode": True} if p.schema["type"] == "array" else {})}
                                for p in ROWS_PARAMS]}
_PATTERNS = {p.name: re.compile(p.schema["pattern"]) for p in ROWS_PARAMS if "pattern" in p.schema}
_INTEGER = re.compile(r"[+-]?[0-9]{1,20}")


@dataclass(frozen=True, slots=True)
class RowsQuery:
    format: str = "json"
    columns: str | None = None
    filter: list[str] = field(default_factory=list)
    sort: str | None = None
    limit: int | None = None
    cursor: str | None = None
    version: int | None = None


def _invalid(name: str, message: str, kind: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("query", name), "msg": message, "type": kind}])


def _read(params: QueryParams, param: _Param) -> Any:
    """One parameter by its schema (a repeated single-valued parameter: its last value, as FastAPI)."""
    name, schema = param.name, param.schema
    if schema["type"] == "array":
        values = params.getlist(name)
        if len(values) > schema["maxItems"]:
            raise _invalid(name, f"List should have at most {schema['maxItems']} items after validation", "too_long")
        return values
    value = params.get(name)
    if value is None:
        return schema.get("default")
    if schema["type"] == "integer":
        if not _INTEGER.fullmatch(value.strip()):
            raise _invalid(name, "Input should be a valid integer, unable to parse string as an integer",
                           "int_parsing")
        number, low, high = int(value), schema["minimum"], schema["maximum"]
        if not low <= number <= high:
            raise _invalid(name, f"Input should be between {low} and {high}", "less_than_equal" if number > high
                           else "greater_than_equal")
        return number
    if name in _PATTERNS and not _PATTERNS[name].fullmatch(value):
        raise _invalid(name, f"String should match pattern '{schema['pattern']}'", "string_pattern_mismatch")
    longest = schema.get("maxLength")
    if longest is not None and len(value) > longest:
        raise _invalid(name, f"String should have at most {longest} characters", "string_too_long")
    return value


def rows_query(params: QueryParams) -> RowsQuery:
    """The rows endpoint's query, read and checked by ROWS_PARAMS."""
    return RowsQuery(**{p.name: _read(params, p) for p in ROWS_PARAMS})


def _runtime(request: Request) -> GatewayRuntime:
    return request.app.state.gateway


def _response(page: Page) -> Response:
    return Response(page.body, media_type=page.media_type, headers=page.headers)


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value if scheme.lower() == "bearer" else ""


def _call_detail(q: RowsQuery, code: str) -> dict[str, Any]:
    return {"format": q.format, "columns": q.columns, "filter": q.filter, "sort": q.sort, "limit": q.limit,
            "cursor": bool(q.cursor), "version": q.version, "dataset": code}


@gateway.get("/datasets/{code}/rows", summary="按授权范围读取数据（字段、行筛选、脱敏、配额均在服务端执行）",
             response_class=Response, openapi_extra=_ROWS_OPENAPI)
async def read_rows(request: Request, code: DatasetCodePath) -> Response:
    # Normally answered by GatewayFastPath before routing; this route documents the endpoint and serves a request
    # the fast path passes on.
    return await rows_response(request, code)


async def rows_response(request: Request, code: str) -> Response:
    q = rows_query(request.query_params)
    limit = q.limit
    runtime = _runtime(request)
    raw = _bearer(request)
    detail = _call_detail(q, code)
    caller: Caller | None = None
    paged = q.format in ("json", "csv")

    def rows_wanted(c: Caller) -> int:
        return (limit if limit and limit > 0 else DEFAULT_PAGE_ROWS) if paged else (limit or c.rows_per_day)

    try:
        # The credential's grant (kept in memory while nothing changed) and the quota, in one Redis round trip.
        caller, quota = await runtime.admit(raw, rows_wanted)
        detail["credential_id"] = caller.credential_id
        runtime.refuse_over_quota(caller, quota)
        taken, served = quota.rows, 0
        try:
            if caller.dataset_code != code:
                runtime.refuse_other_dataset(code)
            pinned = pinned_version(caller.latest_version, q.version, code)
            scope = runtime.scopes.get(("grant", caller.grant_id, pinned))
            if scope is None:
                scope = await run_in_threadpool(runtime.grant_scope, caller, pinned, grant_specs(caller))
            else:
                scope = runtime.grant_scope(caller, pinned, grant_specs(caller))
            page = runtime.serve(scope, scope_id=("grant", caller.grant_id), version=pinned, fmt=q.format,
                                 columns=q.columns, filters=q.filter, sort=q.sort, limit=limit, cursor=q.cursor,
                                 rows_left=taken, meta={"dataset": code, "grant_id": caller.grant_id})
            served = page.rows
        finally:
            runtime.give_back(caller, taken - served)  # rows reserved but not served (last page, refusal)
    except DomainError as exc:
        detail["error"] = exc.message
        if caller is None and raw:
            detail["credential_prefix"] = raw[:12]
        await runtime.audit.write(audit_entry(caller, "rows", exc.status_code, detail))
        raise
    detail.update(rows=page.rows, bytes=page.bytes, version=pinned)
    await runtime.audit.write(audit_entry(caller, "rows", 200, detail))
    return _response(page)


_ROWS_PATH = re.compile(f"/gateway/v1/datasets/({DATASET_CODE_PATTERN})/rows")  # what the route's path accepts


class GatewayFastPath:
    """ASGI middleware: `GET /gateway/v1/datasets/{code}/rows` goes straight to `rows_response`, before FastAPI's
    routing, dependency solving and per-route wrappers — they cost a worker ~0.23 ms a request, as much as serving
    the page itself (a bare 15 KB answer: 0.33 ms of CPU through a FastAPI route, 0.10 ms through this; see README
    "### Gateway"). Errors become responses through the application's own exception handlers, so every answer is
    the one the route would give; anything else (another method, a code the route would refuse as malformed) goes
    on to FastAPI unchanged."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            match = _ROWS_PATH.fullmatch(scope["path"])
            if match:
                request = Request(scope, receive)
                try:
                    response = await rows_response(request, match.group(1))
                except (DomainError, RequestValidationError) as exc:
                    response = await _handled(request, exc)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _handled(request: Request, exc: Exception) -> Response:
    handlers = request.app.exception_handlers
    for cls in type(exc).__mro__:  # as Starlette looks a handler up
        if cls in handlers:
            return await handlers[cls](request, exc)
    raise exc


@gateway.get("/grant", summary="本凭证的授权范围（字段、脱敏方式、筛选、有效期、配额）")
async def my_grant(request: Request) -> dict[str, Any]:
    runtime = _runtime(request)
    caller = runtime.authenticate(_bearer(request))
    with request.app.state.db.sessionmaker() as session:
        dataset = session.get(Dataset, caller.dataset_id)
        specs = grant_specs(caller)(list(dataset.items))
    return {"grant_id": caller.grant_id, "dataset": caller.dataset_code, "latest_version": caller.latest_version,
            "fields": caller.fields, "masked": {s.code: s.mask for s in specs if s.mask},
            "row_filter": caller.row_filter, "requests_per_minute": caller.requests_per_minute,
            "rows_per_day": caller.rows_per_day}


# ---------------------------------------------------------------- open-data portal
def _open_dataset(session, code: str) -> Dataset:  # noqa: ANN001
    dataset = session.execute(select(Dataset).where(Dataset.code == code)).unique().scalar_one_or_none()
    if dataset is None or not can_see_dataset(None, dataset):
        raise NotFound(f"资源 {code} 不存在")
    return dataset


def _portal_entry(dataset: Dataset) -> dict[str, Any]:
    items = sorted(dataset.items, key=lambda i: i.position)
    return {
        "code": dataset.code, "name": dataset.name, "summary": dataset.summary, "department": dataset.department.name,
        "open_type": dataset.open_type.value, "open_condition": dataset.open_condition,
        "update_cycle": dataset.update_cycle.value, "latest_version": dataset.latest_version,
        "row_count": dataset.row_count,
        "items": [{"code": i.code, "name": i.name, "data_type": i.data_type.value,
                   "masked": mask_kind(i) if masked_by_default(i) else None} for i in items],
        "download": ({fmt: f"/open/v1/datasets/{dataset.code}/download?format={fmt}" for fmt in ("csv", "json", "parquet")}
                     if dataset.open_type == OpenType.unconditional and dataset.latest_version else None),
        "how_to_apply": ("注册社会用户后提交开放申请：POST /api/v1/share-requests"
                         if dataset.open_type == OpenType.restricted else None),
    }


@portal.get("/datasets", summary="开放数据目录（无条件开放与受限开放）")
def open_datasets(session: SessionDep, page: PageNo = 1, page_size: PageSize = 20,
                  open_type: Annotated[str | None, Query(pattern="^(无条件开放|受限开放)$")] = None) -> dict[str, Any]:
    types = [OpenType(open_type)] if open_type else [OpenType.unconditional, OpenType.restricted]
    query = select(Dataset).where(Dataset.status == DatasetStatus.published, Dataset.open_type.in_(types))
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = session.execute(query.order_by(Dataset.code).offset((page - 1) * page_size).limit(page_size)
                           ).unique().scalars().all()
    return {"total": total, "page": page, "page_size": page_size, "items": [_portal_entry(d) for d in rows]}


@portal.get("/datasets/{code}", summary="开放数据详情")
def open_dataset(code: DatasetCodePath, session: SessionDep) -> dict[str, Any]:
    return _portal_entry(_open_dataset(session, code))


@portal.get("/datasets/{code}/download", summary="下载无条件开放数据（CSV / JSON / Parquet；按客户端限速）",
            response_class=Response)
async def download(request: Request, code: DatasetCodePath,
                   format: Annotated[str, Query(pattern="^(csv|json|parquet)$")] = "csv", limit: Limit = None,
                   cursor: Cursor = None, version: Version = None) -> Response:
    runtime = _runtime(request)
    client = request.client.host if request.client else "unknown"
    detail: dict[str, Any] = {"dataset": code, "format": format, "client": client, "version": version}
    dataset_id = provider = None
    try:
        runtime.check_open_rate(client)
        with request.app.state.db.sessionmaker() as session:
            dataset = _open_dataset(session, code)
            dataset_id, provider, latest = dataset.id, dataset.department_id, dataset.latest_version
            if dataset.open_type != OpenType.unconditional:
                raise PermissionDenied(f"资源 {code} 为受限开放：请注册社会用户并提交开放申请，获批后凭授权调用")
        pinned = pinned_version(latest, version, code)
        key = ("open", dataset_id, pinned)
        scope = await run_in_threadpool(runtime.scope, key, dataset_id, pinned, public_specs, [])
        page = runtime.serve(scope, scope_id=key, version=pinned, fmt=format, columns=None, filters=[], sort=None,
                             limit=limit, cursor=cursor, rows_left=None, meta={"dataset": code},
                             paged=("json",), csv_bom=True)
    except DomainError as exc:
        detail["error"] = exc.message
        await runtime.audit.write(_open_entry(dataset_id, provider, exc.status_code, detail))
        raise
    detail.update(rows=page.rows, bytes=page.bytes, version=pinned)
    await runtime.audit.write(_open_entry(dataset_id, provider, 200, detail))
    response = _response(page)
    if format != "json":
        response.headers["Content-Disposition"] = f'attachment; filename="{code}-v{pinned}.{format}"'
    return response


def _open_entry(dataset_id: int | None, provider: int | None, status: int, detail: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "open", "action": "download", "status": status, "dataset_id": dataset_id,
            "provider_department_id": provider, "detail": detail, "at": utcnow()}
