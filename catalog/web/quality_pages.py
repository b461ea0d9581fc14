"""Pages of 问题数据工单, 数据异议 reports, the steward's quality report, the audit log and the cataloguing gaps.

Thin like the API routers: each page calls the service function its API twin calls (quality/tickets.py,
quality/report.py, quality/service.py, sharing/audit.py, catalog/indicators.py) with the signed-in principal, so a
page never shows what the API would refuse."""
from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError
from sqlalchemy import select

from catalog import indicators
from catalog import service as catalog_service
from catalog.auth import Principal
from catalog.deps import SessionDep
from catalog.enums import DatasetStatus
from catalog.errors import DomainError, NotFound, PermissionDenied
from catalog.models import Dataset, DatasetVersion, InventoryEntry
from catalog.repository import department_and_user_names
from catalog.storage import storage_for
from catalog.web.pages import render
from catalog.web.session import check_csrf, web_principal
from quality import service as quality
from quality import tickets
from quality.endpoints import check_quality_report
from quality.models import ProblemTicket, QualityRun
from quality.report import _mean, build_report, report_csv  # _mean: averaged as the report averages departments
from quality.schemas import ReportIn
from quality.suite import DIMENSIONS
from sharing import audit

router = APIRouter(include_in_schema=False)

TicketId = Annotated[str, Path(max_length=12)]  # checked by ticket_number: a mistyped URL gets the 404 page
PageNo = Annotated[int, Query(ge=1, le=100_000)]
TICKETS_PER_PAGE = 20
KEYS_PER_PAGE = 100
AUDIT_PER_PAGE = 50
COMMENT_MAX = 2000

# What a button says for each move of tickets.TRANSITIONS (from, to).
ACTION_LABELS = {
    (tickets.OPEN, tickets.ASSIGNED): "受理并分派",
    (tickets.ASSIGNED, tickets.IN_PROGRESS): "开始处理",
    (tickets.ASSIGNED, tickets.FIXED): "已整改",
    (tickets.IN_PROGRESS, tickets.FIXED): "已整改",
    (tickets.ASSIGNED, tickets.DISPUTED): "提出异议（数据无误）",
    (tickets.IN_PROGRESS, tickets.DISPUTED): "提出异议（数据无误）",
    (tickets.FIXED, tickets.VERIFIED): "核验通过",
    (tickets.FIXED, tickets.IN_PROGRESS): "退回整改",
    (tickets.DISPUTED, tickets.ASSIGNED): "驳回异议（退回来源部门整改）",
    (tickets.DISPUTED, tickets.CLOSED): "采纳异议并关闭",
    (tickets.VERIFIED, tickets.CLOSED): "关闭",
}
ORIGIN_NAMES = {"quality": "质量检查发现", "report": "数据异议反馈"}
STATUS_FILTERS = [("active", "未办结"), *tickets.STATUS_NAMES.items()]
AUDIT_KINDS = {"gateway": "共享接口调用", "open": "开放数据调用", "decision": "申请审核", "grant": "授权",
               "credential": "凭证"}
DIMENSION_COLOURS = dict(zip(DIMENSIONS, ("#16a34a", "#f59e0b", "#dc2626", "#7c3aed", "#0891b2", "#6b7280"),
                             strict=True))


def _login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)


def _storage(request: Request):  # noqa: ANN202
    return storage_for(request.app.state.settings.resolved_storage_root())


