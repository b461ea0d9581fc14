"""Browser sessions: the login issues an ordinary API token (revocable, expiring) kept in an HttpOnly cookie, so a page
sees exactly the caller the API would; CSRF tokens are derived from it and checked on every form post."""
from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import Request
from fastapi.responses import Response

from catalog.auth import Principal, authenticate_token
from catalog.errors import NotAuthenticated, PermissionDenied

SESSION_COOKIE = "odh_session"
LOGIN_CSRF_COOKIE = "odh_login_csrf"
SESSION_DAYS = 1


def web_principal(request: Request) -> Principal | None:
    """The signed-in user, or None. A stale cookie (expired, revoked) is simply not a session."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token or len(token) > 200:
        return None
    db = request.app.state.db
    try:
        with db.session() as session:
            return authenticate_token(session, request.app.state.settings.secret_key, token)
    except NotAuthenticated:
        return None


def set_session(response: Response, request: Request, token: str) -> None:
    response.set_cookie(SESSION_COOKIE, token, max_age=SESSION_DAYS * 86400, httponly=True, samesite="lax",
                        secure=request.app.state.settings.cookie_secure, path="/")


def clear_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")


def csrf_token(request: Request) -> str:
    """Bound to the session (or, before login, to a random cookie): a page from another site cannot know it."""
    key = request.app.state.settings.secret_key.encode()
    basis = request.cookies.get(SESSION_COOKIE) or request.state.login_csrf
    return hmac.new(key, b"csrf:" + basis.encode(), hashlib.sha256).hexdigest()[:40]


def ensure_login_csrf(request: Request) -> str:
    value = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    request.state.login_csrf = value
    return value


def check_csrf(request: Request, submitted: str | None) -> None:
    if not request.cookies.get(SESSION_COOKIE):
        request.state.login_csrf = request.cookies.get(LOGIN_CSRF_COOKIE) or ""
        if not request.state.login_csrf:
            raise PermissionDenied("表单已失效，请刷新页面后重试")
    if not submitted or not hmac.compare_digest(submitted, csrf_token(request)):
        raise PermissionDenied("表单已失效或来源不明（CSRF 校验失败），请刷新页面后重试")
