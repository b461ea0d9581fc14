"""The sharing (共享) pages: the request form, request lists and details with the review (narrowing) form, grants with
their usage, credentials shown once and a small gateway try-out. Every page calls the sharing service with the
signed-in principal, exactly as the JSON API (sharing/endpoints.py) does, so it never shows what the API would refuse.
"""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from starlette.datastructures import FormData

from catalog import service as catalog_service
from catalog.auth import Principal
from catalog.deps import SessionDep
from catalog.enums import Role
from catalog.errors import CatalogRuleError, DomainError
from catalog.models import Dataset, Department, User
from catalog.web.pages import CHINA, render
from catalog.web.session import check_csrf, web_principal
from sharing import service
from sharing.engine import NULLARY_OPS
from sharing.models import Grant, ShareRequest
from sharing.policy import mask_kind, masked_by_default
from sharing.schemas import DecisionIn, ResubmitIn, RevokeIn, ShareRequestIn, WithdrawIn

router = APIRouter(include_in_schema=False)

DatasetCode = Annotated[str, Path(min_length=1, max_length=64)]
ObjectId = Annotated[int, Path(ge=1, le=2**31 - 1)]
PAGE_SIZE = 20

OP_NAMES = {"eq": "等于", "ne": "不等于", "lt": "小于", "le": "小于等于", "gt": "大于", "ge": "大于等于",
            "in": "属于（多个值用 | 分隔）", "prefix": "以…开头", "is_null": "为空", "not_null": "不为空"}
MASK_NAMES = {"id_number": "证件号码：保留前 6 位和后 4 位", "mobile": "手机号：保留前 3 位和后 4 位",
              "name": "姓名：保留首字", "address": "地址：保留到区/县", "account": "账号：保留后 4 位",
              "generic": "保留首尾各 1 位"}
STAGE_NAMES = {"consumer": "申请方", "provider": "提供方", "steward": "大数据局", "auto": "平台自动"}
ACTION_NAMES = {"submit": "提交申请", "approve": "同意", "reject": "驳回", "return": "退回补充", "resubmit": "补充后重新提交",
                "withdraw": "撤回"}
GRANT_STATUS_NAMES = {"active": "有效", "expired": "已过期", "revoked": "已吊销"}
FIELD_LABELS = {"purpose": "用途", "scenario": "应用场景", "basis": "依据", "fields": "申请字段", "row_filter": "行筛选条件",
                "unmasked_fields": "明文字段", "valid_until": "有效期截止日期", "expected_volume": "预计每日数据量",
                "reason": "理由", "requests_per_minute": "每分钟调用次数", "rows_per_day": "每日行数", "comment": "补充说明",
                "action": "审核结论"}
DONE = {"created": "申请已提交。", "approved": "已同意。", "rejected": "已驳回申请。", "returned": "已退回申请方补充材料。",
        "withdrawn": "申请已撤回。", "resubmitted": "已补充并重新提交。", "revoked": "授权已吊销，下一次调用即失效。",
        "credential_revoked": "凭证已吊销。"}
# 我的申请 · 待我审核 · 待大数据局审核 · 全部: (title, service box, default status filter)
TABS = {"mine": ("我的申请", "mine", None), "review": ("待我审核", "review", service.SUBMITTED),
        "steward": ("待大数据局审核", "review", service.PENDING_STEWARD), "all": ("全部申请", "all", None)}
STATUS_PATTERN = "^(all|submitted|pending_steward|approved|rejected|returned|withdrawn)?$"


async def _form(request: Request) -> FormData:
    return await request.form()


FormDep = Annotated[FormData, Depends(_form)]


class FormProblem(Exception):
    """A form value the page cannot even turn into the API's payload (e.g. a filter row without a field)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field, self.message = field, message


# ---------------------------------------------------------------- helpers
def _login(request: Request, path: str | None = None) -> RedirectResponse:
    target = path or (request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)


def _settings(request: Request):
    return request.app.state.settings


def _names(session) -> tuple[dict[int, str], dict[int, str]]:
    """Department names and people's display names by id."""
    return (dict(session.execute(select(Department.id, Department.name)).all()),
            dict(session.execute(select(User.id, User.display_name)).all()))


