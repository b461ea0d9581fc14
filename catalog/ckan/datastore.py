"""`datastore_search` served by the sharing gateway's runtime (app.state.gateway).

Open (无条件开放) data is served to anyone, with the public masking, rate-limited per client like the open-data
download; shared data only to a grant credential (`odg_…` in Authorization / X-CKAN-API-Key), within its scope:
granted columns, the grant's row filter, masking, objection marks, quotas. CKAN's parameters map onto the gateway's
narrowing: `filters` ({field: value | [values]}) become eq / in conditions and, like `sort` and `q`, may only use
granted, unmasked columns (a masked column would leak through counts or order); `q` is a case-insensitive
substring match over the granted unmasked text columns (a string) or over named ones (a dict). `limit` defaults to
100 and is capped at the gateway's page ceiling (ODH_GATEWAY_MAX_PAGE_ROWS, 1,000; CKAN's own cap is 32,000): the
answer's `limit` says what was applied, and `_links.next` pages on. `_id` is the row's 1-based position in the
caller's scope of that version (stable: versions are immutable), not its position in the whole version, which would
reveal how many rows a grant's filter hides. Every call, refusals included, is written to the audit chain before the
answer leaves, as the gateway's own calls are.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import urlencode

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from catalog.enums import DatasetStatus, OpenType
from catalog.errors import DomainError, NotFound, PermissionDenied
from catalog.models import Dataset
from catalog.permissions import can_see_dataset
from catalog.schemas import _CONTROL as CONTROL_CHARACTERS
from sharing.engine import (
    OBJECTION_COLUMN,
    POSITION_COLUMN,
    Condition,
    ScopeError,
    bind_conditions,
    make_view,
    page_json,
)
from sharing.gateway import Scope, audit_entry, grant_specs, public_specs

from catalog.ckan import mapping
from catalog.ckan.errors import CkanValidationError, as_bool, as_dict, as_int, as_list, invalid

CKAN_MAX_LIMIT = 32000
DEFAULT_LIMIT = 100
MAX_FILTERS = 20
MAX_IN_VALUES = 1000
ACTION = "ckan.datastore_search"


def _pinned(latest: int | None, version: int, resource_id: str) -> int:
    """The resource's version, which must be published (a resource id of a version yet to come is not found)."""
    if latest is None or not 1 <= version <= latest:
        raise NotFound(f"Resource \"{resource_id}\" was not found.")
    return version


def _ckan_type(typ: pa.DataType) -> str:
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return "text"
    if pa.types.is_boolean(typ):
        return "bool"
    if pa.types.is_integer(typ):
        return "int"
    if pa.types.is_floating(typ) or pa.types.is_decimal(typ):
        return "numeric"
    if pa.types.is_date(typ):
        return "date"
    if pa.types.is_timestamp(typ):
        return "timestamp"
    return "text"


def _scalar(value: Any, where: str) -> Any:
    if isinstance(value, (str, int, float, bool)) and not (isinstance(value, str) and len(value) > 1000):
        return value
    raise invalid("filters", f"{where} 的值应为字符串、数字或布尔值（或它们的列表）")


