"""CKAN's HTTP envelope: `/api/3/action/{name}` and `/api/action/{name}`, GET or POST (JSON, form, multipart).

Success: 200 `{"help", "success": true, "result"}`. Errors: `{"help", "success": false, "error": {"__type",
"message"}}` — Not Found Error 404, Authorization Error 403 (also for a missing, bad or expired token: CKAN has no
401), Validation Error 409 (field → [messages], no "message" key), Search Query Error 400, Internal Server Error 500;
a gateway quota answers 429 "Rate Limit Error" with Retry-After (CKAN has no quotas). An unknown action and a GET on
an action that changes data are 400 with a bare JSON string, as CKAN answers. The token is the raw value of
`Authorization` or `X-CKAN-API-Key` (a "Bearer " prefix is tolerated): a user token `odh_…`, or a grant credential
`odg_…`, which only datastore_search reads (other actions then see an anonymous caller).
"""
from __future__ import annotations

import json
import logging
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sqlalchemy.exc import DBAPIError, DataError, StatementError
from starlette.datastructures import UploadFile

from catalog.auth import authenticate_token
from catalog.errors import (
    AuthoritativeSourceConflict,
    CatalogRuleError,
    DomainError,
    NotFound,
)
from catalog.schemas import _CONTROL as CONTROL_CHARACTERS

from catalog.ckan import mapping
from catalog.ckan.actions import Action, Context, actions
from catalog.ckan.errors import CkanValidationError, SearchQueryError

log = logging.getLogger(__name__)
router = APIRouter(tags=["ckan"], include_in_schema=False)
MEDIA_TYPE = "application/json;charset=utf-8"
FALLBACK_KEY = {"package_create": "name", "resource_create": "upload", "datastore_search": "resource_id"}


class BadRequest(Exception):
    pass


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _mixed(items: list[tuple[str, Any]]) -> dict[str, Any]:
    """CKAN's flattening of a multi-dict: one value → the value, several → a list."""
    out: dict[str, Any] = {}
    for key, value in items:
        if key in out:
            out[key] = (out[key] if isinstance(out[key], list) else [out[key]]) + [value]
        else:
            out[key] = value
    return out


async def _request_data(request: Request, action: Action) -> dict[str, Any]:
    if request.method == "GET":
        if not action.side_effect_free:
            raise BadRequest("JSON Error: Invalid request. Please use POST method for your request")
        return _mixed(list(request.query_params.multi_items()))
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        try:
            form = await request.form()
        except Exception as exc:  # noqa: BLE001 - a malformed form body is the client's error
            raise BadRequest(f"JSON Error: could not read the form: {exc}") from None
        items = list(form.multi_items())
        if len(items) == 1 and not isinstance(items[0][1], UploadFile) and items[0][1] in ("1", ""):
            try:  # urllib-style POST: the JSON document is the only field name
                data = json.loads(items[0][0])
            except (ValueError, RecursionError):
                data = _mixed(items)
        else:
            data = _mixed(items)
    else:
        body = await request.body()
        if body.strip():
            try:
                data = json.loads(body)
            except (ValueError, RecursionError) as exc:
                raise BadRequest(f"JSON Error: Error decoding JSON data. Error: {exc}") from None
        elif action.side_effect_free:
            data = _mixed(list(request.query_params.multi_items()))
        else:
            data = {}
    if not isinstance(data, dict):
        raise BadRequest(f"Bad request data: Request data JSON decoded to {data!r} but it needs to be a dictionary.")
    return data


def _token(request: Request) -> str | None:
    raw = request.headers.get("authorization") or request.headers.get("x-ckan-api-key")
    if raw is None:
        return None
    raw = raw.strip()
    if raw[:7].lower() == "bearer ":
        raw = raw[7:].strip()
    return raw or None


def _authenticate(request: Request, raw: str):  # noqa: ANN202
    if len(raw) > 200:
        raise _Denied("令牌无效")
    db = request.app.state.db
    try:
        with db.session() as session:  # its own unit of work: records last use even for reads
            return authenticate_token(session, request.app.state.settings.secret_key, raw)
    except DomainError as exc:
        raise _Denied(exc.message) from None


class _Denied(Exception):
    pass


def _sanitised(data: dict[str, Any]) -> dict[str, Any]:
    """Control characters in search text would reach the database (PostgreSQL cannot hold NUL); blank them."""
    for key in ("q", "fq"):
        if isinstance(data.get(key), str):
            data[key] = CONTROL_CHARACTERS.sub(" ", data[key])
    return data