def _items(dataset: Dataset) -> list[dict[str, Any]]:
    """The dataset's items as the forms list them: whether the platform masks each by default, and how."""
    out = []
    for item in sorted(dataset.items, key=lambda i: i.position):
        masked = masked_by_default(item)
        out.append({"code": item.code, "name": item.name, "type": item.data_type.value, "masked": masked,
                    "mask": MASK_NAMES.get(mask_kind(item), mask_kind(item)) if masked else ""})
    return out


def _value_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "|".join(_value_text(v) for v in value)
    return str(value)


def _rows_of(conditions: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Stored conditions as editable rows (strings, `in` values joined with |)."""
    return [{"field": c["field"], "op": c["op"], "value": _value_text(c.get("value"))} for c in conditions]


def _with_blank_rows(rows: list[dict[str, str]], blank: int) -> list[dict[str, str]]:
    return [*rows, *({"field": "", "op": "eq", "value": ""} for _ in range(blank))]


def _condition_rows(form: FormData, prefix: str) -> list[dict[str, str]]:
    fields, ops, values = (form.getlist(f"{prefix}_{part}") for part in ("field", "op", "value"))
    rows = []
    for i in range(min(max(len(fields), len(ops), len(values)), 40)):
        field = str(fields[i]).strip() if i < len(fields) else ""
        op = str(ops[i]).strip() if i < len(ops) else "eq"
        value = str(values[i]) if i < len(values) else ""
        if field or value.strip():
            rows.append({"field": field, "op": op or "eq", "value": value})
    return rows


def _filter_payload(rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Rows typed in the form → the API's condition objects; the service types each value to its column."""
    out = []
    for n, row in enumerate(rows, 1):
        if not row["field"]:
            raise FormProblem("row_filter", f"第 {n} 个筛选条件没有选择字段")
        if row["op"] in NULLARY_OPS:
            out.append({"field": row["field"], "op": row["op"], "value": None})
        elif row["op"] == "in":
            values = [v.strip() for v in row["value"].split("|") if v.strip()]
            if not values:
                raise FormProblem("row_filter", f"第 {n} 个筛选条件（{row['field']}）缺少取值")
            out.append({"field": row["field"], "op": "in", "value": values})
        else:
            if not row["value"].strip():
                raise FormProblem("row_filter", f"第 {n} 个筛选条件（{row['field']}）缺少取值")
            out.append({"field": row["field"], "op": row["op"], "value": row["value"].strip()})
    return out


def _optional_int(text: str, field: str) -> int | None:
    text = text.strip().replace(",", "")
    if not text:
        return None
    if not text.isdigit():
        raise FormProblem(field, f"{FIELD_LABELS[field]}：请填写正整数")
    return int(text)


def _pydantic_message(error: dict[str, Any], field: str) -> str:
    kind, ctx = error.get("type", ""), error.get("ctx") or {}
    label = FIELD_LABELS.get(field, field)
    if kind == "missing":
        return f"{label}：必填"
    if kind == "string_too_short":
        return f"{label}：至少填写 {ctx.get('min_length')} 个字"
    if kind == "string_too_long":
        return f"{label}：最多 {ctx.get('max_length')} 个字"
    if kind == "too_short":
        return f"{label}：至少选择 {ctx.get('min_length')} 项"
    if kind == "too_long":
        return f"{label}：最多 {ctx.get('max_length')} 项"
    if kind.startswith("date"):
        return f"{label}：请填写有效日期（年-月-日）"
    if kind.startswith("int"):
        return f"{label}：请填写整数"
    if kind == "greater_than_equal":
        return f"{label}：不能小于 {ctx.get('ge')}"
    if kind == "less_than_equal":
        return f"{label}：不能大于 {ctx.get('le')}"
    if kind == "literal_error":
        return f"{label}：取值不在可选范围内"
    message = str(error.get("msg", ""))
    return f"{label}：{message.removeprefix('Value error, ')}"


def _errors_of(exc: Exception) -> dict[str, list[str]]:
    """Messages by form field ("_" for the form as a whole), from whatever refused the input."""
    out: dict[str, list[str]] = {}
    if isinstance(exc, FormProblem):
        out[exc.field] = [exc.message]
    elif isinstance(exc, ValidationError):
        for error in exc.errors():
            loc = error.get("loc") or ("_",)
            field = str(loc[0])
            out.setdefault(field, []).append(_pydantic_message(error, field))
    elif isinstance(exc, CatalogRuleError):
        for v in exc.violations:
            field = v.field.split(".")[0]
            out.setdefault(field, []).append(v.message.removeprefix(f"{v.field}: ").removeprefix(f"{field}: "))
    elif isinstance(exc, DomainError):
        out["_"] = [exc.message]
    return out


def _status_of(exc: Exception) -> int:
    return exc.status_code if isinstance(exc, DomainError) else 422


def _refusal(exc: Exception) -> bool:
    """Refusals (401/403/404) are not form errors: they get the refusal page and reveal nothing."""
    return isinstance(exc, DomainError) and exc.status_code in (401, 403, 404)


def _cn_date(value: dt.datetime) -> str:
    return value.astimezone(CHINA).strftime("%Y-%m-%d")


def _grant_last_day(grant: Grant) -> dt.date:
    """A grant stops at the start of the day after its validity end date (Beijing time)."""
    return (grant.valid_until.astimezone(CHINA) - dt.timedelta(seconds=1)).date()


# ---------------------------------------------------------------- 1. the request form
def _request_values(form: FormData) -> dict[str, Any]:
    return {"purpose": str(form.get("purpose", "")), "scenario": str(form.get("scenario", "")),
            "basis": str(form.get("basis", "")), "fields": [str(f) for f in form.getlist("fields")],
            "unmasked": [str(f) for f in form.getlist("unmasked_fields")],
            "conditions": _condition_rows(form, "cond"), "valid_until": str(form.get("valid_until", "")).strip(),
            "expected_volume": str(form.get("expected_volume", "")), "comment": str(form.get("comment", ""))}


def _request_payload(values: dict[str, Any], kind: str) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "purpose": values["purpose"].strip(), "scenario": values["scenario"].strip(), "basis": values["basis"].strip(),
        "fields": values["fields"], "row_filter": _filter_payload(values["conditions"]),
        # A plain-text tick on a field that is not asked for is dropped rather than refused.
        "unmasked_fields": [] if kind == "open" else [f for f in values["unmasked"] if f in values["fields"]],
        "expected_volume": _optional_int(values["expected_volume"], "expected_volume")}
    if values["valid_until"]:
        payload["valid_until"] = values["valid_until"]
    return payload


