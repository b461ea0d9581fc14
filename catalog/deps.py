"""FastAPI dependencies: the request's session, the caller (from the bearer token only), the search engine."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from catalog.auth import Principal, authenticate_token
from catalog.db import Database
from catalog.errors import NotAuthenticated
from catalog.search import CatalogSearch
from catalog.settings import Settings

bearer = HTTPBearer(auto_error=False, description="API token: `Authorization: Bearer odh_…` (see POST /api/v1/auth/login)")


def get_db(request: Request) -> Database:
    return request.app.state.db


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_search(request: Request) -> CatalogSearch:
    return request.app.state.search


def get_session(db: Annotated[Database, Depends(get_db)]) -> Iterator[Session]:
    """One session per request. Writers commit explicitly before answering; anything uncommitted is rolled back."""
    with db.sessionmaker() as session:
        yield session


def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    db: Annotated[Database, Depends(get_db)],
) -> Principal | None:
    """The caller, or None when no credential was sent. A credential that was sent but is bad is a 401."""
    if request.headers.get("authorization") and credentials is None:
        raise NotAuthenticated("Authorization 头格式应为：Bearer <令牌>")
    if credentials is None:
        if not request.url.path.startswith(("/api/", "/gateway/", "/open/v1/")):
            # Pages (e.g. /quality/report) also know the browser session; the API never reads cookies (no CSRF).
            from catalog.web.session import web_principal

            return web_principal(request)
        return None
    token = credentials.credentials.strip()
    if not token or len(token) > 200:
        raise NotAuthenticated("令牌无效")
    with db.session() as session:  # its own unit of work: records last use even when the request only reads
        return authenticate_token(session, request.app.state.settings.secret_key, token)


SessionDep = Annotated[Session, Depends(get_session)]
PrincipalDep = Annotated[Principal | None, Depends(get_principal)]
SearchDep = Annotated[CatalogSearch, Depends(get_search)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