def _run_sync(request: Request, action: Action, data: dict[str, Any], principal, grant_token,  # noqa: ANN001
              base: str) -> Any:
    app = request.app
    with app.state.db.sessionmaker() as session:
        ctx = Context(session=session, principal=principal, settings=app.state.settings, search=app.state.search,
                      db=app.state.db, base=base, runtime=app.state.gateway, grant_token=grant_token,
                      client=request.client.host if request.client else "unknown")
        return action.fn(ctx, data)


def _error(help_url: str, status: int, error: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return _json({"help": help_url, "success": False, "error": error}, status, headers)


def _validation(help_url: str, errors: dict[str, list[str]]) -> Response:
    return _error(help_url, 409, {"__type": "Validation Error", **errors})


def _domain_error(help_url: str, name: str, exc: DomainError) -> Response:
    if isinstance(exc, NotFound):
        return _error(help_url, 404, {"__type": "Not Found Error", "message": f"Not found: {exc.message}"})
    if exc.status_code in (401, 403):
        return _error(help_url, 403, {"__type": "Authorization Error", "message": f"Access denied: {exc.message}"})
    if exc.status_code == 429:
        retry = getattr(exc, "retry_after", None)
        return _error(help_url, 429, {"__type": "Rate Limit Error", "message": exc.message},
                      {"Retry-After": str(retry)} if retry else None)
    if isinstance(exc, CatalogRuleError):
        errors: dict[str, list[str]] = {}
        for v in exc.violations:
            errors.setdefault(mapping.ckan_key(v.field), []).append(v.message)
        return _validation(help_url, errors)
    key = mapping.ckan_key(str(exc.extra.get("field") or FALLBACK_KEY.get(name, "id")))
    errors = {key: [exc.message]}
    if isinstance(exc, AuthoritativeSourceConflict):
        src = exc.extra.get("existing_source") or {}
        if src:
            errors["authoritative_source"] = [
                f"{src.get('department_name')}「{src.get('dataset_name')}」({src.get('dataset_code')})"]
    dependants = exc.extra.get("dependants")
    if isinstance(dependants, list) and dependants:
        errors["dependants"] = [str(d) for d in dependants]
    return _validation(help_url, errors)


async def action(name: str, request: Request) -> Response:
    """One CKAN action call."""
    base = str(request.base_url).rstrip("/")
    entry = actions().get(name)
    if entry is None:
        return _json(f"Bad request: Action name not known: {name}", 400)
    help_url = f"{base}/api/3/action/help_show?name={name}"
    try:
        data = _sanitised(await _request_data(request, entry))
    except BadRequest as exc:
        return _json(f"Bad request: {exc}", 400)
    principal = None
    grant_token = None
    raw = _token(request)
    if data.pop("callback", None) is not None:
        raw = None  # CKAN answers JSONP callers as anonymous
    try:
        if raw is not None and raw.startswith("odg_"):
            grant_token = raw
        elif raw is not None:
            principal = await run_in_threadpool(_authenticate, request, raw)
    except _Denied as exc:
        return _error(help_url, 403, {"__type": "Authorization Error", "message": f"Access denied: {exc}"})
    try:
        if entry.is_async:
            app = request.app
            ctx = Context(session=None, principal=principal, settings=app.state.settings,  # type: ignore[arg-type]
                          search=app.state.search, db=app.state.db, base=base, runtime=app.state.gateway,
                          grant_token=grant_token, client=request.client.host if request.client else "unknown",
                          extra={"api_path": "/api/3/action"})
            result = await entry.fn(ctx, data)
        else:
            result = await run_in_threadpool(_run_sync, request, entry, data, principal, grant_token, base)
    except CkanValidationError as exc:
        return _validation(help_url, exc.errors)
    except SearchQueryError as exc:
        return _error(help_url, 400, {"__type": "Search Query Error", "message": f"Search Query is invalid: {exc}"})
    except DomainError as exc:
        return _domain_error(help_url, name, exc)
    except StatementError as exc:
        if isinstance(exc, DataError) or (not isinstance(exc, DBAPIError) and isinstance(exc.orig, ValueError)):
            return _validation(help_url, {FALLBACK_KEY.get(name, "id"): ["请求中包含数据库无法保存的字符或数值"]})
        log.exception("CKAN action %s failed", name)
        return _error(help_url, 500, {"__type": "Internal Server Error", "message": "Internal Server Error"})
    except Exception:  # noqa: BLE001 - CKAN's envelope for anything unexpected
        log.exception("CKAN action %s failed", name)
        return _error(help_url, 500, {"__type": "Internal Server Error", "message": "Internal Server Error"})
    return _json({"help": help_url, "success": True, "result": result})


router.add_api_route("/api/3/action/{name}", action, methods=["GET", "POST"], include_in_schema=False)
router.add_api_route("/api/action/{name}", action, methods=["GET", "POST"], include_in_schema=False)