def _request_form(request: Request, me: Principal, dataset: Dataset, kind: str | None, values: dict[str, Any],
                  errors: dict[str, list[str]], status_code: int = 200) -> HTMLResponse:
    values = {**values, "conditions": _with_blank_rows(values["conditions"], 2 if not values["conditions"] else 1)}
    return render(request, "share_request_form.html", principal=me, status_code=status_code, d=dataset, kind=kind,
                  items=_items(dataset), values=values, errors=errors, ops=OP_NAMES, nullary=NULLARY_OPS,
                  today=dt.datetime.now(CHINA).date().isoformat(),
                  max_day=(dt.datetime.now(CHINA).date() + dt.timedelta(days=service.MAX_VALIDITY_DAYS)).isoformat())


@router.get("/catalog/{code}/request", response_class=HTMLResponse)
def request_form(request: Request, code: DatasetCode, session: SessionDep) -> Response:
    me = web_principal(request)
    if me is None:
        return _login(request)
    dataset = catalog_service.get_dataset(session, me, code)
    values = {"purpose": "", "scenario": "", "basis": "", "fields": [], "unmasked": [], "conditions": [],
              "valid_until": (dt.datetime.now(CHINA).date() + dt.timedelta(days=365)).isoformat(),
              "expected_volume": "", "comment": ""}
    try:
        kind = service.request_kind(session, me, dataset)
    except DomainError as exc:
        if _refusal(exc):
            raise
        # 不予共享 (with its legal basis), own data, 无条件开放: said at once, no form to fill in for nothing.
        return _request_form(request, me, dataset, None, values, _errors_of(exc), exc.status_code)
    return _request_form(request, me, dataset, kind, values, {})


