"""Server-rendered pages in Chinese. Thin like the API routers: every page calls the same service functions with the
same principal, so it never shows what the API would refuse."""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import select

from catalog import auth, indicators, repository, service
from catalog.deps import PrincipalDep, SearchDep, SessionDep
from catalog.enums import CollectionStatus, DatasetStatus, OpenType
from catalog.errors import DomainError, NotAuthenticated
from catalog.models import Dataset, DatasetVersion
from catalog.permissions import can_see_dataset
from catalog.search import SearchQuery, highlight
from catalog.web.session import (
    LOGIN_CSRF_COOKIE,
    SESSION_DAYS,
    check_csrf,
    clear_session,
    csrf_token,
    ensure_login_csrf,
    set_session,
    web_principal,
)

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
router = APIRouter(include_in_schema=False)

FACETS = [("department", "部门"), ("category", "分类"), ("share_type", "共享类型"), ("open_type", "开放类型"),
          ("security_grade", "安全分级"), ("collection_status", "归集状态")]
ROLE_NAMES = {"publisher": "数据提供方", "consumer": "数据使用方", "steward": "大数据局", "admin": "管理员",
              "public": "社会用户"}


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    principal = context.pop("principal", None) if "principal" in context else web_principal(request)
    if not request.cookies.get("odh_session"):
        ensure_login_csrf(request)
    response = templates.TemplateResponse(request, name, {
        "me": principal, "role_names": ROLE_NAMES, "csrf": csrf_token(request), **context}, status_code=status_code)
    if not request.cookies.get("odh_session") and not request.cookies.get(LOGIN_CSRF_COOKIE):
        response.set_cookie(LOGIN_CSRF_COOKIE, request.state.login_csrf, httponly=True, samesite="lax",
                            secure=request.app.state.settings.cookie_secure, path="/")
    return response


def error_page(request: Request, exc: DomainError) -> HTMLResponse:
    titles = {401: "请先登录", 403: "没有权限", 404: "页面不存在", 409: "操作冲突", 422: "填写有误", 429: "操作过于频繁"}
    return render(request, "error.html", status_code=exc.status_code, title=titles.get(exc.status_code, "请求有误"),
                  message=exc.message)


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _cn_time(value, fmt: str = "%Y-%m-%d %H:%M") -> str:  # noqa: ANN001
    """Times are stored in UTC (SQLite hands them back naive); people read Beijing time."""
    if value is None:
        return "—"
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        value = value.astimezone(CHINA)
    return value.strftime(fmt)


CHINA = dt.timezone(dt.timedelta(hours=8))
templates.env.filters["rate"] = _rate
templates.env.filters["cn_time"] = _cn_time


# ---------------------------------------------------------------- home / 驾驶舱
@router.get("/", response_class=HTMLResponse)
def home(request: Request, session: SessionDep) -> HTMLResponse:
    me = web_principal(request)
    if me is None or me.is_external:
        return render(request, "welcome.html", principal=me, open_rate=service_open_rate(session))
    from quality.tickets import rectification_rate
    from sharing.service import share_rate

    cataloguing = indicators.cataloguing_rate(session)
    collection = indicators.collection_rate(session)
    shares = share_rate(session)
    rect = rectification_rate(session)
    approved = sum(r["approved"] for r in shares)
    share_denominator = sum(r["approved"] + r["rejected"] + r["pending_overdue"] for r in shares)
    due = sum(r["due"] for r in rect)
    overall = {
        "编目率": (cataloguing.overall.rate, "/steward/inventory" if me.is_steward else "/catalog"),
        "归集率": (collection.overall.rate, "/catalog?collection_status=已归集"),
        "共享率": (approved / share_denominator if share_denominator else None,
                   "/requests?tab=all" if me.is_steward else "/requests?tab=mine"),
        "开放率": (service_open_rate(session)["rate"], "/open"),
        "及时整改率": (sum(r["on_time"] for r in rect) / due if due else None, "/tickets"),
    }
    departments = sorted({d.department_code: d.department_name for d in collection.departments}.items())
    per_dept = {code: {"name": name, "编目率": None, "归集率": None} for code, name in departments}
    for d in cataloguing.departments:
        per_dept.setdefault(d.department_code, {"name": d.department_name, "归集率": None})["编目率"] = d.rate
    for d in collection.departments:
        per_dept[d.department_code]["归集率"] = d.rate
    for r in shares:
        per_dept.setdefault(r["department"], {"name": r["department_name"]})["共享率"] = r["rate"]
    for r in rect:
        per_dept.setdefault(r["department_code"], {"name": r["department_name"]})["及时整改率"] = r["rate"]
    trend = indicators.daily_trend(session, days=30)
    return render(request, "home.html", principal=me, overall=overall, per_dept=per_dept, trend=trend)