def ticket_number(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 2**31 - 1:
        raise NotFound(f"工单 {value} 不存在")
    return int(value)


def _allowed(check, *args: Any) -> bool:  # noqa: ANN001
    try:
        check(*args)
    except DomainError:
        return False
    return True


# ---------------------------------------------------------------- 问题数据工单 list
@router.get("/tickets", response_class=HTMLResponse)
def ticket_list(request: Request, session: SessionDep, page: PageNo = 1,
                status: Annotated[str, Query(max_length=16)] = "",
                dataset: Annotated[str, Query(max_length=32)] = "",
                overdue: Annotated[str, Query(max_length=1)] = "") -> Response:
    me = web_principal(request)
    if me is None:
        return _login(request)
    status = status if status in dict(STATUS_FILTERS) else ""
    overdue_flag = {"1": True, "0": False}.get(overdue)
    if tickets.escalate_overdue(session):  # as the API does: overdue tickets escalate as soon as anyone looks
        session.commit()
    everything = tickets.list_tickets(session, me)
    rows = tickets.list_tickets(session, me, status or None, dataset or None, overdue_flag)
    chunk = rows[(page - 1) * TICKETS_PER_PAGE: page * TICKETS_PER_PAGE]
    datasets = {d.id: d for d in session.execute(select(Dataset).where(
        Dataset.id.in_({t.dataset_id for t in everything}))).unique().scalars()}
    depts, _ = department_and_user_names(session)

    def link(**change: Any) -> str:
        params = {"status": status, "dataset": dataset, "overdue": overdue if overdue_flag is not None else ""}
        params.update(change)
        return "/tickets?" + urlencode({k: v for k, v in params.items() if v not in ("", None)})

    return render(request, "tickets.html", principal=me, rows=chunk, total=len(rows), page=page,
                  pages=max(1, -(-len(rows) // TICKETS_PER_PAGE)), status=status, dataset=dataset,
                  overdue=overdue if overdue_flag is not None else "", datasets=sorted(datasets.values(), key=lambda d: d.code),
                  datasets_by_id=datasets, depts=depts, link=link, status_filters=STATUS_FILTERS,
                  status_names=tickets.STATUS_NAMES, is_overdue=tickets.is_overdue)


# ---------------------------------------------------------------- one ticket
@router.get("/tickets/{ticket_id}", response_class=HTMLResponse)
def ticket_detail(request: Request, ticket_id: TicketId, session: SessionDep, page: PageNo = 1,
                  done: Annotated[str, Query(max_length=16)] = "") -> Response:
    me = web_principal(request)
    if me is None:
        return _login(request)
    ticket = tickets.get_ticket(session, me, ticket_number(ticket_id))  # NotFound for whoever may not see it
    notice = None
    if done == "reported":
        notice = "已收到您的反馈，工单已建立并转交权威来源部门处理；处理进展会记录在下方。"
    elif done in tickets.STATUS_NAMES:
        notice = f"已处理：工单现为「{tickets.STATUS_NAMES[ticket.status]}」。"
    return _ticket_page(request, session, me, ticket, page, notice=notice)


def _ticket_page(request: Request, session, me: Principal, ticket: ProblemTicket, page: int = 1,  # noqa: ANN001
                 status_code: int = 200, **context: Any) -> HTMLResponse:
    dataset = session.get(Dataset, ticket.dataset_id)
    depts, users = department_and_user_names(session)
    item = next((i for i in dataset.items if i.code == ticket.item_code), None) if ticket.item_code else None
    version = session.get(DatasetVersion, ticket.latest_version_id) if ticket.latest_version_id else None
    actions = [(to, ACTION_LABELS.get((ticket.status, to), tickets.STATUS_NAMES[to]))
               for to in tickets.allowed_transitions(me, ticket)]
    failing: dict[str, Any] = {"kind": "none"}
    if ticket.origin == "quality" and ticket.latest_run_id and ticket.rule_id:
        # All failing keys (and the values behind them) as GET …/quality/runs/{id}/failing gives them: to the
        # provider department and the steward. Others who may see the ticket get its sample keys, as the ticket API.
        if _allowed(quality.check_read_quality, me, dataset):
            run = session.get(QualityRun, ticket.latest_run_id)
            run_version = session.get(DatasetVersion, run.version_id)
            offset = (page - 1) * KEYS_PER_PAGE
            total, pairs = (quality.failing_values(_storage(request), run, run_version.path, ticket.rule_id,
                                                   ticket.item_code, offset, KEYS_PER_PAGE)
                            if ticket.item_code else (0, []))
            if not pairs:  # no item column to read: the keys alone
                total, keys = quality.failing_keys(_storage(request), run, ticket.rule_id, offset, KEYS_PER_PAGE)
                pairs = [(k, None) for k in keys]
                with_values = False
            else:
                with_values = True
            failing = {"kind": "all", "total": total, "rows": pairs, "with_values": with_values, "page": page,
                       "pages": max(1, -(-total // KEYS_PER_PAGE)), "offset": offset,
                       "run_version": run_version.version}
        else:
            failing = {"kind": "sample", "keys": ticket.sample_keys or []}
    return render(request, "ticket.html", status_code=status_code, principal=me, t=ticket, d=dataset, depts=depts,
                  users=users, item=item, version=version, actions=actions, failing=failing,
                  status_names=tickets.STATUS_NAMES, origin_names=ORIGIN_NAMES, overdue=tickets.is_overdue(ticket),
                  comment_max=COMMENT_MAX, **{"error": None, "comment": "", "notice": None, **context})


@router.post("/tickets/{ticket_id}/transition", response_class=HTMLResponse)
def ticket_transition(request: Request, ticket_id: TicketId, session: SessionDep,
                      to: Annotated[str, Form(max_length=32)] = "", comment: Annotated[str, Form(max_length=20_000)] = "",
                      csrf: Annotated[str, Form(max_length=64)] = "") -> Response:
    check_csrf(request, csrf)
    me = web_principal(request)
    if me is None:
        return _login(request)
    number = ticket_number(ticket_id)
    try:
        if len(comment) > COMMENT_MAX:
            tickets.get_ticket(session, me, number)
            raise DomainError(f"说明最多 {COMMENT_MAX} 个字")
        tickets.transition(session, me, number, to, comment)
        session.commit()
    except NotFound:
        raise  # a ticket they may not see: the friendly 404, nothing about it
    except DomainError as exc:
        session.rollback()
        ticket = tickets.get_ticket(session, me, number)
        return _ticket_page(request, session, me, ticket, status_code=exc.status_code, error=exc.message,
                            comment=comment)
    return RedirectResponse(f"/tickets/{number}?done={to}", status_code=303)


# ---------------------------------------------------------------- 反馈问题 (数据异议)
@router.get("/catalog/{code}/report", response_class=HTMLResponse)
def report_form(request: Request, code: Annotated[str, Path(max_length=32)], session: SessionDep,
                sent: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None) -> HTMLResponse:
    me = web_principal(request)
    dataset = catalog_service.get_dataset(session, me, code)  # NotFound for whom the API would refuse
    if sent is not None:
        return render(request, "report_problem_done.html", principal=me, d=dataset, ticket_id=sent)
    return _report_page(request, me, dataset)


def _report_page(request: Request, me: Principal | None, dataset: Dataset, status_code: int = 200,
                 **context: Any) -> HTMLResponse:
    items = sorted(dataset.items, key=lambda i: i.position)
    return render(request, "report_problem.html", status_code=status_code, principal=me, d=dataset, items=items,
                  **{"errors": {}, "form": {"item_code": "", "description": "", "contact": ""}, **context})


@router.post("/catalog/{code}/report", response_class=HTMLResponse)
def report_submit(request: Request, code: Annotated[str, Path(max_length=32)], session: SessionDep,
                  item_code: Annotated[str, Form(max_length=200)] = "",
                  description: Annotated[str, Form(max_length=20_000)] = "",
                  contact: Annotated[str, Form(max_length=1000)] = "",
                  csrf: Annotated[str, Form(max_length=64)] = "") -> Response:
    check_csrf(request, csrf)
    me = web_principal(request)
    dataset = catalog_service.get_dataset(session, me, code)
    form = {"item_code": item_code, "description": description, "contact": contact}
    try:
        body = ReportIn(item_code=item_code or None, description=description.strip(), contact=contact.strip() or None)
    except ValidationError as exc:
        errors = {}
        for e in exc.errors():
            field = str(e["loc"][0]) if e["loc"] else "description"
            errors.setdefault(field, _field_message(field, e))
        return _report_page(request, me, dataset, status_code=422, errors=errors, form=form)
    try:
        ticket = tickets.report_problem(session, me, dataset, body.item_code, body.description, body.contact)
        session.commit()
    except DomainError as exc:
        session.rollback()
        field = "item_code" if isinstance(exc, NotFound) else "contact" if isinstance(exc, PermissionDenied) else "description"
        return _report_page(request, me, dataset, status_code=exc.status_code, errors={field: exc.message}, form=form)
    if me is not None and tickets.can_see_ticket(me, ticket):
        return RedirectResponse(f"/tickets/{ticket.id}?done=reported", status_code=303)
    return RedirectResponse(f"/catalog/{dataset.code}/report?sent={ticket.id}", status_code=303)


def _field_message(field: str, error: dict) -> str:
    limits = {"description": "问题描述需 4 至 4000 个字", "contact": "联系方式最多 200 个字", "item_code": "请选择列表中的数据项"}
    return limits.get(field, error.get("msg", "填写有误"))


# ---------------------------------------------------------------- the steward's quality report
@router.get("/quality/report", response_class=HTMLResponse)
def quality_report(request: Request, session: SessionDep) -> Response:
    me = web_principal(request)
    if me is None:
        return _login(request)
    check_quality_report(me)  # steward only, as GET /api/v1/quality/report
    report = build_report(session)
    active = tickets.list_tickets(session, me, "active")
    datasets = {d.id: d for d in session.execute(select(Dataset).where(
        Dataset.id.in_({t.dataset_id for t in active}))).unique().scalars()}
    depts, _ = department_and_user_names(session)
    charts = {r["dataset_code"]: trend_chart(r["trend"]) for r in report["datasets"]}
    overall = {"overall_score": _mean([r["overall_score"] for r in report["datasets"]]),
               "scores": {dim: _mean([r["scores"].get(dim) for r in report["datasets"]]) for dim in DIMENSIONS},
               "datasets_checked": len(report["datasets"])}
    return render(request, "quality_report.html", principal=me, **report, overall=overall, charts=charts,
                  colours=DIMENSION_COLOURS,
                  open_count=len(active), overdue=[t for t in active if tickets.is_overdue(t)],
                  disputes=[t for t in active if t.status == tickets.DISPUTED], datasets_by_id=datasets, depts=depts,
                  status_names=tickets.STATUS_NAMES)


@router.get("/quality/report.csv")
def quality_report_csv(request: Request, session: SessionDep) -> Response:
    """The CSV of GET /api/v1/quality/report.csv for the browser session (the API takes bearer tokens only)."""
    me = web_principal(request)
    if me is None:
        return _login(request)
    check_quality_report(me)
    return Response(report_csv(build_report(session)), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": "attachment; filename=quality-report.csv"})


TREND_WIDTH, TREND_HEIGHT, TREND_LEFT, TREND_RIGHT, TREND_TOP, TREND_BOTTOM = 360, 180, 34, 12, 10, 26


def trend_chart(trend: list[dict]) -> dict[str, Any]:
    """Coordinates of a score-per-version line chart (0–100): the overall score and one line per dimension."""
    plot_w = TREND_WIDTH - TREND_LEFT - TREND_RIGHT
    plot_h = TREND_HEIGHT - TREND_TOP - TREND_BOTTOM
    n = len(trend)

    def x(i: int) -> float:
        return round(TREND_LEFT + (plot_w * i / (n - 1) if n > 1 else plot_w / 2), 1)

    # Scores sit near 100: start the axis at the tens below the lowest score (at most 80) so changes show.
    present = [v for p in trend for v in [p["overall_score"], *(p["scores"] or {}).values()] if v is not None]
    low = max(0, min(80, int(min(present, default=80) // 10 * 10)))

    def y(score: float) -> float:
        return round(TREND_TOP + plot_h * (100 - max(low, min(100.0, score))) / (100 - low), 1)

    series = []
    for name, colour, width, pick in [("综合", "#0b4a8b", 3, lambda p: p["overall_score"])] + [
            (dim, DIMENSION_COLOURS[dim], 1.5, lambda p, dim=dim: (p["scores"] or {}).get(dim)) for dim in DIMENSIONS]:
        dots = [(x(i), y(pick(p)), pick(p), p["version"]) for i, p in enumerate(trend) if pick(p) is not None]
        if dots:
            series.append({"name": name, "colour": colour, "width": width, "dots": dots,
                           "points": " ".join(f"{dx},{dy}" for dx, dy, _, _ in dots)})
    return {"width": TREND_WIDTH, "height": TREND_HEIGHT, "series": series,
            "x_ticks": [(x(i), f"v{p['version']}") for i, p in enumerate(trend)],
            "y_ticks": [(y(v), v) for v in sorted({low, (low + 100) // 2, 100})], "left": TREND_LEFT, "right": TREND_WIDTH - TREND_RIGHT,
            "bottom": TREND_HEIGHT - TREND_BOTTOM}


# ---------------------------------------------------------------- audit log
@router.get("/audit", response_class=HTMLResponse)
def audit_search(request: Request, session: SessionDep, page: PageNo = 1,
                 dataset: Annotated[str, Query(max_length=32)] = "",
                 grant_id: Annotated[str, Query(max_length=12)] = "",
                 kind: Annotated[str, Query(max_length=16)] = "") -> Response:
    me = web_principal(request)
    if me is None:
        return _login(request)
    return _audit_page(request, session, me, page, dataset.strip(), grant_id.strip(), kind)


def _audit_page(request: Request, session, me: Principal, page: int = 1, dataset: str = "",  # noqa: ANN001
                grant_id: str = "", kind: str = "", **context: Any) -> HTMLResponse:
    errors = {}
    grant = None
    if grant_id:
        if grant_id.isdigit() and 1 <= int(grant_id) <= 2**31 - 1:
            grant = int(grant_id)
        else:
            errors["grant_id"] = "授权编号应为正整数"
    if kind and kind not in AUDIT_KINDS:
        errors["kind"] = "请选择列表中的类别"
    total, rows = (0, []) if errors else audit.search(session, me, dataset or None, grant, kind or None,
                                                     (page - 1) * AUDIT_PER_PAGE, AUDIT_PER_PAGE)
    if errors:
        audit.search(session, me, None, None, None, 0, 1)  # the same refusal for outside users as the API
    depts, users = department_and_user_names(session)
    codes = dict(session.execute(select(Dataset.id, Dataset.code).where(
        Dataset.id.in_({r.dataset_id for r in rows if r.dataset_id}))).all())

    def link(**change: Any) -> str:
        params = {"dataset": dataset, "grant_id": grant_id, "kind": kind, **change}
        return "/audit?" + urlencode({k: v for k, v in params.items() if v not in ("", None)})

    return render(request, "audit.html", status_code=422 if errors else 200, principal=me, rows=rows, total=total,
                  page=page, pages=max(1, -(-total // AUDIT_PER_PAGE)), dataset=dataset, grant_id=grant_id, kind=kind,
                  errors=errors, kinds=AUDIT_KINDS, depts=depts, users=users, codes=codes, link=link,
                  **{"verify": None, **context})


@router.post("/audit/verify", response_class=HTMLResponse)
def audit_verify(request: Request, session: SessionDep, csrf: Annotated[str, Form(max_length=64)] = "") -> Response:
    """The check of `opendata audit verify`, for the steward: recompute the hash chain and say where it breaks."""
    from sharing.cli import KIND_LABELS

    check_csrf(request, csrf)
    me = web_principal(request)
    if me is None:
        return _login(request)
    if not me.is_steward:
        raise PermissionDenied("校验审计链需要大数据局 (steward) 权限")
    result = audit.verify(session)
    return _audit_page(request, session, me, verify={"ok": result.ok, "checked": result.checked,
                                                     "head_seq": result.head_seq, "labels": KIND_LABELS,
                                                     "problems": result.problems,
                                                     "more": len(result.problems) >= audit.MAX_PROBLEMS})


# ---------------------------------------------------------------- 编目缺口 / 归集缺口
@router.get("/steward/inventory", response_class=HTMLResponse)
def inventory_gaps(request: Request, session: SessionDep) -> Response:
    me = web_principal(request)
    if me is None:
        return _login(request)
    if not me.is_steward:
        raise PermissionDenied("编目缺口与归集缺口是大数据局 (steward) 的督办工作台；部门请在工作台查看本部门资源")
    cataloguing = indicators.cataloguing_rate(session)
    collection = {d.department_code: d for d in indicators.collection_rate(session).departments}
    names = dict(session.execute(select(InventoryEntry.code, InventoryEntry.name)).all())
    never: dict[str, list[Dataset]] = {}
    for d in session.execute(select(Dataset).where(Dataset.status == DatasetStatus.published,
                                                   Dataset.latest_version.is_(None))
                             .order_by(Dataset.code)).unique().scalars():
        never.setdefault(d.department.code, []).append(d)
    departments = {d.department_code: d.department_name for d in cataloguing.departments}
    for code, row in collection.items():
        departments.setdefault(code, row.department_name)
    rows = [{"code": code, "name": name,
             "cataloguing": next((c for c in cataloguing.departments if c.department_code == code), None),
             "collection": collection.get(code), "never": never.get(code, [])}
            for code, name in sorted(departments.items())]
    return render(request, "inventory.html", principal=me, overall=cataloguing.overall, rows=rows, names=names,
                  never_total=sum(len(v) for v in never.values()))