@router.post("/catalog/{code}/request", response_class=HTMLResponse)
def request_submit(request: Request, code: DatasetCode, session: SessionDep, form: FormDep) -> Response:
    me = web_principal(request)
    if me is None:
        return _login(request, f"/catalog/{code}/request")
    check_csrf(request, str(form.get("csrf", "")))
    dataset = catalog_service.get_dataset(session, me, code)
    values = _request_values(form)
    kind = "open" if me.is_external else "share"
    try:
        payload = ShareRequestIn(dataset=dataset.code, **_request_payload(values, kind))
        req = service.create_request(session, me, dataset, payload, _settings(request))
    except (DomainError, ValidationError, FormProblem) as exc:
        session.rollback()
        if _refusal(exc):
            raise
        blocked = isinstance(exc, CatalogRuleError) and any(v.field == "dataset" for v in exc.violations)
        return _request_form(request, me, dataset, None if blocked else kind, values, _errors_of(exc),
                             _status_of(exc))
    session.commit()
    return RedirectResponse(f"/requests/{req.id}?done=created", status_code=303)


# ---------------------------------------------------------------- 2. request lists
def _tabs_for(me: Principal) -> list[str]:
    tabs = ["mine"]
    if me.has(Role.publisher) or me.is_steward:
        tabs.append("review")
    if me.is_steward:
        tabs += ["steward", "all"]
    return tabs


def _stage_text(req: ShareRequest, depts: dict[int, str]) -> str:
    if req.status == service.SUBMITTED:
        return f"提供方审核（{depts.get(req.provider_department_id, '')}）"
    if req.status == service.PENDING_STEWARD:
        return "大数据局审核"
    if req.status == service.RETURNED:
        return "申请方补充材料"
    return "已结束"


@router.get("/requests", response_class=HTMLResponse)
def request_list(request: Request, session: SessionDep,
                 tab: Annotated[str, Query(pattern="^(mine|review|steward|all)$")] = "mine",
                 status: Annotated[str, Query(pattern=STATUS_PATTERN)] = "",
                 page: Annotated[int, Query(ge=1, le=10_000)] = 1) -> Response:
    me = web_principal(request)
    if me is None:
        return _login(request)
    title, box, default_status = TABS[tab]
    if tab == "steward":
        status = ""  # this tab is the steward's queue: one status only
    chosen = None if status == "all" else (status or default_status)
    total, rows = service.list_requests(session, me, box, chosen, (page - 1) * PAGE_SIZE, PAGE_SIZE)
    depts, people = _names(session)
    now = service.utcnow()

    def link(**change: Any) -> str:
        params = {"tab": tab, "status": status, "page": page, **change}
        return "/requests?" + urlencode({k: v for k, v in params.items() if v and not (k == "page" and v == 1)})

    return render(request, "share_requests.html", principal=me, tab=tab, title=title, tabs=_tabs_for(me),
                  tab_names={k: v[0] for k, v in TABS.items()}, status=status, chosen=chosen, total=total,
                  rows=rows, depts=depts, people=people, status_names=service.STATUS_NAMES,
                  stage=lambda r: _stage_text(r, depts),
                  overdue=lambda r: r.status in service.PENDING and r.deadline < now,
                  page=page, pages=max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE), link=link)


# ---------------------------------------------------------------- 3. request detail, decisions
def _decision_defaults(req: ShareRequest) -> dict[str, Any]:
    return {"fields": list(req.approved_fields), "unmasked": list(req.approved_unmasked),
            "conditions": _rows_of(req.approved_filter), "valid_until": req.approved_valid_until.isoformat(),
            "reason": "", "requests_per_minute": "", "rows_per_day": ""}