def _params(data: dict[str, Any], ceiling: int) -> dict[str, Any]:
    """CKAN's datastore_search parameters, validated before anything is read."""
    out: dict[str, Any] = {}
    out["limit_asked"] = as_int(data, "limit", DEFAULT_LIMIT, minimum=0, maximum=CKAN_MAX_LIMIT, clamp=True)
    out["limit"] = min(out["limit_asked"], ceiling)
    out["offset"] = as_int(data, "offset", 0, minimum=0, maximum=2**40)
    out["include_total"] = as_bool(data, "include_total", True)
    records_format = data.get("records_format") or "objects"
    if records_format != "objects":
        raise invalid("records_format", "只支持 objects")
    if as_bool(data, "distinct", False):
        raise invalid("distinct", "不支持 distinct")
    filters = as_dict(data.get("filters"), "filters")
    if len(filters) > MAX_FILTERS:
        raise invalid("filters", f"筛选字段最多 {MAX_FILTERS} 个")
    conds = []
    for name, value in filters.items():
        if isinstance(value, list):
            if not value or len(value) > MAX_IN_VALUES:
                raise invalid("filters", f"字段 {name} 的取值列表应有 1 到 {MAX_IN_VALUES} 个值")
            conds.append(Condition(str(name), "in", tuple(_scalar(v, str(name)) for v in value)))
        else:
            conds.append(Condition(str(name), "eq", _scalar(value, str(name))))
    out["conds"] = conds
    q = data.get("q")
    if isinstance(q, str) and q.strip().startswith("{"):
        q = as_dict(q, "q")
    if q in (None, ""):
        q = None
    elif isinstance(q, dict):
        if not all(isinstance(k, str) and isinstance(v, str) and 0 < len(v) <= 1000 for k, v in q.items()):
            raise invalid("q", "q 应为文本，或 {字段: 文本}")
    elif not isinstance(q, str) or len(q) > 1000:
        raise invalid("q", "q 应为不超过 1000 个字符的文本")
    out["q"] = q
    fields = as_list(data.get("fields"), "fields")
    if not all(isinstance(f, str) and f for f in fields):
        raise invalid("fields", "fields 应为字段名列表")
    out["fields"] = [f.strip() for f in fields]
    sort = data.get("sort")
    clauses = as_list(sort, "sort") if sort not in (None, "") else []
    keys: list[tuple[str, str]] = []
    for clause in clauses:
        if not isinstance(clause, str):
            raise invalid("sort", "sort 应为 \"字段 asc|desc\" 的列表或以逗号分隔的文本")
        parts = clause.split()
        if not parts or len(parts) > 2 or (len(parts) == 2 and parts[1].lower() not in ("asc", "desc")):
            raise invalid("sort", f"无法解析的排序 {clause!r}：格式为 \"字段 asc\" 或 \"字段 desc\"")
        direction = "descending" if len(parts) == 2 and parts[1].lower() == "desc" else "ascending"
        keys.append((parts[0].strip('"'), direction))
    if len(keys) > 5:
        raise invalid("sort", "排序字段最多 5 个")
    out["sort"] = keys
    return out


def _open_dataset(ctx: Any, code: str) -> tuple[int, int, int | None]:
    with ctx.db.sessionmaker() as session:
        dataset = session.execute(select(Dataset).where(Dataset.code == code)).unique().scalar_one_or_none()
        if dataset is None or not can_see_dataset(None, dataset):
            if dataset is not None and dataset.status == DatasetStatus.published and ctx.principal is not None \
                    and can_see_dataset(ctx.principal, dataset):
                raise PermissionDenied(f"资源 {code} 为共享数据：请提交共享申请，获批后以授权凭证 (odg_…) 调用 datastore_search")
            raise NotFound(f"资源 {code} 不存在")
        if dataset.open_type != OpenType.unconditional:
            raise PermissionDenied(f"资源 {code} 为受限开放：请注册社会用户并提交开放申请，获批后以授权凭证 (odg_…) 调用")
        return dataset.id, dataset.department_id, dataset.latest_version


def _text_filter(view: pa.Table, q: str | dict[str, str], granted: list[str], masked: dict[str, str]) -> pa.Table:
    schema = view.schema

    def is_text(name: str) -> bool:
        typ = schema.field(name).type
        return pa.types.is_string(typ) or pa.types.is_large_string(typ)

    if isinstance(q, dict):
        expr = None
        for name, text in q.items():
            if name not in granted:
                raise ScopeError(f"未授权字段 {name} 不能用于检索 (q)")
            if name in masked:
                raise ScopeError(f"字段 {name} 已脱敏，不能用于检索（按原值检索会泄露被隐藏的部分）")
            if not is_text(name):
                raise invalid("q", f"字段 {name} 不是文本列，不能检索")
            part = pc.match_substring(pc.field(name), pattern=text, ignore_case=True)
            expr = part if expr is None else expr & part
    else:
        columns = [c for c in granted if c not in masked and is_text(c)]
        if not columns:
            raise invalid("q", "本授权范围内没有可检索的未脱敏文本字段")
        expr = None
        for name in columns:
            part = pc.match_substring(pc.field(name), pattern=q, ignore_case=True)
            expr = part if expr is None else expr | part
    return view.filter(expr) if expr is not None else view


