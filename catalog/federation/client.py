"""The remote catalog through ckanapi.RemoteCKAN: a timeout on every call, transient failures retried with back-off.

Transient (retried): timeouts and connection errors, HTTP 5xx / 408 / 429, a body that is not the CKAN envelope
(malformed JSON), and a result of the wrong shape. Final (raised at once): Not Found, Authorization, Validation and
Search Query errors, and other 4xx answers (e.g. an action the remote does not know) — retrying cannot change those.
"""
from __future__ import annotations

import ast
import time
from collections.abc import Callable
from typing import Any

import requests
from ckanapi import CKANAPIError, NotAuthorized, NotFound, RemoteCKAN, SearchQueryError, ValidationError
from ckanapi.errors import SearchError, SearchIndexError, ServerIncompatibleError

USER_AGENT = "opendata-hub-harvester/0.1 (+ckanapi)"
FINAL = (NotFound, NotAuthorized, ValidationError, SearchQueryError, SearchError, SearchIndexError)


class RemoteError(Exception):
    """A remote call failed for good (after the retries a transient failure gets)."""

    def __init__(self, action: str, message: str, attempts: int, transient: bool):
        super().__init__(f"{action}：{message}" + (f"（共尝试 {attempts} 次）" if attempts > 1 else ""))
        self.action = action
        self.attempts = attempts
        self.transient = transient


class Unsupported(RemoteError):
    """The remote refused the request as such (4xx, search syntax): another way of listing may work."""


class _Recording(RemoteCKAN):
    """RemoteCKAN that remembers the last HTTP status (ckanapi itself only looks at the body)."""

    last_status: int | None = None

    def _request_fn(self, url, data, headers, files, requests_kwargs):  # noqa: ANN001, ANN202
        self.last_status = None
        status, body = super()._request_fn(url, data, headers, files, requests_kwargs)
        self.last_status = status
        return status, body


def _short(text: Any, limit: int = 300) -> str:
    text = str(text)
    return text if len(text) <= limit else text[:limit] + "…"


def _api_error_detail(exc: CKANAPIError) -> tuple[int | None, str]:
    """ckanapi puts repr([url, status, body]) in an unrecognised error; read the status and a short body back."""
    raw = getattr(exc, "extra_msg", None)
    try:
        _url, status, body = ast.literal_eval(raw) if isinstance(raw, str) else (None, None, raw)
        return (int(status) if status is not None else None), _short(body, 200)
    except (ValueError, SyntaxError, TypeError):
        return None, _short(raw, 200)


class RemoteCatalog:
    def __init__(self, url: str, apikey: str | None = None, *, timeout: float = 30.0, retries: int = 3,
                 backoff: float = 1.0, sleep: Callable[[float], None] = time.sleep,
                 session: requests.Session | None = None):
        self.url = url.rstrip("/")
        self.ckan = _Recording(self.url, apikey=apikey, user_agent=USER_AGENT, session=session or requests.Session())
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = max(0.0, backoff)
        self.sleep = sleep
        self.retried = 0  # calls repeated after a transient failure, over the client's life

    def close(self) -> None:
        self.ckan.close()

    def call(self, action: str, data: dict[str, Any] | None = None,
             check: Callable[[Any], bool] | None = None) -> Any:
        """The action's result. `check` says whether a result has the expected shape (else: malformed, retried)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                result = self.ckan.call_action(action, dict(data or {}), requests_kwargs={"timeout": self.timeout})
            except FINAL as exc:
                raise self._final(action, exc, attempt) from exc
            except CKANAPIError as exc:
                status, body = _api_error_detail(exc)
                if status is not None and 400 <= status < 500 and status not in (408, 429):
                    raise Unsupported(action, f"HTTP {status} {body}", attempt, False) from exc
                problem = f"HTTP {status} {body}" if status and status >= 300 else f"应答不是 CKAN 格式的 JSON：{body}"
            except ServerIncompatibleError as exc:
                problem = f"应答不是 CKAN 格式的 JSON：{_short(exc, 200)}"
            except requests.Timeout:
                problem = f"超时（{self.timeout:g} 秒内无应答）"
            except requests.RequestException as exc:
                problem = f"连接失败：{_short(exc, 200)}"
            else:
                if check is None or check(result):
                    return result
                problem = f"应答结构不符合 CKAN 接口：{_short(result, 200)}"
            if attempt > self.retries:
                raise RemoteError(action, problem, attempt, True)
            self.retried += 1
            self.sleep(self.backoff * (2 ** (attempt - 1)))

    @staticmethod
    def _final(action: str, exc: Exception, attempt: int) -> RemoteError:
        if isinstance(exc, (SearchQueryError, SearchError, ValidationError)):
            return Unsupported(action, f"{type(exc).__name__}: {_short(exc, 200)}", attempt, False)
        if isinstance(exc, NotAuthorized):
            return DeniedRemote(action, f"无权访问（Authorization Error）：{_short(exc, 200)}", attempt, False)
        if isinstance(exc, NotFound):
            return NotFoundRemote(action, f"不存在（Not Found）：{_short(exc, 200)}", attempt, False)
        return RemoteError(action, f"{type(exc).__name__}: {_short(exc, 200)}", attempt, False)


class NotFoundRemote(RemoteError):
    """Not Found Error: the package (or action target) is not there."""


class DeniedRemote(RemoteError):
    """Authorization Error: the remote refuses this caller (a bad key, or a package no longer visible to it)."""
