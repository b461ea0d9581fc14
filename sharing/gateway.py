"""The sharing gateway's runtime: credential check, scope, quotas, serving rows, audit (one per call).

Per worker it keeps decoded versions (immutable, so safe to cache), each grant's scope over a version (row filter,
granted columns, masking and objection marks applied once) and recent client views (filter + sort). A call then only
slices and serialises. Identity comes from the credential alone. The credential's grant (its state, validity and the
dataset's latest version) is kept in worker memory only while the deployment's gateway generation stands — every
committed change to grants, credentials or datasets moves it, and each call's quota round trip reads it (see
`admit` and the change hooks at the end) — so revocation acts on the very next call; expiry is checked every call.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import logging
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Collection, Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy import bindparam, event, select
from sqlalchemy.orm import Session

from catalog.db import Database
from catalog.errors import DomainError, NotAuthenticated, NotFound
from catalog.models import Dataset, DatasetVersion, utcnow
from catalog.security import hash_token
from catalog.settings import Settings
from catalog.storage import Storage
from quality.models import ProblemTicket, QualityRun
from quality.tickets import ACTIVE
from sharing.audit import AuditWriter
from sharing.batching import Batch, ThreadedPass, settle
from sharing.engine import (
    OBJECTION_COLUMN,
    ColumnSpec,
    GatewayInputError,
    JsonRowBlocks,
    ScopeError,
    to_arrow_stream,
    bind_conditions,
    build_scope,
    decode_cursor,
    encode_cursor,
    make_view,
    page_json_with_rows,
    parse_conditions,
    parse_filter_params,
    parse_sort,
    to_csv,
    to_expression,
    to_parquet,
)
from sharing.models import Grant, GrantCredential
from sharing.policy import column_specs
from sharing.quota import Taken, quota_for

log = logging.getLogger(__name__)

FORMATS = {"json": "application/json", "csv": "text/csv; charset=utf-8",
           "arrow": "application/vnd.apache.arrow.stream", "parquet": "application/vnd.apache.parquet"}
DEFAULT_PAGE_ROWS = 100
# Views of a scope whose JSON rows are kept (each keeps its last few encoded blocks, see JsonRowBlocks).
JSON_VIEWS_KEPT = 8
# Built once: rebuilding this select per call cost ~1 ms of SQLAlchemy's time per gateway call (bench/gateway.py).
CALLER_QUERY = (
    select(GrantCredential.id, GrantCredential.revoked_at, Grant.id, Grant.kind, Grant.status, Grant.valid_until,
           Grant.grantee_user_id, Grant.consumer_department_id, Grant.provider_department_id, Grant.dataset_id,
           Grant.fields, Grant.row_filter, Grant.unmasked_fields, Grant.requests_per_minute, Grant.rows_per_day,
           Dataset.code, Dataset.status, Dataset.latest_version)
    .join(Grant, Grant.id == GrantCredential.grant_id).join(Dataset, Dataset.id == Grant.dataset_id)
    .where(GrantCredential.token_hash == bindparam("digest"))
)


def deployment_namespace(database_url: str) -> str:
    """The prefix of this deployment's counters (quotas, gateway generation): several deployments (or test runs) may
    share one Redis. Named by the database, so a process without a gateway finds the same keys."""
    return hashlib.sha256(database_url.encode()).hexdigest()[:12]


class TooManyRequests(DomainError):
    status_code = 429
    error = "rate_limited"

    def __init__(self, message: str, retry_after: int, **extra: Any):
        super().__init__(message, retry_after=retry_after, **extra)
        self.retry_after = retry_after


class Gone(DomainError):
    status_code = 409
    error = "not_collected"


class LruCache:
    """A small thread-safe LRU bounded by the summed `cost` of its values."""

    def __init__(self, capacity: float):
        self.capacity = capacity
        self.used = 0.0
        self.items: OrderedDict[Hashable, tuple[Any, float]] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        with self.lock:
            hit = self.items.get(key)
            if hit is None:
                return None
            self.items.move_to_end(key)
            return hit[0]

    def put(self, key: Hashable, value: Any, cost: float) -> Any:
        with self.lock:
            old = self.items.pop(key, None)
            if old is not None:
                self.used -= old[1]
            self.items[key] = (value, cost)
            self.used += cost
            while self.used > self.capacity and len(self.items) > 1:
                _, (_, c) = self.items.popitem(last=False)
                self.used -= c
            return value

    def clear(self) -> None:
        with self.lock:
            self.items.clear()
            self.used = 0


@dataclass
class Caller:
    """Who is calling, established from the credential alone."""

    credential_id: int
    grant_id: int
    grant_kind: str
    grantee_user_id: int
    consumer_department_id: int
    provider_department_id: int
    dataset_id: int
    dataset_code: str
    latest_version: int | None
    fields: list[str]
    row_filter: list[dict[str, Any]]
    unmasked: list[str]
    requests_per_minute: int
    rows_per_day: int
    valid_until: dt.datetime | None = None


@dataclass
class Scope:
    table: pa.Table  # granted columns (masked) + objection marks + positions, rows already filtered by the grant
    specs: list[ColumnSpec]
    item_objections: dict[str, list[int]]  # item → open ticket ids that dispute the item as a whole
    built_at: float
    views: dict[Hashable, pa.Table] = field(default_factory=dict)
    json_blocks: dict[Hashable, JsonRowBlocks] = field(default_factory=dict)  # of the views paged as JSON
    refreshing: bool = False

    @property
    def masked(self) -> dict[str, str]:
        return {s.code: s.mask for s in self.specs if s.mask}


@dataclass
class Page:
    body: bytes | memoryview  # memoryview: an Arrow buffer, sent without a copy
    media_type: str
    headers: dict[str, str]
    rows: int
    bytes: int


class GatewayRuntime:
    def __init__(self, db: Database, settings: Settings, storage: Storage):
        self.db = db
        self.settings = settings
        self.storage = storage
        self.tables = LruCache(settings.gateway_table_cache_bytes)
        self.scopes = LruCache(64)
        self.audit = AuditWriter(db)
        self.limiter = FixedWindowRateLimiter(storage_from_string(settings.rate_limit_storage))
        self.ns = deployment_namespace(db.url)
        self.quota = quota_for(settings.rate_limit_storage, self.ns)
        self.open_limit = parse(settings.open_rate_limit)
        self.cursor_secret = hashlib.sha256(b"gateway-cursor:" + settings.secret_key.encode()).digest()
        self._build_lock = threading.Lock()
        # credential digest → (caller, the generation it was read under, when it was read)
        self._callers: dict[str, tuple[Caller, int, float]] = {}
        self._generation = -1  # the latest generation a quota call returned; -1: none yet
        self._quota_pass = ThreadedPass(self._take_many, "gateway-quota", self._deliver_quota)
        _RUNTIMES.add(self)

    def close(self) -> None:
        self.audit.close()

    # --- identity --------------------------------------------------------------------------------------------------

    def authenticate(self, raw: str | None) -> Caller:
        if not raw:
            raise NotAuthenticated("需要调用凭证：Authorization: Bearer odg_…")
        token = raw.strip()
        if not token.startswith("odg_") or len(token) > 200:
            raise NotAuthenticated("调用凭证无效")
        digest = hash_token(self.settings.secret_key, token)
        with self.db.engine.connect() as conn:
            row = conn.execute(CALLER_QUERY, {"digest": digest}).first()
        if row is None:
            raise NotAuthenticated("调用凭证无效")
        (cred_id, cred_revoked, grant_id, kind, status, valid_until, grantee, consumer, provider, dataset_id, fields,
         row_filter, unmasked, rpm, rows_per_day, code, dataset_status, latest) = row
        if cred_revoked is not None:
            raise NotAuthenticated("调用凭证已吊销", grant_id=grant_id)
        if status == "revoked":
            raise NotAuthenticated("授权已吊销", grant_id=grant_id)
        if valid_until <= utcnow():
            raise NotAuthenticated("授权已过期", grant_id=grant_id)
        if str(getattr(dataset_status, "value", dataset_status)) != "published":
            raise NotFound(f"资源 {code} 不存在")
        return Caller(cred_id, grant_id, kind, grantee, consumer, provider, dataset_id, code, latest, list(fields),
                      list(row_filter or []), list(unmasked or []), rpm, rows_per_day, valid_until)

    async def admit(self, raw: str | None, want_for: Callable[[Caller], int]) -> tuple[Caller, Taken]:
        """The caller and this call's quota outcome (rows reserved, or why refused: `refuse_over_quota`), in one Redis
        round trip when the credential's grant is already in memory: the quota call also returns the gateway
        generation, and a grant read under an older generation (a grant, credential or dataset changed since) is
        read again before anything is served — so a revocation takes effect on the very next call.

        Refusals keep their order: a bad, revoked or expired credential is 401 even when its quota is spent."""
        if not raw:
            raise NotAuthenticated("需要调用凭证：Authorization: Bearer odg_…")
        digest = hash_token(self.settings.secret_key, raw.strip())
        known = self._callers.get(digest)
        now = time.monotonic()
        if known is not None and now - known[2] < CALLER_CACHE_SECONDS:
            caller, read_under, read_at = known
            if caller.valid_until is not None and caller.valid_until <= utcnow():
                self._callers.pop(digest, None)
                raise NotAuthenticated("授权已过期", grant_id=caller.grant_id)
        else:
            # The generation seen before this read (or none yet): the entry is re-read on the next call if a change
            # landed in between.
            read_under, read_at = self._generation, now
            caller = self.authenticate(raw)
        taken = await self._take_batched(caller, max(1, want_for(caller)))
        self._generation = taken.generation
        if taken.generation != read_under:
            try:
                fresh = self.authenticate(raw)
            except DomainError:
                self._callers.pop(digest, None)
                self.quota.give_back(caller.grant_id, taken.rows)
                raise
            if (fresh.requests_per_minute, fresh.rows_per_day) != (caller.requests_per_minute, caller.rows_per_day):
                self.quota.give_back(caller.grant_id, taken.rows)  # counted under the old limits: count again
                taken = await self._take_batched(fresh, max(1, want_for(fresh)))
            caller, read_under, read_at = fresh, taken.generation, now
        if len(self._callers) >= CALLER_CACHE_SIZE and digest not in self._callers:
            self._callers.pop(next(iter(self._callers)), None)
        self._callers[digest] = (caller, read_under, read_at)
        return caller, taken

    async def _take_batched(self, caller: Caller, want: int) -> Taken:
        """The quota call, sent with every other one this event loop makes in the same pass: one Redis round trip
        per pass instead of one per request, made from the quota thread while the loop serves on (sharing.batching
        .ThreadedPass)."""
        return await self._quota_pass.add((caller.grant_id, caller.requests_per_minute, caller.rows_per_day, want))

    def _take_many(self, calls: list[tuple[int, int, int, int]]) -> list[Taken]:  # on the quota thread or the loop
        return self.quota.take_many(calls)

    def _deliver_quota(self, batch: Batch, results: list[Any]) -> None:
        for (call, waiter), taken in zip(batch, results):
            if waiter.done() and not isinstance(taken, BaseException):
                self.quota.give_back(call[0], taken.rows)  # the request went away: its rows go back, its call counts
        settle(batch, results)

    def changed(self) -> None:
        """A grant, credential or dataset changed (committed): every worker re-reads its callers' grants."""
        self._callers.clear()
        self.quota.bump_generation()

    def refuse_other_dataset(self, code: str) -> None:
        """A dataset the credential does not cover: 403 `insufficient_scope` if it is in the catalog, else 404 (its
        existence is not revealed)."""
        with self.db.sessionmaker() as session:
            status = session.execute(select(Dataset.status).where(Dataset.code == code)).scalar_one_or_none()
        if status is None or getattr(status, "value", status) != "published":
            raise NotFound(f"资源 {code} 不存在")
        raise ScopeError(f"本凭证的授权不包含资源 {code}")

    # --- quotas ----------------------------------------------------------------------------------------------------

    def take_quota(self, caller: Caller, want: int) -> int:
        """Count this call against the grant's requests/minute and reserve up to `want` of today's rows."""
        taken = self.quota.take(caller.grant_id, caller.requests_per_minute, caller.rows_per_day, want)
        self.refuse_over_quota(caller, taken)
        return taken.rows

    @staticmethod
    def refuse_over_quota(caller: Caller, taken: Taken) -> None:
        if taken.refused == "rate":
            raise TooManyRequests(f"调用频率超过授权的每分钟 {caller.requests_per_minute} 次，请 {taken.retry_after} 秒后再试",
                                  taken.retry_after)
        if taken.refused == "rows":
            raise TooManyRequests(f"今日已读取授权的每日 {caller.rows_per_day} 行上限，请 {taken.retry_after} 秒后再试",
                                  taken.retry_after)

    def give_back(self, caller: Caller, rows: int) -> None:
        self.quota.give_back(caller.grant_id, rows)

    def check_open_rate(self, client: str) -> None:
        if not self.limiter.hit(self.open_limit, self.ns, "open", client):
            reset, _ = self.limiter.get_window_stats(self.open_limit, self.ns, "open", client)
            wait = max(1, int(reset - time.time()) + 1)
            raise TooManyRequests(f"下载过于频繁（{self.settings.open_rate_limit}），请 {wait} 秒后再试", wait)

    # --- data --------------------------------------------------------------------------------------------------------

    def version_table(self, dataset_id: int, version: int, columns: Collection[str]) -> pa.Table:
        """Those of `columns` that the published version has (an item added after it was published is not in it), in
        that order. Read from the version's Parquet file and kept for every scope on that version, only the columns
        some scope needs — a grant of 8 of 15 items reads 8 and its filter's (cold scope build on the benchmark's 1M
        rows: see README "### Gateway") — and a later scope needing more reads only the ones not kept yet."""
        key = (dataset_id, version)
        wanted = list(dict.fromkeys(columns))
        kept, in_file = self.tables.get(key) or (None, frozenset())
        if kept is None or any(c in in_file and c not in kept.column_names for c in wanted):
            with self.db.sessionmaker() as session:
                path = session.execute(select(DatasetVersion.path).where(
                    DatasetVersion.dataset_id == dataset_id, DatasetVersion.version == version)).scalar_one_or_none()
            if path is None:
                raise NotFound(f"版本 {version} 不存在")
            have = set(kept.column_names) if kept is not None else set()
            with self.storage.open(path, "rb") as fh:
                parquet = pq.ParquetFile(fh)
                in_file = frozenset(parquet.schema_arrow.names)
                read = parquet.read(columns=[c for c in wanted if c in in_file and c not in have]).combine_chunks()
            if kept is None:
                kept = read
            else:  # the same immutable file: the same rows in the same order
                if read.num_rows != kept.num_rows:
                    raise RuntimeError(f"版本文件 {path} 的行数与已读取的不一致")
                for name, column in zip(read.column_names, read.columns):
                    kept = kept.append_column(read.schema.field(name), column)
            self.tables.put(key, (kept, in_file), kept.nbytes)
        return kept.select([c for c in wanted if c in in_file])

    def scope(self, scope_key: Hashable, dataset_id: int, version: int,
              specs_for: Callable[[list], list[ColumnSpec]], row_filter: list[dict[str, Any]]) -> Scope:
        """The cached scope; built here when there is none. A scope whose objection marks are older than the refresh
        interval keeps serving while one background thread rebuilds it (a rebuild filters the whole version: on the
        event loop it would stall every connection of this worker)."""
        args = (scope_key, dataset_id, version, specs_for, row_filter)
        scope = self.scopes.get(scope_key)
        if scope is not None:
            if time.monotonic() - scope.built_at >= self.settings.gateway_objection_refresh_seconds \
                    and not scope.refreshing:
                scope.refreshing = True
                threading.Thread(target=self._refresh, args=args, daemon=True).start()
            return scope
        with self._build_lock:  # one build at a time per worker: concurrent first calls would each filter the table
            return self.scopes.get(scope_key) or self._build(*args)

    def _refresh(self, *args: Any) -> None:
        with self._build_lock:
            try:
                self._build(*args)
            except Exception:  # noqa: BLE001 - the old scope keeps serving; the next stale call tries again
                scope = self.scopes.get(args[0])
                if scope is not None:
                    scope.refreshing = False

    def _build(self, scope_key: Hashable, dataset_id: int, version: int,
               specs_for: Callable[[list], list[ColumnSpec]], row_filter: list[dict[str, Any]]) -> Scope:
        with self.db.sessionmaker() as session:
            dataset = session.get(Dataset, dataset_id)
            specs = specs_for(list(dataset.items))
            row_marks, item_marks = self._objections(session, dataset, version, {s.code for s in specs})
        parsed = parse_conditions(row_filter)
        table = self.version_table(dataset_id, version, [*(s.code for s in specs), *(c.field for c in parsed)])
        conds = bind_conditions(parsed, table.schema, allowed=None)
        scoped = build_scope(table, specs, to_expression(conds), row_marks)
        return self.scopes.put(scope_key, Scope(scoped, specs, item_marks, time.monotonic()), 1)

    def _objections(self, session, dataset: Dataset, version: int,  # noqa: ANN001
                    granted: set[str]) -> tuple[dict[str, np.ndarray], dict[str, list[int]]]:
        """Open problem tickets on granted items: rows failing the rule on this version, or the item as a whole."""
        tickets = session.execute(select(ProblemTicket).where(
            ProblemTicket.dataset_id == dataset.id, ProblemTicket.status.in_(ACTIVE),
            ProblemTicket.item_code.in_(granted))).scalars().all()
        rows: dict[str, list[np.ndarray]] = {}
        items: dict[str, list[int]] = {}
        served = session.execute(select(DatasetVersion.id).where(
            DatasetVersion.dataset_id == dataset.id, DatasetVersion.version == version)).scalar_one_or_none()
        for ticket in tickets:
            positions = self._ticket_rows(session, ticket, served)
            if positions is None:
                items.setdefault(ticket.item_code, []).append(ticket.id)
            else:
                rows.setdefault(ticket.item_code, []).append(positions)
        return {code: np.unique(np.concatenate(parts)) for code, parts in rows.items()}, items

    def _ticket_rows(self, session, ticket: ProblemTicket, served: int | None) -> np.ndarray | None:  # noqa: ANN001
        """Positions of the rows the ticket's rule failed, when its latest run checked the served version (id)."""
        if ticket.origin != "quality" or ticket.latest_run_id is None:
            return None  # a report (数据异议) names an item, not rows
        run = session.get(QualityRun, ticket.latest_run_id)
        if run is None or run.version_id != served or not run.failing_keys_path:
            return None  # the failing rows were found on another version: mark the item, not row positions
        with self.storage.open(run.failing_keys_path, "rb") as fh:
            found = pq.read_table(fh, filters=[("rule_id", "=", ticket.rule_id)], columns=["row"])
        return found.column("row").to_numpy().astype(np.int64)

    # --- serving ---------------------------------------------------------------------------------------------------

    def serve(self, scope: Scope, *, scope_id: Hashable, version: int, fmt: str, columns: str | None,
              filters: list[str], sort: str | None, limit: int | None, cursor: str | None,
              rows_left: int | None, meta: dict[str, Any], paged: tuple[str, ...] = ("json", "csv"),
              csv_bom: bool = False) -> Page:
        if fmt not in FORMATS:
            raise GatewayInputError(f"format 只能是 {', '.join(FORMATS)}，收到 {fmt!r}")
        granted = [s.code for s in scope.specs]
        masked = scope.masked
        selected = self._columns(columns, granted)
        parsed = parse_filter_params(filters)
        for cond in parsed:
            # Checked before binding, so a column outside the grant is refused the same way whether it exists or not.
            if cond.field not in granted:
                raise ScopeError(f"未授权字段 {cond.field} 不能用于筛选")
        conds = bind_conditions(parsed, scope.table.schema, allowed=granted, refused=list(masked))
        sort_keys = parse_sort(sort)
        for name, _ in sort_keys:
            if name not in granted:
                raise ScopeError(f"未授权字段 {name} 不能用于排序")
            if name in masked:
                raise ScopeError(f"脱敏字段 {name} 不能用于排序（排序会泄露被隐藏的部分）")
        fingerprint = hashlib.sha256(orjson.dumps([scope_id, version, filters, sort_keys, selected])).hexdigest()[:16]
        offset = 0
        if cursor:
            payload = decode_cursor(self.cursor_secret, cursor)
            if payload.get("f") != fingerprint or payload.get("v") != version:
                raise GatewayInputError("游标与本次查询的版本、筛选、排序或字段不一致：请用首次查询的同样参数继续翻页")
            offset = payload["o"]
        view_key = (fingerprint,)
        view = scope.views.get(view_key)
        if view is None:
            # Only what leaves (the fingerprint covers the columns): each call then only slices (selecting per call
            # cost ~4% of a worker's CPU under load).
            view = make_view(scope.table, conds, sort_keys).select([*selected, OBJECTION_COLUMN])
            if len(scope.views) > 32:
                scope.views.pop(next(iter(scope.views)))
            scope.views[view_key] = view
        total = view.num_rows
        ceiling = self.settings.gateway_max_page_rows
        if fmt in paged:
            if limit is not None and not 1 <= limit <= ceiling:
                raise GatewayInputError(f"limit 应在 1 到 {ceiling} 之间（收到 {limit}）；更多数据请用 cursor 翻页或 "
                                        "format=arrow / parquet")
            count = limit or DEFAULT_PAGE_ROWS
        else:
            if limit is not None and limit < 1:
                raise GatewayInputError(f"limit 应为正整数（收到 {limit}）")
            count = limit or total
        if rows_left is not None:
            count = min(count, rows_left)
        count = max(0, min(count, total - offset))
        if count and fmt not in paged:
            # The response-size ceiling: trim to it and hand back a cursor for the rest.
            per_row = max(1.0, view.nbytes / max(1, total))
            count = max(1, min(count, int(self.settings.gateway_max_response_bytes / per_row)))
        end = offset + count
        next_cursor = (encode_cursor(self.cursor_secret, {"v": version, "f": fingerprint, "o": end})
                       if end < total else None)
        headers = {"X-Total-Count": str(total), "X-Dataset-Version": str(version)}
        if next_cursor:
            headers["X-Next-Cursor"] = next_cursor
        if scope.item_objections:
            headers["X-Objection-Items"] = ",".join(sorted(scope.item_objections))
        if fmt == "json":
            blocks = scope.json_blocks.get(view_key)
            if blocks is None or blocks.table is not view:
                if len(scope.json_blocks) >= JSON_VIEWS_KEPT:  # (a download's digest may page from a thread)
                    scope.json_blocks.pop(next(iter(scope.json_blocks), None), None)
                blocks = scope.json_blocks[view_key] = JsonRowBlocks(view)
            body = page_json_with_rows(blocks.text(offset, count), {
                **meta, "version": version, "columns": selected,
                "masked": {c: masked[c] for c in selected if c in masked},
                "objections": {c: ids for c, ids in scope.item_objections.items() if c in selected},
                "total": total, "offset": offset, "count": count, "next_cursor": next_cursor})
        else:
            out = view.slice(offset, count)
            body = (to_csv(out, bom=csv_bom) if fmt == "csv" else to_parquet(out) if fmt == "parquet"
                    else to_arrow_stream(out))
        return Page(body, FORMATS[fmt], headers, count, len(body))

    @staticmethod
    def _columns(columns: str | None, granted: list[str]) -> list[str]:
        if not columns:
            return granted
        wanted = [c.strip() for c in columns.split(",")]
        if any(not c for c in wanted) or len(wanted) > len(granted) + 5:
            raise GatewayInputError("columns 应为逗号分隔的数据项代码")
        for c in wanted:
            if c not in granted:
                raise ScopeError(f"未授权字段 {c}：本授权只包含 {', '.join(granted)}")
        return list(dict.fromkeys(wanted))

    # --- helpers for the endpoints ---------------------------------------------------------------------------------

    def grant_scope(self, caller: Caller, version: int, dataset_items_specs: Callable[[list], list[ColumnSpec]]
                    ) -> Scope:
        key = ("grant", caller.grant_id, version)
        return self.scope(key, caller.dataset_id, version, dataset_items_specs, caller.row_filter)