def _query(scope: Scope, scope_id: Any, version: int, params: dict[str, Any], rows_left: int | None,
           resource_id: str, base_path: str) -> dict[str, Any]:
    open_data = scope_id[0] == "open"
    granted = [s.code for s in scope.specs]
    masked = scope.masked
    selected = [f for f in params["fields"] if f not in ("_id", OBJECTION_COLUMN)] or granted
    for name in selected:
        if name not in granted:
            raise ScopeError(f"未授权字段 {name}：本授权只包含 {', '.join(granted)}")
    selected = list(dict.fromkeys(selected))
    for cond in params["conds"]:
        if cond.field not in granted:
            if open_data:  # every column is public: the field does not exist
                raise invalid("filters", f"字段 {cond.field} 不存在；可用字段为 {', '.join(granted)}")
            raise ScopeError(f"未授权字段 {cond.field} 不能用于筛选")  # alike whether it exists or not
    conds = bind_conditions(params["conds"], scope.table.schema, allowed=granted, refused=list(masked))
    for name, _direction in params["sort"]:
        if name not in granted:
            raise ScopeError(f"未授权字段 {name} 不能用于排序")
        if name in masked:
            raise ScopeError(f"脱敏字段 {name} 不能用于排序（排序会泄露被隐藏的部分）")
    fingerprint = hashlib.sha256(orjson.dumps(
        ["ckan", repr(scope_id), version, [(c.field, c.op, repr(c.value)) for c in conds], params["sort"]],
        default=str)).hexdigest()[:16]
    view_key = ("ckan", fingerprint)
    view = scope.views.get(view_key)
    if view is None:
        view = make_view(scope.table, conds, params["sort"])
        if len(scope.views) > 32:
            scope.views.pop(next(iter(scope.views)))
        scope.views[view_key] = view
    if params["q"] is not None:
        view = _text_filter(view, params["q"], granted, masked)
    total = view.num_rows
    offset, limit = params["offset"], params["limit"]
    count = max(0, min(limit, total - offset))
    if rows_left is not None:
        count = min(count, rows_left)
    part = view.slice(offset, count)
    marks = scope.table.column(OBJECTION_COLUMN)
    with_marks = marks.null_count < len(marks)
    out = part.select([*selected, *([OBJECTION_COLUMN] if with_marks else [])])
    rows = orjson.loads(page_json(out, {}))["rows"]
    scope_positions = scope.table.column(POSITION_COLUMN).to_numpy()
    ids = (np.searchsorted(scope_positions, part.column(POSITION_COLUMN).to_numpy()) + 1).tolist() if count else []
    records = [{"_id": i, **row} for i, row in zip(ids, rows)]
    fields = [{"id": "_id", "type": "int"}]
    fields += [{"id": name, "type": _ckan_type(scope.table.schema.field(name).type)} for name in selected]
    if with_marks:
        fields.append({"id": OBJECTION_COLUMN, "type": "text"})
    link_params = {"resource_id": resource_id}
    if params["limit_asked"] != DEFAULT_LIMIT:
        link_params["limit"] = str(limit)
    result: dict[str, Any] = {
        "resource_id": resource_id, "fields": fields, "records": records, "records_format": "objects",
        "limit": limit, "offset": offset, "include_total": params["include_total"],
        "_links": {"start": f"{base_path}?{urlencode(link_params)}",
                   "next": f"{base_path}?{urlencode({**link_params, 'offset': str(offset + limit)})}"},
        "version": version,
    }
    if params["include_total"]:
        result["total"] = total
        result["total_was_estimated"] = False
    masked_out = {c: masked[c] for c in selected if c in masked}
    if masked_out:
        result["masked"] = masked_out
    objections = {c: ids for c, ids in scope.item_objections.items() if c in selected}
    if objections:
        result["objections"] = objections
    return result