# ---------------------------------------------------------------- 工作台: what waits for me, by role
@router.get("/workspace", response_class=HTMLResponse)
def workspace(request: Request, session: SessionDep) -> HTMLResponse:
    me = web_principal(request)
    if me is None:
        return RedirectResponse("/login?next=/workspace", status_code=303)
    from catalog.enums import Role
    from quality.models import ProblemTicket
    from quality.service import latest_run
    from quality.tickets import ACTIVE, is_overdue
    from sharing import service as sharing

    context: dict[str, Any] = {"principal": me}
    if me.has(Role.publisher):
        own = session.execute(select(Dataset).where(Dataset.department_id == me.department_id,
                                                    Dataset.status == DatasetStatus.published)
                              .order_by(Dataset.code)).unique().scalars().all()
        context["own_datasets"] = [(d, latest_run(session, d)) for d in own]
        from catalog.federation.models import harvested_from

        context["harvested"] = {d.id for d in own if harvested_from(session, d.id) is not None}
        context["to_review"], _ = sharing.list_requests(session, me, "review", sharing.SUBMITTED, 0, 1)
    if not me.is_external:
        active = session.execute(select(ProblemTicket).where(
            ProblemTicket.assigned_department_id == me.department_id, ProblemTicket.status.in_(ACTIVE))).scalars().all()
        context["tickets_active"] = len(active)
        context["tickets_overdue"] = sum(1 for t in active if is_overdue(t))
    if me.is_steward:
        context["steward_review"], _ = sharing.list_requests(session, me, "all", sharing.PENDING_STEWARD, 0, 1)
        every = session.execute(select(ProblemTicket).where(ProblemTicket.status.in_(ACTIVE))).scalars().all()
        context["disputed"] = sum(1 for t in every if t.status == "disputed")
        context["overdue_all"] = sum(1 for t in every if is_overdue(t))
    mine_total, mine = sharing.list_requests(session, me, "mine", None, 0, 10)
    context["my_requests"] = mine
    context["my_requests_total"] = mine_total
    context["request_status"] = sharing.STATUS_NAMES
    _, grants = sharing.list_grants(session, me, 0, 200)
    context["my_grants"] = [g for g in grants if g.consumer_department_id == me.department_id][:10]
    context["grant_status"] = {g.id: sharing.grant_status(g) for g in grants}
    return render(request, "workspace.html", **context)


def service_open_rate(session) -> dict[str, Any]:  # noqa: ANN001
    from sharing.service import open_rate

    return open_rate(session)


# ---------------------------------------------------------------- login / logout
@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> HTMLResponse:  # noqa: A002
    return render(request, "login.html", next=next if next.startswith("/") else "/", error=None)


@router.post("/login", response_class=HTMLResponse)
def login_submit(request: Request, session: SessionDep, username: Annotated[str, Form(max_length=64)],
                 password: Annotated[str, Form(max_length=256)], csrf: Annotated[str, Form(max_length=64)] = "",
                 next: Annotated[str, Form(max_length=300)] = "/") -> HTMLResponse:  # noqa: A002
    check_csrf(request, csrf)
    try:
        _, token = auth.login(session, request.app.state.settings.secret_key, username, password, "网页登录",
                              SESSION_DAYS)
    except NotAuthenticated as exc:
        return render(request, "login.html", status_code=401, next=next, error=exc.message, username=username)
    session.commit()
    response = RedirectResponse(next if next.startswith("/") and not next.startswith("//") else "/", status_code=303)
    set_session(response, request, token)
    return response


@router.post("/logout")
def logout(request: Request, session: SessionDep, csrf: Annotated[str, Form(max_length=64)] = "") -> RedirectResponse:
    check_csrf(request, csrf)
    from catalog.models import ApiToken
    from catalog.security import hash_token

    token = request.cookies.get("odh_session", "")
    row = session.execute(select(ApiToken).where(
        ApiToken.token_hash == hash_token(request.app.state.settings.secret_key, token))).scalar_one_or_none()
    if row is not None and row.revoked_at is None:
        row.revoked_at = service.utcnow()
        session.commit()
    response = RedirectResponse("/", status_code=303)
    clear_session(response)
    return response