# --- change tracking: who must re-read a grant ------------------------------------------------------------------------
# A committed change to a grant, a credential or a dataset (revocation, expiry moved, new version, withdrawal) bumps
# the gateway generation of every runtime in this process — in Redis, so every worker of the deployment sees it on
# its next quota call. A process without a gateway (the CLI delivering a version) bumps it through the settings'
# rate-limit storage. Over-bumping only costs a re-read.
CALLER_CACHE_SECONDS = 30.0  # a safety net for changes made outside the application (SQL by hand)
CALLER_CACHE_SIZE = 10_000
_WATCHED = (Grant, GrantCredential, Dataset)
_RUNTIMES: weakref.WeakSet[GatewayRuntime] = weakref.WeakSet()


@event.listens_for(Session, "after_flush")
def _note_watched_changes(session: Session, _context: Any) -> None:
    if any(isinstance(obj, _WATCHED) for obj in itertools.chain(session.new, session.dirty, session.deleted)):
        session.info["gateway_changed"] = True


@event.listens_for(Session, "do_orm_execute")
def _note_watched_statements(state: Any) -> None:
    if (state.is_update or state.is_delete or state.is_insert) and any(
            m.class_ in _WATCHED for m in state.all_mappers):
        state.session.info["gateway_changed"] = True