def _resubmit_defaults(req: ShareRequest) -> dict[str, Any]:
    return {"purpose": req.purpose, "scenario": req.scenario, "basis": req.basis, "fields": list(req.fields),
            "unmasked": list(req.unmasked_fields), "conditions": _rows_of(req.row_filter),
            "valid_until": req.valid_until.isoformat(),
            "expected_volume": "" if req.expected_volume is None else str(req.expected_volume), "comment": ""}


def _condition_text(c: dict[str, Any], names: dict[str, str]) -> str:
    op = c["op"]
    field = f"{names.get(c['field'], c['field'])}（{c['field']}）"
    if op in NULLARY_OPS:
        return f"{field} {OP_NAMES[op]}"
    if op == "in":
        return f"{field} 属于 {'、'.join(_value_text(v) for v in c['value'])}"
    return f"{field} {OP_NAMES.get(op, op)} {_value_text(c.get('value'))}"


def _detail_page(request: Request, session, me: Principal, req: ShareRequest, status_code: int = 200,
                 done: str = "", decision: dict[str, Any] | None = None, decision_errors: dict | None = None,
                 withdraw_errors: dict | None = None, withdraw_reason: str = "",
                 resubmit: dict[str, Any] | None = None, resubmit_errors: dict | None = None) -> HTMLResponse:
    depts, people = _names(session)
    items = _items(req.dataset)
    item_names = {i["code"]: i["name"] for i in items}
    roles = service.request_roles(me, req)
    stage = service.deciding_stage(me, req)
    decision = decision or _decision_defaults(req)
    decision = {**decision, "conditions": _with_blank_rows(decision["conditions"], 1)}
    resubmit_values = None
    if "consumer" in roles and req.status == service.RETURNED:
        resubmit_values = resubmit or _resubmit_defaults(req)
        resubmit_values = {**resubmit_values, "conditions": _with_blank_rows(resubmit_values["conditions"], 1)}
    today = dt.datetime.now(CHINA).date()
    return render(
        request, "share_request_detail.html", principal=me, status_code=status_code, r=req, done=DONE.get(done, ""),
        depts=depts, people=people, items=items, item_names=item_names, mask_of={i["code"]: i["mask"] for i in items},
        status_names=service.STATUS_NAMES, stage_names=STAGE_NAMES, action_names=ACTION_NAMES,
        stage_text=_stage_text(req, depts), cond_text=lambda c: _condition_text(c, item_names),
        overdue=req.status in service.PENDING and req.deadline < service.utcnow(), grant=service.grant_of(session, req.id),
        deciding=stage, decision=decision, decision_errors=decision_errors or {},
        can_withdraw="consumer" in roles and req.status in (*service.PENDING, service.RETURNED),
        withdraw_errors=withdraw_errors or {}, withdraw_reason=withdraw_reason,
        resubmit=resubmit_values, resubmit_errors=resubmit_errors or {}, ops=OP_NAMES, nullary=NULLARY_OPS,
        today=today.isoformat(), max_day=(today + dt.timedelta(days=service.MAX_VALIDITY_DAYS)).isoformat())


@router.get("/requests/{request_id}", response_class=HTMLResponse)
def request_detail(request: Request, request_id: ObjectId, session: SessionDep,
                   done: Annotated[str, Query(max_length=32)] = "") -> Response:
    me = web_principal(request)
    if me is None:
        return _login(request)
    req = service.get_request(session, me, request_id)
    return _detail_page(request, session, me, req, done=done)