def _wanted_rows(params: dict[str, Any], ceiling: int) -> int:
    """The rows a call may read, for reserving the quota before the query (CKAN's default limit is 100)."""
    try:
        return max(1, min(int(params.get("limit", 100)), ceiling))
    except (TypeError, ValueError):
        return 1


async def datastore_search(ctx: Any, data: dict[str, Any]) -> dict[str, Any]:
    """Rows of a resource (`resource_id` like gaj-00001-v1-csv): filters, q, fields, sort, limit, offset,
    include_total. Open (无条件开放) data anonymously; shared data with a grant credential (odg_…) in its scope."""
    runtime = ctx.runtime
    resource_id = data.get("resource_id") or data.get("id")
    detail: dict[str, Any] = {"via": "ckan", "resource_id": _audit_text(resource_id) if resource_id else None}
    for key in ("filters", "q", "fields", "sort", "limit", "offset"):
        if data.get(key) not in (None, ""):
            detail[key] = _audit_text(data[key])
    caller = None
    dataset_id = provider = None
    pinned = None
    try:
        params = _params(data, runtime.settings.gateway_max_page_rows)
        parsed = mapping.parse_resource_id(resource_id)
        if resource_id in (None, ""):
            raise invalid("resource_id", "Missing value")
        if parsed is None:
            raise NotFound(f"Resource \"{resource_id}\" was not found.")
        code, version, _fmt = parsed
        resource_id = resource_id.strip().lower()
        detail["dataset"] = code
        rows_left: int | None = None
        if ctx.grant_token:
            caller = runtime.authenticate(ctx.grant_token)
            detail["credential_id"] = caller.credential_id
            if caller.dataset_code != code:
                await run_in_threadpool(runtime.refuse_other_dataset, code)
            pinned = _pinned(caller.latest_version, version, resource_id)
            rows_left = runtime.take_quota(caller, _wanted_rows(params, runtime.settings.gateway_max_page_rows))
            scope = await run_in_threadpool(runtime.grant_scope, caller, pinned, grant_specs(caller))
            scope_id: Any = ("grant", caller.grant_id)
        else:
            runtime.check_open_rate(ctx.client)
            dataset_id, provider, latest = await run_in_threadpool(_open_dataset, ctx, code)
            pinned = _pinned(latest, version, resource_id)
            scope_id = ("open", dataset_id, pinned)
            scope = await run_in_threadpool(runtime.scope, scope_id, dataset_id, pinned, public_specs, [])
        result = await run_in_threadpool(_query, scope, scope_id, pinned, params, rows_left, resource_id,
                                         f"{ctx.extra.get('api_path', '/api/3/action')}/datastore_search")
        if caller is not None:
            runtime.give_back(caller, rows_left - len(result["records"]))
            rows_left = None
    except (DomainError, CkanValidationError) as exc:
        if caller is not None and rows_left:
            runtime.give_back(caller, rows_left)  # refused after the rows were reserved
        if isinstance(exc, DomainError):
            status, detail["error"] = exc.status_code, exc.message
        else:
            status, detail["error"] = 409, str(exc)
        if caller is None and ctx.grant_token:
            detail["credential_prefix"] = ctx.grant_token[:12]
        await runtime.audit.write(_entry(caller, dataset_id, provider, status, detail))
        raise
    detail.update(rows=len(result["records"]), bytes=len(orjson.dumps(result["records"])), version=pinned)
    await runtime.audit.write(_entry(caller, dataset_id, provider, 200, detail))
    return result


def _audit_text(value: Any, limit: int = 500) -> str:
    """A parameter as the audit log keeps it: compact JSON text, control characters blanked, cut to `limit`."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return CONTROL_CHARACTERS.sub(" ", text)[:limit]


def _entry(caller: Any, dataset_id: int | None, provider: int | None, status: int,
           detail: dict[str, Any]) -> dict[str, Any]:
    if caller is not None or detail.get("credential_prefix") or detail.get("credential_id"):
        return audit_entry(caller, ACTION, status, detail)
    from catalog.models import utcnow

    return {"kind": "open", "action": ACTION, "status": status, "dataset_id": dataset_id,
            "provider_department_id": provider, "detail": detail, "at": utcnow()}