@event.listens_for(Session, "after_rollback")
def _forget_watched_changes(session: Session) -> None:
    session.info.pop("gateway_changed", None)


@event.listens_for(Session, "after_commit")
def _bump_after_commit(session: Session) -> None:
    if not session.info.pop("gateway_changed", False):
        return
    runtimes = list(_RUNTIMES)
    for runtime in runtimes:
        try:
            runtime.changed()
        except Exception:  # noqa: BLE001 - the change is committed; Redis being away must not turn it into an error
            log.warning("网关缓存失效通知失败（Redis 不可用？）；其他进程最迟 %s 秒后重新读取授权", CALLER_CACHE_SECONDS,
                        exc_info=True)
    if not runtimes:
        _bump_from_settings(session)


def _bump_from_settings(session: Session) -> None:
    from catalog.settings import get_settings

    try:
        storage = get_settings().rate_limit_storage
        url = session.info.get("database_url") or session.get_bind().url.render_as_string(hide_password=False)
        if storage.startswith(("redis://", "rediss://", "unix://")):
            quota_for(storage, deployment_namespace(url)).bump_generation()
    except Exception:  # noqa: BLE001 - the gateways re-read within CALLER_CACHE_SECONDS regardless
        pass


def grant_specs(caller: Caller) -> Callable[[list], list[ColumnSpec]]:
    return lambda items: column_specs(items, caller.fields, caller.unmasked)