@router.post("/requests/{request_id}/decide", response_class=HTMLResponse)
def request_decide(request: Request, request_id: ObjectId, session: SessionDep, form: FormDep) -> Response:
    me = web_principal(request)
    if me is None:
        return _login(request, f"/requests/{request_id}")
    check_csrf(request, str(form.get("csrf", "")))
    req = service.get_request(session, me, request_id)
    action = str(form.get("action", ""))
    values = {"fields": [str(f) for f in form.getlist("fields")],
              "unmasked": [str(f) for f in form.getlist("unmasked_fields")],
              "conditions": _condition_rows(form, "cond"), "valid_until": str(form.get("valid_until", "")).strip(),
              "reason": str(form.get("reason", "")), "requests_per_minute": str(form.get("requests_per_minute", "")),
              "rows_per_day": str(form.get("rows_per_day", ""))}
    try:
        if action == "approve":
            body: dict[str, Any] = {
                "action": "approve", "reason": values["reason"], "fields": values["fields"],
                "row_filter": _filter_payload(values["conditions"]),
                # Dropping a field drops its plain text with it: that is narrowing, not an error.
                "unmasked_fields": [f for f in values["unmasked"] if f in values["fields"]],
                "valid_until": values["valid_until"] or None,
                "requests_per_minute": _optional_int(values["requests_per_minute"], "requests_per_minute"),
                "rows_per_day": _optional_int(values["rows_per_day"], "rows_per_day")}
        else:
            body = {"action": action, "reason": values["reason"]}
        service.decide(session, me, request_id, DecisionIn(**body), _settings(request))
    except (DomainError, ValidationError, FormProblem) as exc:
        session.rollback()
        if _refusal(exc):
            raise
        req = service.get_request(session, me, request_id)
        return _detail_page(request, session, me, req, _status_of(exc), decision=values,
                            decision_errors=_errors_of(exc))
    session.commit()
    done = {"approve": "approved", "reject": "rejected", "return": "returned"}[action]
    return RedirectResponse(f"/requests/{req.id}?done={done}", status_code=303)


@router.post("/requests/{request_id}/withdraw", response_class=HTMLResponse)
def request_withdraw(request: Request, request_id: ObjectId, session: SessionDep, form: FormDep) -> Response:
    me = web_principal(request)
    if me is None:
        return _login(request, f"/requests/{request_id}")
    check_csrf(request, str(form.get("csrf", "")))
    reason = str(form.get("reason", ""))
    try:
        service.withdraw(session, me, request_id, WithdrawIn(reason=reason.strip()).reason)
    except (DomainError, ValidationError) as exc:
        session.rollback()
        if _refusal(exc):
            raise
        req = service.get_request(session, me, request_id)
        return _detail_page(request, session, me, req, _status_of(exc), withdraw_errors=_errors_of(exc),
                            withdraw_reason=reason)
    session.commit()
    return RedirectResponse(f"/requests/{request_id}?done=withdrawn", status_code=303)


@router.post("/requests/{request_id}/resubmit", response_class=HTMLResponse)
def request_resubmit(request: Request, request_id: ObjectId, session: SessionDep, form: FormDep) -> Response:
    me = web_principal(request)
    if me is None:
        return _login(request, f"/requests/{request_id}")
    check_csrf(request, str(form.get("csrf", "")))
    req = service.get_request(session, me, request_id)
    values = _request_values(form)
    try:
        payload = _request_payload(values, req.kind)
        change = ResubmitIn(**payload, comment=values["comment"].strip())
        service.resubmit(session, me, request_id, change, _settings(request))
    except (DomainError, ValidationError, FormProblem) as exc:
        session.rollback()
        if _refusal(exc):
            raise
        req = service.get_request(session, me, request_id)
        return _detail_page(request, session, me, req, _status_of(exc), resubmit=values,
                            resubmit_errors=_errors_of(exc))
    session.commit()
    return RedirectResponse(f"/requests/{request_id}?done=resubmitted", status_code=303)


# ---------------------------------------------------------------- 4. grants
@router.get("/grants", response_class=HTMLResponse)
def grant_list(request: Request, session: SessionDep, page: Annotated[int, Query(ge=1, le=10_000)] = 1) -> Response:
    me = web_principal(request)
    if me is None:
        return _login(request)
    total, rows = service.list_grants(session, me, (page - 1) * PAGE_SIZE, PAGE_SIZE)
    depts, _ = _names(session)
    return render(request, "grants.html", principal=me, rows=rows, total=total, depts=depts,
                  status_of=service.grant_status, status_names=GRANT_STATUS_NAMES, last_day=_grant_last_day,
                  roles_of=lambda g: service.grant_roles(me, g), page=page,
                  pages=max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE))


