"""数据提供方 pages: register (编目) and edit a dataset with its data items, and deliver data (归集) by upload.

Thin like the API routers: the forms build the same request models (DatasetCreate / DatasetUpdate) and call the same
service functions with the signed-in principal, so a page allows exactly what the API allows. A refused form is shown
again with what was typed and each message next to the field or item row it concerns.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select

from catalog import collection, repository, service
from catalog.auth import Principal
from catalog.collection import (
    TYPE_NAMES,
    CollectionRejected,
    Delivery,
    DeliveryTooLarge,
)
from catalog.deps import SearchDep, SessionDep
from catalog.enums import (
    BaseLibrary,
    Category,
    DatasetStatus,
    DataType,
    ItemSource,
    NationalLevel,
    OpenType,
    SecurityGrade,
    ShareMethod,
    ShareType,
    UpdateCycle,
)
from catalog.errors import (
    AuthoritativeSourceConflict,
    CatalogRuleError,
    Conflict,
    DomainError,
    NotFound,
)
from catalog.federation.models import refuse_local_change
from catalog.models import (
    CollectionRun,
    Dataset,
    DatasetVersion,
    Department,
    InventoryEntry,
    User,
)
from catalog.permissions import check_create_dataset, check_update_dataset
from catalog.schemas import DatasetCreate, DatasetFields, DatasetUpdate
from catalog.storage import storage_for
from catalog.web.pages import error_page, render
from catalog.web.session import check_csrf, web_principal

router = APIRouter(include_in_schema=False)

# ---------------------------------------------------------------- the dataset form: fields and choices
TEXT_FIELDS = ("name", "summary", "topic", "contact_name", "contact_phone", "share_condition", "open_condition")
CHOICE_FIELDS = ("category", "base_library", "share_type", "share_method", "open_type", "update_cycle",
                 "security_grade", "national_level")
LIST_FIELDS = ("keywords", "related")
FORM_FIELDS = ("code", "department", *TEXT_FIELDS, *CHOICE_FIELDS, *LIST_FIELDS, "release_date")
ITEM_TEXT = ("code", "name", "element", "element_version", "length", "source", "reference")
ITEM_FLAGS = ("required", "is_key")
BLANK_ROWS = 3
MAX_ROWS = 600  # the API takes at most 500 items; anything beyond is not a real form

GRADE_NAMES = {"L1": "L1 不敏感", "L2": "L2 低敏感", "L3": "L3 较敏感", "L4": "L4 敏感"}
SOURCE_NAMES = {ItemSource.authoritative.value: "权威来源", ItemSource.reference.value: "引用"}
CHOICES = {
    "category": [(c.value, c.value) for c in Category],
    "base_library": [("", "（非基础库不填）")] + [(b.value, b.value) for b in BaseLibrary],
    "share_type": [(s.value, s.value) for s in ShareType],
    "share_method": [(s.value, s.value) for s in ShareMethod],
    "open_type": [(o.value, o.value) for o in OpenType],
    "update_cycle": [(u.value, u.value) for u in UpdateCycle],
    "security_grade": [(g.value, GRADE_NAMES[g.value]) for g in SecurityGrade],
    "national_level": [(n.value, n.value) for n in NationalLevel],
}
DEFAULTS = {"category": Category.topic.value, "share_type": ShareType.conditional.value,
            "share_method": ShareMethod.api.value, "open_type": OpenType.closed.value,
            "update_cycle": UpdateCycle.monthly.value, "security_grade": SecurityGrade.L2.value,
            "national_level": NationalLevel.general.value}
LABELS = {
    "code": "资源代码", "department": "提供方部门", "name": "资源名称", "summary": "资源摘要", "keywords": "关键词",
    "category": "资源分类", "base_library": "所属基础库", "topic": "主题", "contact_name": "联系人",
    "contact_phone": "联系电话", "share_type": "共享类型", "share_condition": "共享条件", "share_method": "共享方式",
    "open_type": "开放类型", "open_condition": "开放条件", "update_cycle": "更新周期", "security_grade": "安全分级",
    "national_level": "国家数据分级", "release_date": "发布日期", "related": "相关资源", "items": "数据项",
}
ITEM_LABELS = {"code": "数据项代码", "name": "数据项名称", "element": "数据元标准", "element_version": "标准版本",
               "length": "长度", "required": "必填", "is_key": "主键", "source": "来源", "reference": "权威资源代码"}
PATTERN_HINTS = {
    ("items", "code"): "以英文字母开头，只含字母、数字和下划线（最多 64 位），如 sfzhm",
    ("items", "element"): "请填写标准库中的数据元标识符，如 DE0101001（可从候选列表选择）",
    ("items", "reference"): "资源代码格式如 GAJ-00001",
    ("code",): "资源代码格式为“部门代码-5 位序号”，如 GAJ-00012",
    ("department",): "部门代码格式如 GAJ",
    ("contact_phone",): "联系电话只能包含数字、+、- 和空格（3–32 位）",
    ("related",): "资源代码格式如 GAJ-00001",
}
_SPLIT = re.compile(r"[,，、;；\s]+")
_ROW_KEY = re.compile(r"^items-(\d{1,3})-([a-z_]+)$")


def _login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse("/login?next=" + quote(target, safe="/"), status_code=303)


def _blank_row() -> dict[str, Any]:
    return {**{c: "" for c in ITEM_TEXT}, "source": ItemSource.authoritative.value, "required": False,
            "is_key": False}


def _row_is_blank(row: dict[str, Any]) -> bool:
    return not any(str(row.get(c) or "").strip() for c in ("code", "name", "element", "length", "reference"))


def _read_form(form) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """What was typed, as strings (kept for re-display), and the item rows that are not blank, in form order."""
    values = {name: str(form.get(name) or "") for name in FORM_FIELDS}
    rows: dict[int, dict[str, Any]] = {}
    for key in form:
        m = _ROW_KEY.match(key)
        if m and int(m.group(1)) < MAX_ROWS and m.group(2) in (*ITEM_TEXT, *ITEM_FLAGS):
            row = rows.setdefault(int(m.group(1)), {**_blank_row(), "source": ""})
            row[m.group(2)] = True if m.group(2) in ITEM_FLAGS else str(form.get(key) or "")
    ordered = [rows[i] for i in sorted(rows)]
    for row in ordered:
        row["source"] = row["source"] or ItemSource.authoritative.value
    return values, [r for r in ordered if not _row_is_blank(r)]


def _standards(session) -> list:
    """The latest version of every data element (the list the API's GET /standards pages through)."""
    _, rows = repository.list_standards(session, None, 0, 100_000)
    return rows


def _element_identifier(text: str, by_name: dict[str, str]) -> str:
    """Accept the identifier, "identifier name" (as a datalist shows it) or the element's exact name."""
    text = text.strip()
    if not text:
        return text
    return by_name.get(text) or text.split()[0]


def _body(values: dict[str, str], rows: list[dict[str, Any]], by_name: dict[str, str]) -> dict[str, Any]:
    """The request body the API would receive, from the typed strings. Blank means "not given"."""
    body: dict[str, Any] = {"summary": values["summary"].strip()}
    for name in TEXT_FIELDS + CHOICE_FIELDS:
        if name != "summary" and values[name].strip():
            body[name] = values[name].strip()
    for name in LIST_FIELDS:
        words = [w for w in _SPLIT.split(values[name]) if w]
        if words:
            body[name] = words
    if values["release_date"].strip():
        body["release_date"] = values["release_date"].strip()
    items = []
    for row in rows:
        item: dict[str, Any] = {"code": row["code"].strip(), "name": row["name"].strip(),
                                "element": _element_identifier(row["element"], by_name),
                                "required": bool(row["required"]), "is_key": bool(row["is_key"]),
                                "source": row["source"]}
        for optional in ("element_version", "length", "reference"):
            if str(row[optional]).strip():
                item[optional] = str(row[optional]).strip()
        items.append(item)
    body["items"] = items
    return body


# ---------------------------------------------------------------- errors, placed where they belong
class FormErrors:
    def __init__(self) -> None:
        self.fields: dict[str, list[str]] = {}
        self.rows: dict[int, dict[str, list[str]]] = {}
        self.general: list[str] = []
        self.conflict: dict[str, Any] | None = None  # 一数一源: {"row": i, "source": {...}}

    def add(self, path: tuple, message: str, shown: set[str]) -> None:
        if path and path[0] == "items" and len(path) >= 2 and isinstance(path[1], int):
            column = path[2] if len(path) >= 3 and path[2] in ITEM_LABELS else "code"
            self.rows.setdefault(path[1], {}).setdefault(column, []).append(message)
        elif path and path[0] in shown:
            self.fields.setdefault(path[0], []).append(message)
        else:
            self.general.append(message)

    def count(self) -> int:
        return (sum(len(v) for v in self.fields.values()) + len(self.general)
                + sum(len(m) for cols in self.rows.values() for m in cols.values()))

    def __bool__(self) -> bool:
        return self.count() > 0


def _loc(path: str | tuple) -> tuple:
    parts = path.split(".") if isinstance(path, str) else list(path)
    return tuple(int(p) if isinstance(p, str) and p.isdigit() else p for p in parts)


def _pydantic_message(err: dict[str, Any]) -> str:
    kind, ctx, loc = err["type"], err.get("ctx") or {}, tuple(err["loc"])
    pattern_key = ("items", loc[-1]) if loc and loc[0] == "items" else (loc[0],) if loc else ()
    if kind == "missing":
        return "此项必填"
    if kind == "string_too_short":
        return "此项必填" if ctx.get("min_length") == 1 else f"至少 {ctx.get('min_length')} 个字符"
    if kind == "string_too_long":
        return f"最多 {ctx.get('max_length')} 个字符"
    if kind == "string_pattern_mismatch":
        return PATTERN_HINTS.get(pattern_key, "格式不正确")
    if kind == "enum":
        return "请从列表中选择：" + str(ctx.get("expected", "")).replace("'", "")
    if kind in ("int_parsing", "int_from_float", "int_type"):
        return "须为整数"
    if kind == "greater_than_equal":
        return f"不能小于 {ctx.get('ge')}"
    if kind == "less_than_equal":
        return f"不能大于 {ctx.get('le')}"
    if kind.startswith("date"):
        return "日期格式应为 YYYY-MM-DD"
    if kind == "too_short" and loc == ("items",):
        return "至少登记一个数据项"
    if kind == "too_long":
        return f"最多 {ctx.get('max_length')} 项"
    if kind == "value_error":
        return err["msg"].removeprefix("Value error, ")
    return err["msg"]


def _collect_errors(exc: Exception, shown: set[str]) -> tuple[FormErrors, int]:
    errors = FormErrors()
    if isinstance(exc, ValidationError):
        for err in exc.errors():
            errors.add(_loc(err["loc"]), _pydantic_message(err), shown)
        return errors, 422
    if isinstance(exc, CatalogRuleError):
        for v in exc.violations:
            errors.add(_loc(v.field), v.message, shown)
        return errors, 422
    if isinstance(exc, AuthoritativeSourceConflict):
        path = _loc(exc.extra.get("field", "items"))
        errors.add(path, exc.message, shown)
        if len(path) >= 2 and isinstance(path[1], int):
            errors.conflict = {"row": path[1], "source": exc.extra.get("existing_source") or {}}
        return errors, 409
    assert isinstance(exc, DomainError)
    field = exc.extra.get("field")
    errors.add(_loc(field) if field else (), exc.message, shown)
    return errors, exc.status_code


# ---------------------------------------------------------------- rendering the form
def _values_of(dataset: Dataset) -> tuple[dict[str, str], list[dict[str, Any]]]:
    values = {name: "" for name in FORM_FIELDS}
    for name in TEXT_FIELDS + CHOICE_FIELDS:
        value = getattr(dataset, name)
        values[name] = "" if value is None else str(getattr(value, "value", value))
    values["keywords"] = "、".join(dataset.keywords or [])
    values["related"] = " ".join(dataset.related or [])
    values["release_date"] = dataset.release_date.isoformat() if dataset.release_date else ""
    values["code"] = dataset.code
    values["department"] = dataset.department.code
    rows = []
    for item in sorted(dataset.items, key=lambda i: i.position):
        ref = item.reference_item
        rows.append({"code": item.code, "name": item.name, "element": item.data_element.identifier,
                     "element_version": item.data_element.version, "length": "" if item.length is None else str(item.length),
                     "required": item.required, "is_key": item.is_key, "source": item.source.value,
                     "reference": ref.dataset.code if ref is not None and ref.dataset_id != dataset.id else ""})
    return values, rows


def _render_form(request: Request, session, me: Principal, *, mode: str, values: dict[str, str],
                 rows: list[dict[str, Any]], dataset: Dataset | None = None, errors: FormErrors | None = None,
                 status_code: int = 200, notice: str | None = None) -> HTMLResponse:
    standards = _standards(session)
    department = session.get(Department, me.department_id)
    inventory = []
    if mode == "new":
        catalogued = select(Dataset.code)
        inventory = session.execute(
            select(InventoryEntry).where(InventoryEntry.department_id == me.department_id,
                                         InventoryEntry.code.not_in(catalogued)).order_by(InventoryEntry.code)
        ).scalars().all()
    departments = (session.execute(select(Department).order_by(Department.code)).scalars().all()
                   if me.is_steward else [])
    return render(request, "dataset_form.html", principal=me, status_code=status_code, mode=mode, d=dataset,
                  values={**{k: v for k, v in DEFAULTS.items()}, **{k: v for k, v in values.items() if v or k not in DEFAULTS}},
                  rows=[*rows, *(_blank_row() for _ in range(BLANK_ROWS))], errors=errors or FormErrors(),
                  standards=standards, choices=CHOICES, labels=LABELS, item_labels=ITEM_LABELS,
                  source_names=SOURCE_NAMES, department=department, departments=departments, inventory=inventory,
                  notice=notice, action=f"/catalog/{dataset.code}/edit" if dataset is not None else "/datasets/new")


def _shown_fields(mode: str, me: Principal) -> set[str]:
    shown = set(TEXT_FIELDS + CHOICE_FIELDS + LIST_FIELDS) | {"release_date", "items"}
    if mode == "new":
        shown.add("code")
    if me.is_steward:
        shown.add("department")
    return shown


def _switch_to_reference(form, rows: list[dict[str, Any]]) -> str | None:
    """The no-JS path of "可改为引用该权威来源": the row becomes a reference; nothing is saved yet."""
    asked = str(form.get("switch_reference") or "")
    m = re.fullmatch(r"(\d{1,3}):([A-Z][A-Z0-9]{1,15}-[0-9]{5})", asked)
    if not m or int(m.group(1)) >= len(rows):
        return None
    row = rows[int(m.group(1))]
    row["source"], row["reference"] = ItemSource.reference.value, m.group(2)
    return f"已将数据项「{row['name'] or row['code']}」改为引用 {m.group(2)} 的权威数据，请检查后再提交"


# ---------------------------------------------------------------- 登记资源
@router.get("/datasets/new", response_class=HTMLResponse)
def dataset_new(request: Request, session: SessionDep) -> Response:
    me = web_principal(request)
    if me is None:
        return _login_redirect(request)
    try:
        check_create_dataset(me, session.get(Department, me.department_id))
    except DomainError as exc:
        return error_page(request, exc)
    values = {name: "" for name in FORM_FIELDS}
    department = session.get(Department, me.department_id)
    values["department"] = department.code
    values["contact_name"] = ""
    return _render_form(request, session, me, mode="new", values=values, rows=[])


@router.post("/datasets/new", response_class=HTMLResponse)
async def dataset_new_submit(request: Request, session: SessionDep, search: SearchDep) -> Response:
    form = await request.form(max_fields=MAX_ROWS * 10 + 100)
    return await run_in_threadpool(_create, request, session, search, form)


def _create(request: Request, session, search, form) -> Response:
    check_csrf(request, str(form.get("csrf") or ""))
    me = web_principal(request)
    if me is None:
        return _login_redirect(request)
    check_create_dataset(me, session.get(Department, me.department_id))  # refused before anything is read
    values, rows = _read_form(form)
    notice = _switch_to_reference(form, rows)
    if notice:
        return _render_form(request, session, me, mode="new", values=values, rows=rows, notice=notice)
    by_name = {e.name: e.identifier for e in _standards(session)}
    body = _body(values, rows, by_name)
    if values["code"].strip():
        body["code"] = values["code"].strip()
    if me.is_steward and values["department"].strip():
        body["department"] = values["department"].strip()
    try:
        dataset = service.create_dataset(session, search, me, DatasetCreate.model_validate(body))
        session.commit()
    except (ValidationError, CatalogRuleError, Conflict, NotFound) as exc:
        session.rollback()
        errors, status = _collect_errors(exc, _shown_fields("new", me))
        return _render_form(request, session, me, mode="new", values=values, rows=rows, errors=errors,
                            status_code=status)
    return RedirectResponse(f"/catalog/{dataset.code}?done=created", status_code=303)


# ---------------------------------------------------------------- 修改资源
def _editable(session, me: Principal, code: str) -> Dataset:
    """The same refusals as PATCH /api/v1/datasets/{code}, in the same order."""
    dataset = service.find_dataset(session, code)
    check_update_dataset(me, dataset)
    refuse_local_change(session, dataset, "修改")
    if dataset.status == DatasetStatus.withdrawn:
        raise Conflict(f"资源 {code} 已撤销，不能修改")
    return dataset


@router.get("/catalog/{code}/edit", response_class=HTMLResponse)
def dataset_edit(request: Request, code: str, session: SessionDep) -> Response:
    me = web_principal(request)
    if me is None:
        return _login_redirect(request)
    try:
        dataset = _editable(session, me, code)
    except DomainError as exc:
        return error_page(request, exc)
    values, rows = _values_of(dataset)
    return _render_form(request, session, me, mode="edit", values=values, rows=rows, dataset=dataset)


@router.post("/catalog/{code}/edit", response_class=HTMLResponse)
async def dataset_edit_submit(request: Request, code: str, session: SessionDep, search: SearchDep) -> Response:
    form = await request.form(max_fields=MAX_ROWS * 10 + 100)
    return await run_in_threadpool(_update, request, code, session, search, form)


def _update(request: Request, code: str, session, search, form) -> Response:
    check_csrf(request, str(form.get("csrf") or ""))
    me = web_principal(request)
    if me is None:
        return _login_redirect(request)
    try:
        dataset = _editable(session, me, code)
    except DomainError as exc:
        return error_page(request, exc)
    values, rows = _read_form(form)
    values["code"] = dataset.code
    if not me.is_steward:
        values["department"] = dataset.department.code
    notice = _switch_to_reference(form, rows)
    if notice:
        return _render_form(request, session, me, mode="edit", values=values, rows=rows, dataset=dataset,
                            notice=notice)
    by_name = {e.name: e.identifier for e in _standards(session)}
    body = _body(values, rows, by_name)
    try:
        # DatasetCreate names what a dataset must have (a blank name is "必填", not a cleared column); the change
        # itself is a PATCH that sets every field of the form and replaces the items as a whole.
        checked = DatasetCreate.model_validate(body)
        change = checked.model_dump(include=set(DatasetFields.model_fields))
        if me.is_steward and values["department"].strip():
            change["department"] = values["department"].strip()
        dataset = service.update_dataset(session, search, me, code, DatasetUpdate.model_validate(change))
        session.commit()
    except (ValidationError, CatalogRuleError, Conflict, NotFound) as exc:
        session.rollback()
        errors, status = _collect_errors(exc, _shown_fields("edit", me))
        return _render_form(request, session, me, mode="edit", values=values, rows=rows,
                            dataset=service.find_dataset(session, code), errors=errors, status_code=status)
    return RedirectResponse(f"/catalog/{dataset.code}?done=updated", status_code=303)


# ---------------------------------------------------------------- 归集数据
def _deliverable(session, me: Principal, code: str) -> Dataset:
    """The same refusals as POST /api/v1/datasets/{code}/collections: the provider department or the steward."""
    dataset = service.find_dataset(session, code)
    collection.check_deliver(me, dataset)
    return dataset


def _deliver_page(request: Request, session, me: Principal, dataset: Dataset, *, status_code: int = 200,
                  error: str | None = None, missing: list[str] | None = None, run_id: int | None = None,
                  filename: str | None = None) -> HTMLResponse:
    items = sorted(dataset.items, key=lambda i: i.position)
    runs = session.execute(select(CollectionRun).where(CollectionRun.dataset_id == dataset.id)
                           .order_by(CollectionRun.id.desc()).limit(10)).scalars().all()
    version_numbers = dict(session.execute(select(DatasetVersion.id, DatasetVersion.version)
                                           .where(DatasetVersion.dataset_id == dataset.id)).all())
    user_ids = {r.delivered_by_id for r in runs if r.delivered_by_id}
    names = dict(session.execute(select(User.id, User.display_name).where(User.id.in_(user_ids))).all()) if user_ids else {}
    current = collection.latest_version(session, dataset.id)
    result = _result(session, me, dataset, run_id) if run_id else None
    settings = request.app.state.settings
    return render(request, "deliver.html", principal=me, status_code=status_code, d=dataset, items=items, runs=runs,
                  version_numbers=version_numbers, names=names, current=current, result=result, error=error,
                  missing=set(missing or []), type_names={**TYPE_NAMES, DataType.string: "文本"},
                  max_size=_human_size(settings.max_upload_bytes), filename=filename,
                  withdrawn=dataset.status == DatasetStatus.withdrawn)


def _human_size(size: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} 字节"


def _result(session, me: Principal, dataset: Dataset, run_id: int) -> dict[str, Any] | None:
    """What one delivery produced: the version, and for a new version its quality check and tickets."""
    from quality.models import ProblemTicket, QualityRun
    from quality.tickets import STATUS_NAMES, can_see_ticket

    run = session.get(CollectionRun, run_id)
    if run is None or run.dataset_id != dataset.id:
        return None
    version = session.get(DatasetVersion, run.version_id) if run.version_id else None
    check = None
    tickets: list = []
    if run.status == "published" and version is not None:
        check = session.execute(select(QualityRun).where(QualityRun.version_id == version.id)
                                .order_by(QualityRun.id.desc()).limit(1)).scalar_one_or_none()
    if check is not None:
        tickets = [t for t in session.execute(select(ProblemTicket).where(ProblemTicket.latest_run_id == check.id)
                                              .order_by(ProblemTicket.id)).scalars() if can_see_ticket(me, t)]
    return {"run": run, "version": version, "check": check, "tickets": tickets, "ticket_status": STATUS_NAMES,
            "failing_rules": sum(1 for r in check.rule_results if r.failing) if check else 0,
            "verified": [t for t in tickets if not t.failing_count],
            "open_tickets": [t for t in tickets if t.failing_count]}


@router.get("/catalog/{code}/deliver", response_class=HTMLResponse)
def deliver_page(request: Request, code: str, session: SessionDep,
                 run: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None) -> Response:
    me = web_principal(request)
    if me is None:
        return _login_redirect(request)
    try:
        dataset = _deliverable(session, me, code)
    except DomainError as exc:
        return error_page(request, exc)
    return _deliver_page(request, session, me, dataset, run_id=run)


@router.post("/catalog/{code}/deliver", response_class=HTMLResponse)
def deliver_submit(request: Request, code: str, session: SessionDep,
                   csrf: Annotated[str, Form(max_length=64)] = "",
                   file: Annotated[UploadFile | None, File(description="数据文件")] = None) -> Response:
    check_csrf(request, csrf)
    me = web_principal(request)
    if me is None:
        return _login_redirect(request)
    dataset = _deliverable(session, me, code)  # a refusal is the error page, and is not recorded as a run
    settings = request.app.state.settings
    name = Path(file.filename or "").name if file is not None else ""
    try:
        if not name:
            raise CollectionRejected("请选择要上传的数据文件")
        fmt = collection.detect_format(name)
        with tempfile.TemporaryDirectory(prefix="odh-upload-") as tmp:
            path = Path(tmp) / f"upload{Path(name).suffix.lower()}"
            with path.open("wb") as out:
                copied = 0
                while chunk := file.file.read(8 << 20):
                    copied += len(chunk)
                    if copied > settings.max_upload_bytes:
                        raise DeliveryTooLarge(f"文件超过上限 {settings.max_upload_bytes:,} 字节")
                    out.write(chunk)
            result = collection.deliver_and_check(session, storage_for(settings.resolved_storage_root()), me, dataset,
                                                  Delivery(kind="upload", name=name, path=path, file_format=fmt),
                                                  max_bytes=settings.max_upload_bytes)
    except (CollectionRejected, Conflict) as exc:
        session.rollback()
        return _deliver_page(request, session, me, service.find_dataset(session, code), status_code=exc.status_code,
                             error=exc.message, missing=exc.extra.get("missing"), filename=name)
    return RedirectResponse(f"/catalog/{code}/deliver?run={result.run.id}", status_code=303)