def public_specs(items: list) -> list[ColumnSpec]:
    ordered = sorted(items, key=lambda i: i.position)
    return column_specs(ordered, [i.code for i in ordered], [])


def audit_entry(caller: Caller | None, action: str, status: int, detail: dict[str, Any]) -> dict[str, Any]:
    if caller is None:
        return {"kind": "gateway", "action": action, "status": status, "detail": detail, "at": utcnow()}
    return {"kind": "gateway" if caller.grant_kind == "share" else "open", "action": action, "status": status,
            "actor_user_id": caller.grantee_user_id, "actor_department_id": caller.consumer_department_id,
            "grant_id": caller.grant_id, "dataset_id": caller.dataset_id,
            "provider_department_id": caller.provider_department_id,
            "consumer_department_id": caller.consumer_department_id, "detail": detail, "at": utcnow()}


def pinned_version(latest: int | None, version: int | None, code: str) -> int:
    if latest is None:
        raise Gone(f"资源 {code} 尚未归集，没有可提供的数据")
    if version is None:
        return latest
    if not 1 <= version <= latest:
        raise NotFound(f"资源 {code} 没有版本 {version}（最新为 {latest}）")
    return version


def retry_headers(exc: DomainError) -> dict[str, str]:
    return {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyRequests) else {}


__all__ = ["GatewayRuntime", "Caller", "Scope", "Page", "TooManyRequests", "Gone", "grant_specs", "public_specs",
           "audit_entry", "pinned_version", "retry_headers"]