# ---------------------------------------------------------------- catalog search
@router.get("/catalog", response_class=HTMLResponse)
def catalog_search(request: Request, session: SessionDep, search: SearchDep,
                   q: Annotated[str, Query(max_length=200)] = "", page: Annotated[int, Query(ge=1, le=10_000)] = 1,
                   sort: Annotated[str, Query(pattern="^(relevance|code|name|-release_date|release_date|-updated_at)$")] = "relevance"
                   ) -> HTMLResponse:
    me = web_principal(request)
    chosen = {name: tuple(v for v in request.query_params.getlist(name) if len(v) <= 32)[:20] for name, _ in FACETS}
    filters = tuple((name, values) for name, values in chosen.items() if values)
    query = SearchQuery(q=" ".join(q.split()), filters=filters, sort=sort, page=page, page_size=20,
                        public_only=me is None or me.is_external)
    result = search.search(session, query)
    hits = [{"dataset": d, "name": highlight(d.name, result.highlight_words),
             "summary": highlight(d.summary, result.highlight_words, limit=120)}
            for d in repository.datasets_by_id(session, result.ids)]

    def link(**change: Any) -> str:
        params = [("q", q)] if q else []
        for name, values in chosen.items():
            params += [(name, v) for v in values]
        params = [(k, v) for k, v in params if k not in change] + [(k, v) for k, v in change.items() if v]
        return "/catalog?" + urlencode(params)

    def toggle(name: str, value: str) -> str:
        params = [("q", q)] if q else []
        for n, values in chosen.items():
            vals = [v for v in values if not (n == name and v == value)]
            if n == name and value not in values:
                vals.append(value)
            params += [(n, v) for v in vals]
        return "/catalog?" + urlencode(params)

    pages = (result.total + 19) // 20
    return render(request, "catalog.html", principal=me, q=q, hits=hits, total=result.total, facets=result.facets,
                  facet_names=FACETS, chosen=chosen, page=page, pages=pages, link=link, toggle=toggle, sort=sort)


# ---------------------------------------------------------------- dataset page
@router.get("/catalog/{code}", response_class=HTMLResponse)
def dataset_page(request: Request, code: str, session: SessionDep) -> HTMLResponse:
    me = web_principal(request)
    try:
        dataset = service.get_dataset(session, me, code)
    except DomainError as exc:
        return error_page(request, exc)
    from quality.service import latest_run
    from quality.tickets import ACTIVE, STATUS_NAMES
    from quality.models import ProblemTicket
    from sharing.policy import mask_kind, masked_by_default

    items = sorted(dataset.items, key=lambda i: i.position)
    versions = session.execute(select(DatasetVersion).where(DatasetVersion.dataset_id == dataset.id)
                               .order_by(DatasetVersion.version.desc()).limit(10)).scalars().all()
    run = latest_run(session, dataset) if me is not None and not me.is_external else None
    history = []
    if run is not None:
        from quality.models import QualityRun

        history = session.execute(
            select(QualityRun, DatasetVersion.version).join(DatasetVersion, DatasetVersion.id == QualityRun.version_id)
            .where(QualityRun.dataset_id == dataset.id).order_by(QualityRun.id.desc()).limit(20)).all()[::-1]
    from catalog.federation.models import harvested_from

    is_owner = (me is not None and (me.is_steward or me.department_id == dataset.department_id and "publisher" in me.roles)
                and dataset.status == DatasetStatus.published and harvested_from(session, dataset.id) is None)
    tickets = (session.execute(select(ProblemTicket).where(ProblemTicket.dataset_id == dataset.id,
                                                           ProblemTicket.status.in_(ACTIVE))).scalars().all()
               if me is not None and not me.is_external else [])
    sources = {}
    for item in items:
        ref = item.reference_item
        if ref is not None and can_see_dataset(me, ref.dataset):
            sources[item.id] = ref.dataset
    return render(request, "dataset.html", principal=me, d=dataset, items=items, versions=versions, run=run,
                  tickets=tickets, ticket_status=STATUS_NAMES, sources=sources, masks={i.code: mask_kind(i) for i in items if masked_by_default(i)},
                  can_download=dataset.open_type == OpenType.unconditional and dataset.latest_version is not None,
                  can_request=(me is not None and dataset.department_id != me.department_id
                               and dataset.status == DatasetStatus.published and
                               (me.is_external and dataset.open_type == OpenType.restricted or
                                not me.is_external and dataset.share_type.value != "不予共享")),
                  collected=dataset.collection_status == CollectionStatus.collected, history=history,
                  is_owner=is_owner, done=DONE_MESSAGES.get(request.query_params.get("done", "")))


