"""The app factory: one FastAPI app per settings object, with domain errors mapped to HTTP in one place."""
from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, StatementError

from catalog import collection_endpoints, endpoints, export_endpoints
from catalog.ckan import router as ckan_router
from catalog.federation import endpoints as federation_endpoints
from catalog.web import pages as web_pages
from catalog.web import provider_pages, quality_pages, sharing_pages
from quality import endpoints as quality_endpoints
from quality import ticket_endpoints
from sharing import endpoints as sharing_endpoints
from sharing import gateway_endpoints
from sharing.gateway import GatewayRuntime, retry_headers
from catalog.storage import storage_for
from catalog.db import Database
from catalog.errors import DomainError
from catalog.search import CatalogSearch, backend_for
from catalog.settings import Settings, get_settings

API_PREFIXES = ("/api/", "/gateway/", "/open/v1/", "/quality/datadocs")

DESCRIPTION = """
公共数据目录与共享平台 API (opendata-hub)。

* 认证：`Authorization: Bearer <令牌>`，令牌由 `POST /api/v1/auth/login` 换取，或由 `opendata demo` 打印。
* 一数一源一标准：每个数据元只有一个权威来源（资源 + 部门），重复登记返回 **409**，并指明已有来源；可改登记为引用。
* 目录规则（DOMAIN.md）违反时返回 **422**，`detail` 中每一项给出字段 (`loc`)、规则 (`type`) 与中文说明 (`msg`)。
* 列表均分页：`page`、`page_size`（≤ 100）。
"""


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    settings = settings or get_settings()
    db = database or Database(settings.resolved_database_url())

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        app.state.gateway.close()
        if database is None:
            db.dispose()

    app = FastAPI(title="opendata-hub 公共数据目录", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.db = db
    app.state.search = CatalogSearch(backend_for(db.dialect), cache_size=settings.search_cache_size)
    # The gateway first: it is the hot path, and routes are matched in order.
    app.include_router(gateway_endpoints.gateway)
    app.include_router(endpoints.router)
    app.include_router(collection_endpoints.router)
    app.include_router(quality_endpoints.router)
    app.include_router(ticket_endpoints.router)
    app.include_router(quality_endpoints.html_router)
    app.include_router(sharing_endpoints.router)
    app.include_router(gateway_endpoints.portal)
    app.include_router(ckan_router.router)
    app.include_router(export_endpoints.router)
    app.include_router(federation_endpoints.router)
    app.include_router(web_pages.router)
    app.include_router(provider_pages.router)
    app.include_router(sharing_pages.router)
    app.include_router(quality_pages.router)
    app.state.gateway = GatewayRuntime(db, settings, storage_for(settings.resolved_storage_root()))
    app.add_middleware(gateway_endpoints.GatewayFastPath)

    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError):  # noqa: ANN202
        if not request.url.path.startswith(API_PREFIXES):
            return web_pages.error_page(request, exc)  # a person in a browser gets a page, not JSON
        headers = retry_headers(exc)
        if exc.status_code == 401:
            headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        elif exc.error == "insufficient_scope":
            headers["WWW-Authenticate"] = 'Bearer error="insufficient_scope"'
        return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):  # noqa: ANN202
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                  for e in exc.errors()]
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors[:5])
        if not request.url.path.startswith(API_PREFIXES):  # e.g. /catalog?page=abc typed into the address bar
            refusal = DomainError(f"地址中的参数不合法（{where}），请返回重试")
            refusal.status_code = 422
            return web_pages.error_page(request, refusal)
        return JSONResponse({"error": "validation_error", "message": f"请求参数不合法 — {where}", "detail": errors},
                            status_code=422)

    @app.exception_handler(StatementError)
    async def database_rejected_value(_request: Request, exc: StatementError) -> JSONResponse:
        # A value the database cannot store (a NUL character in text, an integer beyond its range) is bad input.
        if not (isinstance(exc, DataError) or (not isinstance(exc, DBAPIError) and isinstance(exc.orig, ValueError))):
            raise exc
        return JSONResponse({"error": "invalid_value", "message": "请求中包含数据库无法保存的字符或数值（如 NUL 字符、超范围整数）"},
                            status_code=400)

    @app.get("/healthz", tags=["meta"], summary="存活检查")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