# ---------------------------------------------------------------- 5. a grant: scope, usage, credentials
def _grant_page(request: Request, session, me: Principal, grant: Grant, status_code: int = 200,
                done: str = "", revoke_errors: dict | None = None, revoke_reason: str = "",
                credential_errors: dict | None = None) -> HTMLResponse:
    depts, people = _names(session)
    items = _items(grant.dataset)
    item_names = {i["code"]: i["name"] for i in items}
    usage = None if me.is_external else service.grant_usage(session, me, grant.id)
    return render(
        request, "grant_detail.html", principal=me, status_code=status_code, g=grant, done=DONE.get(done, ""),
        depts=depts, people=people, item_names=item_names, masked=service.masked_fields(grant), mask_names=MASK_NAMES,
        cond_text=lambda c: _condition_text(c, item_names), state=service.grant_status(grant),
        status_names=GRANT_STATUS_NAMES, last_day=_grant_last_day(grant), roles=service.grant_roles(me, grant),
        credentials=service.list_credentials(session, me, grant.id), usage=usage,
        revoke_errors=revoke_errors or {}, revoke_reason=revoke_reason, credential_errors=credential_errors or {},
        gateway_path=f"/gateway/v1/datasets/{grant.dataset.code}/rows")


@router.get("/grants/{grant_id}", response_class=HTMLResponse)
def grant_detail(request: Request, grant_id: ObjectId, session: SessionDep,
                 done: Annotated[str, Query(max_length=32)] = "") -> Response:
    me = web_principal(request)
    if me is None:
        return _login(request)
    grant = service.get_grant(session, me, grant_id)
    return _grant_page(request, session, me, grant, done=done)


@router.post("/grants/{grant_id}/credentials", response_class=HTMLResponse)
def credential_issue(request: Request, grant_id: ObjectId, session: SessionDep, form: FormDep) -> Response:
    me = web_principal(request)
    if me is None:
        return _login(request, f"/grants/{grant_id}")
    check_csrf(request, str(form.get("csrf", "")))
    try:
        cred, secret = service.issue_credential(session, me, grant_id, _settings(request))
    except DomainError as exc:
        session.rollback()
        if _refusal(exc):
            raise
        grant = service.get_grant(session, me, grant_id)
        return _grant_page(request, session, me, grant, exc.status_code, credential_errors=_errors_of(exc))
    session.commit()
    grant = service.get_grant(session, me, grant_id)
    base = str(request.base_url).rstrip("/")
    response = render(request, "grant_credential.html", principal=me, g=grant, cred=cred, secret=secret,
                      gateway_url=f"{base}/gateway/v1/datasets/{grant.dataset.code}/rows",
                      gateway_path=f"/gateway/v1/datasets/{grant.dataset.code}/rows")
    # Shown once: no cache (browser, proxy) may keep a copy of this page.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


@router.post("/grants/{grant_id}/credentials/{credential_id}/revoke")
def credential_revoke(request: Request, grant_id: ObjectId, credential_id: ObjectId, session: SessionDep,
                      form: FormDep) -> Response:
    me = web_principal(request)
    if me is None:
        return _login(request, f"/grants/{grant_id}")
    check_csrf(request, str(form.get("csrf", "")))
    service.revoke_credential(session, me, grant_id, credential_id)
    session.commit()
    return RedirectResponse(f"/grants/{grant_id}?done=credential_revoked", status_code=303)


@router.post("/grants/{grant_id}/revoke", response_class=HTMLResponse)
def grant_revoke(request: Request, grant_id: ObjectId, session: SessionDep, form: FormDep) -> Response:
    me = web_principal(request)
    if me is None:
        return _login(request, f"/grants/{grant_id}")
    check_csrf(request, str(form.get("csrf", "")))
    reason = str(form.get("reason", ""))
    try:
        service.revoke_grant(session, me, grant_id, RevokeIn(reason=reason.strip()).reason)
    except (DomainError, ValidationError) as exc:
        session.rollback()
        if _refusal(exc):
            raise
        grant = service.get_grant(session, me, grant_id)
        return _grant_page(request, session, me, grant, _status_of(exc), revoke_errors=_errors_of(exc),
                           revoke_reason=reason)
    session.commit()
    return RedirectResponse(f"/grants/{grant_id}?done=revoked", status_code=303)