DONE_MESSAGES = {"created": "资源已登记，已进入数据目录。", "updated": "资源信息已保存。", "reported": "问题已反馈，已生成问题数据工单。"}


# ---------------------------------------------------------------- open-data portal
@router.get("/open", response_class=HTMLResponse)
def open_portal(request: Request, session: SessionDep, page: Annotated[int, Query(ge=1, le=10_000)] = 1) -> HTMLResponse:
    query = select(Dataset).where(Dataset.status == DatasetStatus.published,
                                  Dataset.open_type.in_([OpenType.unconditional, OpenType.restricted]))
    rows = session.execute(query.order_by(Dataset.open_type, Dataset.code).offset((page - 1) * 50).limit(50)
                           ).unique().scalars().all()
    return render(request, "open.html", datasets=rows, open_rate=service_open_rate(session))


# ---------------------------------------------------------------- metadata documents for the signed-in browser
# The /api/v1 documents take a bearer token only; these page paths serve the same documents to the session, so the
# dataset page's links work for what the signed-in user may see (and answer 404 for what they may not).
@router.get("/catalog/{code}/dcat.ttl")
def page_dcat(code: str, request: Request, session: SessionDep, principal: PrincipalDep):  # noqa: ANN201
    from catalog import export_endpoints

    return export_endpoints.dataset_turtle(code, request, session, principal)


@router.get("/catalog/{code}/datapackage.json")
def page_datapackage(code: str, request: Request, session: SessionDep, principal: PrincipalDep):  # noqa: ANN201
    from catalog import export_endpoints

    return export_endpoints.dataset_datapackage(code, request, session, principal)


# ---------------------------------------------------------------- outside users register (开放申请 needs an account)
REGISTER_FIELDS = {"username": "用户名", "password": "密码", "display_name": "姓名或称呼", "organisation": "单位（可不填）",
                   "contact": "联系电话或邮箱"}


@router.get("/register", response_class=HTMLResponse)
def register_page(request: Request) -> HTMLResponse:
    return render(request, "register.html", values={}, errors={})


@router.post("/register", response_class=HTMLResponse)
def register_submit(request: Request, session: SessionDep, csrf: Annotated[str, Form(max_length=64)] = "",
                    username: Annotated[str, Form(max_length=200)] = "", password: Annotated[str, Form(max_length=300)] = "",
                    display_name: Annotated[str, Form(max_length=300)] = "",
                    organisation: Annotated[str, Form(max_length=300)] = "",
                    contact: Annotated[str, Form(max_length=300)] = "") -> HTMLResponse:
    from pydantic import ValidationError

    from sharing.schemas import RegisterIn
    from sharing.service import register_public_user

    check_csrf(request, csrf)
    values = {"username": username, "display_name": display_name, "organisation": organisation, "contact": contact}
    try:
        register_public_user(session, RegisterIn(password=password, **values))
    except ValidationError as exc:
        errors: dict[str, list[str]] = {}
        for e in exc.errors():
            field = str(e["loc"][0]) if e.get("loc") else "username"
            errors.setdefault(field, []).append(_register_message(field, e))
        return render(request, "register.html", status_code=422, values=values, errors=errors)
    except DomainError as exc:
        return render(request, "register.html", status_code=exc.status_code, values=values,
                      errors={"username": [exc.message]})
    session.commit()
    return render(request, "login.html", next="/open", error=None, username=username,
                  notice="注册成功，请登录。登录后可在开放数据中对“受限开放”的资源提出开放申请。")


def _register_message(field: str, error: dict) -> str:
    name = REGISTER_FIELDS.get(field, field)
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    if kind == "string_too_short":
        return f"{name}至少 {ctx.get('min_length')} 个字符"
    if kind == "string_too_long":
        return f"{name}最多 {ctx.get('max_length')} 个字符"
    if kind == "string_pattern_mismatch":
        return f"{name}只能包含英文字母、数字和 _ . -"
    return f"{name}填写有误"
