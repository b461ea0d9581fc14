"""The hash-chained audit log: append (in the caller's transaction), group commit for the gateway, verify.

Every entry stores the previous entry's hash and its own: hash = SHA-256(prev_hash + canonical JSON of the entry's
fields). One row, `audit_head` (id 1), holds the chain's tip (seq, hash); a writer first takes a write lock on it, so
the entries of every worker process form a single chain, and the tip is updated in the same transaction as the
entries it covers. `verify` recomputes the chain and says where an entry was edited, deleted, inserted or moved, and
compares the tip with the last entry, which catches a deleted tail.

What the chain does not protect against: someone with write access to the database who also rewrites every later
entry and the tip (the algorithm is public). Anchoring the tip outside the database (e.g. printing `head_seq` and
the head hash into another system) closes that gap.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import fcntl
import hashlib
import logging
import math
import numbers
import operator
import os
import queue
import sqlite3
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, func, make_url, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, make_transient_to_detached

from catalog.db import Database, make_engine
from catalog.models import utcnow
from sharing.batching import Batch, PerLoopPass, settle
from sharing.models import AuditEntry, AuditHead

log = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
HASHED_FIELDS = ("seq", "at", "kind", "action", "status", "actor_user_id", "actor_department_id", "grant_id",
                 "request_id", "dataset_id", "provider_department_id", "consumer_department_id", "detail")
HEAD_ID = 1
MAX_PROBLEMS = 100

_ID_FIELDS = ("actor_user_id", "actor_department_id", "grant_id", "request_id", "dataset_id",
              "provider_department_id", "consumer_department_id")
_ENTRY_KEYS = frozenset(("kind", "action", "status", "detail", "at", *_ID_FIELDS))
_INT32 = (-(2**31), 2**31 - 1)  # INTEGER on PostgreSQL; SQLite would take more, so both refuse the same values
_INT64 = (-(2**63), 2**63 - 1)  # what orjson can serialise
_LOG = AuditEntry.__table__
_HEAD = AuditHead.__table__
_UTC = dt.timezone.utc
_KIND_LENGTH = _LOG.c.kind.type.length
_ACTION_LENGTH = _LOG.c.action.type.length


# --- hashing ------------------------------------------------------------------------------------------------------

def _iso(at: dt.datetime) -> str:
    if at.tzinfo is not _UTC:
        at = at.replace(tzinfo=_UTC) if at.tzinfo is None else at.astimezone(_UTC)  # naive: as UTCDateTime reads it
    return at.isoformat(timespec="microseconds")


def entry_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    """SHA-256 hex of `prev_hash` + canonical JSON (sorted keys, `at` as ISO-8601 UTC with microseconds) of the
    HASHED_FIELDS of `fields`. Equal for an entry as `append` writes it and as it is read back on either backend."""
    doc = {name: fields.get(name) for name in HASHED_FIELDS}
    at = doc["at"]
    if isinstance(at, dt.datetime):
        doc["at"] = _iso(at)
    if doc["detail"] is None:
        doc["detail"] = {}
    return hashlib.sha256(prev_hash.encode("ascii") + orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()


# --- validation -----------------------------------------------------------------------------------------------------

def _int(name: str, value: Any, bounds: tuple[int, int] = _INT32) -> int:
    if type(value) is int and bounds[0] <= value <= bounds[1]:  # the usual case, first (the writer's hot path)
        return value
    if isinstance(value, bool):
        raise ValueError(f"审计记录字段 {name} 应为整数，收到布尔值")
    try:
        number = operator.index(value)
    except TypeError:
        raise ValueError(f"审计记录字段 {name} 应为整数，收到 {type(value).__name__}") from None
    if not bounds[0] <= number <= bounds[1]:
        raise ValueError(f"审计记录字段 {name} 超出范围：{number}")
    return int(number)


def _text(name: str, value: Any, max_length: int) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"审计记录字段 {name} 应为非空字符串")
    if len(value) > max_length:
        raise ValueError(f"审计记录字段 {name} 超过 {max_length} 个字符：{value[:20]}…")
    if "\x00" in value:
        raise ValueError(f"审计记录字段 {name} 含有 NUL 字符")
    return value


def _json_value(value: Any) -> Any:
    """A copy of `value` that a JSON column hands back unchanged (so that its hash survives the round trip)."""
    t = type(value)
    if t is str or t is bool or value is None:
        return value
    if t is dict:
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                return _json_other(value)
            tv = type(v)
            # Plain values inline: one call per entry rather than one per detail field (the writer's hot path).
            out[k] = v if tv is str or tv is bool or v is None else _json_value(v)
        return out
    if t is list or t is tuple:
        return [_json_value(v) for v in value]
    if t is int:
        if not _INT64[0] <= value <= _INT64[1]:
            raise ValueError(f"审计记录 detail 中的整数超出 64 位范围：{value}")
        return value
    if t is float:
        if not math.isfinite(value):
            raise ValueError("审计记录 detail 中不能有 NaN 或无穷大")
        return value
    return _json_other(value)


def _json_other(value: Any) -> Any:
    """The rare cases of _json_value: subclasses, other mappings and sequences, keys that are not strings."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, numbers.Integral):  # also numpy integers
        return _json_value(int(value))
    if isinstance(value, numbers.Real):
        return _json_value(float(value))
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(key, int) and not isinstance(key, bool):
                key = str(int(key))  # what JSON makes of it
            elif isinstance(key, str):
                key = str(key)
            else:
                raise ValueError(f"审计记录 detail 中对象的键应为字符串，收到 {type(key).__name__}")
            if key in out:
                raise ValueError(f"审计记录 detail 中对象的键重复：{key}")
            out[key] = _json_value(item)
        return out
    if isinstance(value, (list, tuple)):
        return [_json_value(item) for item in value]
    raise ValueError(f"审计记录 detail 只能含字符串、数字、布尔、null、列表与对象，收到 {type(value).__name__}")


def _prepare(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The row of one entry, validated and normalised (without seq and hashes)."""
    if not isinstance(entry, Mapping):
        raise ValueError(f"审计记录应为字典，收到 {type(entry).__name__}")
    if not entry.keys() <= _ENTRY_KEYS:
        unknown = set(entry) - _ENTRY_KEYS
        raise ValueError(f"审计记录含未知字段：{', '.join(sorted(map(str, unknown)))}")
    missing = [k for k in ("kind", "action", "status") if entry.get(k) is None]
    if missing:
        raise ValueError(f"审计记录缺少字段：{', '.join(missing)}")
    at = entry.get("at")
    if at is None:
        at = utcnow()
    elif not isinstance(at, dt.datetime):
        raise ValueError(f"审计记录字段 at 应为 datetime，收到 {type(at).__name__}")
    elif at.tzinfo is None:
        at = at.replace(tzinfo=_UTC)
    else:
        at = at.astimezone(_UTC)
    detail = entry.get("detail")
    if detail is None:
        detail = {}
    elif not isinstance(detail, Mapping):
        raise ValueError(f"审计记录字段 detail 应为字典，收到 {type(detail).__name__}")
    row = {
        "at": at,
        "kind": _text("kind", entry["kind"], _KIND_LENGTH),
        "action": _text("action", entry["action"], _ACTION_LENGTH),
        "status": _int("status", entry["status"]),
        "detail": _json_value(detail),
    }
    for name in _ID_FIELDS:
        value = entry.get(name)
        row[name] = None if value is None else _int(name, value)
    return row


# --- appending ------------------------------------------------------------------------------------------------------

_INSERT_COLUMNS = ("seq", "at", "kind", "action", "status", *_ID_FIELDS, "detail", "prev_hash", "hash")
_insert_cache: dict[str, tuple[str, str, Any]] = {}


def _insert_parts(conn: Connection) -> tuple[str, str, Any]:
    """INSERT … VALUES and one row's placeholders for the DB-API, with the dialect's bind processor for `at`.

    Entries go to the DB-API directly (executemany on SQLite, COPY on PostgreSQL): SQLAlchemy's per-row parameter
    processing cost more than everything else. `at` is still converted by UTCDateTime and the dialect's own
    processor (the stored value is what SQLAlchemy writes and compares with), and `detail` is written as orjson's
    compact JSON, which every JSON column reads back as the same value.
    """
    dialect = conn.dialect
    cached = _insert_cache.get(dialect.name)
    if cached is None:
        mark = {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(dialect.paramstyle)
        if mark is None:
            raise RuntimeError(f"不支持的参数风格: {dialect.paramstyle}")
        quote = dialect.identifier_preparer.quote
        head = (f"INSERT INTO {dialect.identifier_preparer.format_table(_LOG)} "
                f"({', '.join(quote(c) for c in _INSERT_COLUMNS)}) VALUES ")
        values = f"({', '.join([mark] * len(_INSERT_COLUMNS))})"
        cached = _insert_cache[dialect.name] = (head, values,
                                                _LOG.c.at.type.dialect_impl(dialect).bind_processor(dialect))
    return cached


def _rows_per_insert(conn: Connection) -> int:
    """Rows one multi-row INSERT may carry within the connection's bound-parameter limit (SQLite: 32,766 by default,
    999 in builds before 3.32)."""
    dbapi = conn.connection.dbapi_connection
    limit = dbapi.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) if isinstance(dbapi, sqlite3.Connection) else 999
    return max(1, min(1000, limit // len(_INSERT_COLUMNS)))


def _copy_sql(conn: Connection) -> str:
    quote = conn.dialect.identifier_preparer.quote
    return (f"COPY {conn.dialect.identifier_preparer.format_table(_LOG)} "
            f"({', '.join(quote(c) for c in _INSERT_COLUMNS)}) FROM STDIN")


def _head_sql(conn: Connection) -> tuple[str, str]:
    """Plain SQL for the two head statements: on the hot path, building and compiling Core statements per batch cost
    ~0.8 ms of the writer thread's time (bench/gateway.py), against ~0.25 ms for these."""
    table = conn.dialect.identifier_preparer.format_table(_HEAD)
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    lock = f"UPDATE {table} SET seq = seq WHERE id = {HEAD_ID}"
    return lock, f"UPDATE {table} SET seq = {mark}, hash = {mark} WHERE id = {HEAD_ID}"


def _lock_head(conn: Connection, execute: Callable[..., Any]) -> tuple[int, str]:
    # A write first: SQLite takes its write lock now (a read first could later fail to upgrade with
    # SQLITE_BUSY_SNAPSHOT), PostgreSQL the head row's lock; both held until the transaction ends.
    lock, _ = _head_sql(conn)
    if conn.dialect.update_returning:
        found = execute(lock + " RETURNING seq, hash").fetchall()  # all of it: no statement left running
        row = found[0] if found else None
    else:
        row = None
        if execute(lock).rowcount == 1:
            row = conn.execute(select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == HEAD_ID)).one()
    if row is None:
        raise RuntimeError("审计链头记录（audit_head id=1）不存在，数据库迁移是否完整？")
    return int(row[0]), row[1]


def _append_rows(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Chain `rows` (prepared) onto the head inside the connection's current transaction; fills seq and hashes."""
    dbapi = conn.connection.dbapi_connection
    if isinstance(dbapi, sqlite3.Connection):
        # SQLite: the module's own cursor, in the same transaction. Through SQLAlchemy's exec_driver_sql the head
        # lock alone cost ~125 µs of CPU a commit against ~15 µs this way. (PostgreSQL keeps SQLAlchemy's execution:
        # its wrapped errors tell the writer when a dead connection may be replaced and the batch tried again.)
        cursor = dbapi.cursor()
        try:
            _append_with(conn, rows, cursor.execute)
        finally:
            cursor.close()
    else:
        _append_with(conn, rows, conn.exec_driver_sql)


def _append_with(conn: Connection, rows: list[dict[str, Any]], execute: Callable[..., Any]) -> None:
    head, values, at_bind = _insert_parts(conn)
    seq, prev = _lock_head(conn, execute)
    params = []
    for row in rows:
        seq += 1
        row["seq"] = seq
        row["prev_hash"] = prev
        row["hash"] = prev = entry_hash(prev, row)
        params.append((seq, at_bind(row["at"]) if at_bind else row["at"], row["kind"], row["action"], row["status"],
                       row["actor_user_id"], row["actor_department_id"], row["grant_id"], row["request_id"],
                       row["dataset_id"], row["provider_department_id"], row["consumer_department_id"],
                       orjson.dumps(row["detail"]).decode(), row["prev_hash"], row["hash"]))
    if conn.dialect.name == "postgresql" and len(params) > 1:
        # COPY: executemany would run one INSERT per row, each parsed and planned (the engine turns server-side
        # prepared statements off), and a long multi-row VALUES costs psycopg more to parse than COPY costs.
        with conn.connection.dbapi_connection.cursor() as cursor, cursor.copy(_copy_sql(conn)) as copy:
            for p in params:
                copy.write_row(p)
    else:
        # One multi-row INSERT per chunk, not executemany. The sqlite3 module lets go of the GIL around every row
        # executemany steps, and in a server the event loop takes it each time: the writer then waits out a GIL
        # switch interval (5 ms) per row and spends ~10x the CPU in the hand-overs (16 → 150 µs an entry with a
        # busy Python thread beside it; measured with the sqlite3 module alone).
        per_insert = _rows_per_insert(conn)
        for start in range(0, len(params), per_insert):
            chunk = params[start:start + per_insert]
            execute(head + ", ".join([values] * len(chunk)), tuple(v for p in chunk for v in p))
    execute(_head_sql(conn)[1], (seq, prev))


def append(session: Session, entries: Sequence[Mapping[str, Any]]) -> list[AuditEntry]:
    """Append `entries` to the chain inside the session's transaction; the caller commits.

    Entry keys: kind, action, status (0 for decisions) and optionally actor_user_id, actor_department_id, grant_id,
    request_id, dataset_id, provider_department_id, consumer_department_id, detail (a dict of JSON values) and at
    (default now). Unknown keys or values that would not survive the database unchanged raise ValueError.

    The head lock is held until the caller's transaction ends, so make this the transaction's last write.
    """
    rows = [_prepare(entry) for entry in entries]
    if not rows:
        return []
    # The caller's pending changes take their locks first: one lock order (theirs, then the head) for everybody.
    session.flush()
    _append_rows(session.connection(), rows)
    out = []
    for row in rows:
        obj = AuditEntry(**row)
        make_transient_to_detached(obj)  # it is in the database already: attach as persistent, no second INSERT
        session.add(obj)
        out.append(obj)
    return out


# --- group commit ---------------------------------------------------------------------------------------------------

_STOP = object()
_WRITERS: weakref.WeakSet[AuditWriter] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for writer in list(_WRITERS):
        writer._reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class AuditWriter:
    """Group commit for the gateway hot path: one background thread, one transaction per batch.

    `submit` queues an entry; the thread takes whatever is queued (up to `max_batch`), appends it in one
    transaction, commits — synchronously durable — and only then resolves the futures with the entries' seq.
    The thread and its connection start with the first submit, so the writer may be built before a fork; a forked
    child starts its own. Call `close` at shutdown: it flushes what is queued.
    """

    def __init__(self, db: Database, max_batch: int = 1000):
        if max_batch < 1:
            raise ValueError("max_batch 至少为 1")
        self.db = db
        self.max_batch = max_batch
        self._closed = False
        self._reset()
        _WRITERS.add(self)

    def _reset(self) -> None:
        # Also run in a forked child: the parent's thread, queue and lock state do not carry over.
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop_pass = PerLoopPass(self._flush_loop_batch)

    def submit(self, entry: Mapping[str, Any]) -> concurrent.futures.Future[int]:
        """Queue `entry` (keys as for `append`); the future resolves to its seq once committed, or to the error."""
        future: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._put(_Job([_stamped(entry)], future, many=False))
        return future

    def submit_many(self, entries: Sequence[Mapping[str, Any]]) -> concurrent.futures.Future[list[Any]]:
        """Queue several entries as one job; the future resolves, once they are committed, to a list holding each
        entry's seq — or the exception that refused that entry alone — or to the error that failed them all."""
        return self._submit_stamped([_stamped(e) for e in entries])

    def _submit_stamped(self, entries: list[Any]) -> concurrent.futures.Future[list[Any]]:
        future: concurrent.futures.Future[list[Any]] = concurrent.futures.Future()
        self._put(_Job(entries, future, many=True))
        return future

    def _put(self, job: _Job) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("审计写入器已关闭")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, args=(self._queue,), name="audit-writer",
                                                daemon=True)
                self._thread.start()
            self._queue.put(job)

    async def write(self, entry: Mapping[str, Any]) -> int:
        """The entry's seq once it is committed. Entries written on one event loop during one pass of it go to the
        writer thread as one job: the group commit then holds every request the pass served, whatever blocking
        work each did first, and the loop is woken once per commit rather than per entry."""
        return await self._loop_pass.add(_stamped(entry))

    def _flush_loop_batch(self, batch: Batch) -> None:
        loop = asyncio.get_running_loop()
        try:
            job = self._submit_stamped([entry for entry, _waiter in batch])  # stamped by `write`
        except BaseException as exc:  # noqa: BLE001 - closed: every waiter learns it
            settle(batch, [exc] * len(batch))
            return

        def committed(done: concurrent.futures.Future[list[Any]]) -> None:
            try:
                results = done.result()
            except BaseException as exc:  # noqa: BLE001
                results = [exc] * len(batch)
            settle(batch, results)

        job.add_done_callback(lambda done: loop.call_soon_threadsafe(committed, done))

    def close(self, timeout: float = 10) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
            if thread is not None:
                self._queue.put(_STOP)
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.warning("审计写入器在 %s 秒内未写完，后台继续写入", timeout)

    # --- the thread ---

    def _run(self, q: queue.SimpleQueue[Any]) -> None:
        state = _Conn(self.db.url)
        try:
            stop = False
            while not stop:
                item = q.get()
                if item is _STOP:
                    break
                jobs, entries = [item], len(item.entries)
                while entries < self.max_batch:
                    try:
                        item = q.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stop = True
                        break
                    jobs.append(item)
                    entries += len(item.entries)
                self._write_batch(state, jobs)
        finally:
            state.close()
            with self._lock:
                if q is self._queue:
                    self._closed = True  # normally already; if the thread died, no future may wait for it
            while True:
                try:
                    item = q.get_nowait()
                except queue.Empty:
                    break
                if item is not _STOP and not item.future.done():
                    item.future.set_exception(RuntimeError("审计写入器已停止"))

    def _write_batch(self, state: _Conn, jobs: list[_Job]) -> None:
        rows: list[dict[str, Any]] = []
        outcomes: list[list[Any]] = []  # per job, per entry: the prepared row or the exception refusing it
        live: list[bool] = []
        try:
            for job in jobs:
                # A cancelled future (its request went away) still gets its entries written: the call happened.
                live.append(job.future.set_running_or_notify_cancel())
                results: list[Any] = []
                for entry in job.entries:
                    try:
                        row = _prepare(entry)
                    except Exception as exc:  # noqa: BLE001 - this entry alone is refused
                        results.append(exc)
                        continue
                    rows.append(row)
                    results.append(row)
                outcomes.append(results)
            if rows:
                state.append(rows)
        except BaseException as exc:  # noqa: BLE001 - every future learns the outcome; the thread goes on
            log.exception("审计日志写入失败（%d 条）", sum(len(job.entries) for job in jobs))
            for job in jobs:
                if not job.future.done():
                    try:
                        job.future.set_exception(exc)
                    except concurrent.futures.InvalidStateError:
                        pass
            return
        for job, results, is_live in zip(jobs, outcomes, live):
            if not is_live:
                continue
            seqs = [r if isinstance(r, BaseException) else r["seq"] for r in results]
            if job.many:
                job.future.set_result(seqs)
            elif isinstance(seqs[0], BaseException):
                job.future.set_exception(seqs[0])
            else:
                job.future.set_result(seqs[0])


@dataclass
class _Job:
    entries: list[Any]
    future: concurrent.futures.Future[Any]
    many: bool


def _stamped(entry: Any) -> Any:
    # A copy (the caller may reuse its dict), timed now rather than when the batch is written.
    entry = dict(entry) if isinstance(entry, Mapping) else entry
    if isinstance(entry, dict) and entry.get("at") is None:
        entry["at"] = utcnow()
    return entry


class _FileLock:
    def __init__(self, fd: int):
        self.fd = fd

    def __enter__(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_EX)  # releases the GIL while it waits

    def __exit__(self, *_exc: Any) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)


class _Conn:
    """The writer thread's own engine and connection (synchronous commits), reopened after a failure."""

    def __init__(self, url: str):
        self.url = url
        self.engine: Engine | None = None
        self.conn: Connection | None = None
        self._lock_fd: int | None = None
        database = make_url(url).database if url.startswith("sqlite") else None
        if database and database != ":memory:" and not database.startswith("file:"):
            self._lock_fd = os.open(database + ".audit-lock", os.O_RDWR | os.O_CREAT, 0o600)

    def _open(self) -> Connection:
        if self.engine is None:
            # Its own engine: never a pooled connection inherited across a fork, never short of the app's pool.
            self.engine = make_engine(self.url)
        conn = self.engine.connect()
        if conn.dialect.name == "sqlite":
            # Durable at commit even if the app's engine is ever configured with synchronous=NORMAL.
            conn.exec_driver_sql("PRAGMA synchronous=FULL")
        elif conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET synchronous_commit TO on")
        conn.commit()
        return conn

    def _queue_for_sqlite_writes(self) -> contextlib.AbstractContextManager[Any]:
        """On a SQLite file, the writers of every worker process take turns through an OS file lock before they
        begin: waiting on SQLite's own lock means sleeping in its busy handler (up to 100 ms a nap) while the other
        worker commits again and again — one worker's audit entries, and the answers that wait for them, starved
        for hundreds of milliseconds (bench/gateway.py, p99). A blocked flock wakes as soon as the lock is free."""
        if self._lock_fd is None:
            return contextlib.nullcontext()
        return _FileLock(self._lock_fd)

    def append(self, rows: list[dict[str, Any]]) -> None:
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = self._open()
            with self._queue_for_sqlite_writes():
                if self._append_once(rows, attempt):
                    return

    def _append_once(self, rows: list[dict[str, Any]], attempt: int) -> bool:
        """True when committed; False when a dead connection should be replaced and the rows tried again."""
        conn = self.conn
        trans = conn.begin()
        try:
            _append_rows(conn, rows)
        except BaseException as exc:
            self._discard_after(trans)
            # A connection found dead before COMMIT (e.g. the server restarted while it idled): nothing was
            # written, so one more try on a fresh connection is safe. Rows keep no state from the failed try.
            if attempt == 1 and isinstance(exc, DBAPIError) and exc.connection_invalidated:
                return False
            raise
        try:
            trans.commit()
        except BaseException:
            self._discard_after(trans)  # the outcome of a failed COMMIT is unknown: no retry
            raise
        return True

    def _discard_after(self, trans: Any) -> None:
        try:
            if trans.is_active:
                trans.rollback()
        except Exception:  # noqa: BLE001
            pass
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.invalidate()
                conn.close()
            except Exception:  # noqa: BLE001
                pass

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # noqa: BLE001
                pass
            self.conn = None
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


# --- searching ------------------------------------------------------------------------------------------------------

def search(session: Session, principal: Any, dataset: str | None = None, grant_id: int | None = None,
           kind: str | None = None, offset: int = 0, limit: int = 50) -> tuple[int, list[AuditEntry]]:
    """Entries newest first: the steward sees all; a department the use of its data (provider) and its own calls
    and requests (consumer); outside users none."""
    from catalog.errors import PermissionDenied
    from catalog.models import Dataset
    from catalog.permissions import require_principal

    p = require_principal(principal)
    if p.is_external:
        raise PermissionDenied("审计日志仅向政务部门用户开放")
    query = select(AuditEntry)
    if not p.is_steward:
        query = query.where((AuditEntry.provider_department_id == p.department_id) |
                            (AuditEntry.consumer_department_id == p.department_id))
    if dataset:
        ds = session.execute(select(Dataset.id).where(Dataset.code == dataset)).scalar_one_or_none()
        query = query.where(AuditEntry.dataset_id == (ds or -1))
    if grant_id:
        query = query.where(AuditEntry.grant_id == grant_id)
    if kind:
        query = query.where(AuditEntry.kind == kind)
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = session.execute(query.order_by(AuditEntry.seq.desc()).offset(offset).limit(limit)).scalars().all()
    return total, list(rows)


# --- verification ---------------------------------------------------------------------------------------------------

@dataclass
class Problem:
    seq: int | None
    kind: str  # edited | missing | inserted | reordered | truncated | head_mismatch
    message: str


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    head_seq: int
    problems: list[Problem] = field(default_factory=list)


@dataclass
class _Row:
    """An entry that does not fit where it is, kept for the analysis after the scan."""

    seq: int
    prev_hash: str
    hash: str
    fields: dict[str, Any]
    orig: int | None  # the seq its hash verifies with; None: none of the candidates (content edited)
    link_ok: bool  # prev_hash equals the stored hash of the entry before it
    gap: tuple[int, int] | None  # seqs missing right before it
    shift_before: int  # seq minus original seq of the entries before it (non-zero after a renumbering)
    next_shift: int | None | bool = False  # the next entry's shift; None: unknown; False: this is the last entry


_SCAN_COLUMNS = [_LOG.c[name] for name in HASHED_FIELDS] + [_LOG.c.prev_hash, _LOG.c.hash]
_MAX_KEPT = 1000


def _seq_span(first: int, last: int) -> str:
    return f"第 {first} 条" if first == last else f"第 {first} 条至第 {last} 条"


def _verifies(prev_hash: str, fields: dict[str, Any], seq: int, stored_hash: str) -> bool:
    """Whether the entry's hash is right for it at position `seq` (its stored seq or a candidate original one)."""
    if fields["seq"] == seq:
        return entry_hash(prev_hash, fields) == stored_hash
    return entry_hash(prev_hash, {**fields, "seq": seq}) == stored_hash


def verify(session: Session, batch: int = 10_000) -> VerifyResult:
    """Recompute the chain: every entry's hash from its stored fields and prev_hash, the links between consecutive
    entries, seqs 1..n without gaps, and the head row against the last entry. Streams by seq (keyset pagination).

    Reports at most MAX_PROBLEMS problems in chain order, each naming the seq where it is.
    """
    if batch < 1:
        raise ValueError("batch 至少为 1")
    kept: list[_Row] = []
    overflow = False
    checked = 0
    last_seq, last_hash = 0, GENESIS_HASH
    shift = 0  # seq minus original seq of the last entry whose original seq is known

    def scan(after: int) -> int:
        nonlocal overflow, checked, last_seq, last_hash, shift
        seen = 0
        while True:
            chunk = session.execute(select(*_SCAN_COLUMNS).where(_LOG.c.seq > after)
                                    .order_by(_LOG.c.seq).limit(batch)).all()
            for values in chunk:
                fields = dict(zip(HASHED_FIELDS, values[:13]))
                prev_hash, stored_hash = values[13], values[14]
                seq = fields["seq"]
                checked += 1
                seen += 1
                gap = (last_seq + 1, seq - 1) if seq > last_seq + 1 else None
                link_ok = gap is None and prev_hash == last_hash
                # Where the hash fits: here (after any renumbering seen so far), or one place off.
                orig = None
                for candidate in dict.fromkeys((seq - shift, seq, seq - 1, seq + 1)):
                    if candidate >= 1 and _verifies(prev_hash, fields, candidate, stored_hash):
                        orig = candidate
                        break
                row_shift = shift if orig is None else seq - orig
                if kept and kept[-1].seq == last_seq and kept[-1].next_shift is False:
                    kept[-1].next_shift = None if orig is None else row_shift
                if gap is not None or orig is None or not link_ok or row_shift != shift:
                    if len(kept) < _MAX_KEPT:
                        kept.append(_Row(seq, prev_hash, stored_hash, fields, orig, link_ok, gap, shift))
                    else:
                        overflow = True
                last_seq, last_hash, shift = seq, stored_hash, row_shift
            if len(chunk) < batch:
                return seen
            after = last_seq

    def read_head() -> tuple[int, str] | None:
        row = session.execute(select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == HEAD_ID)).one_or_none()
        return None if row is None else (int(row[0]), row[1])

    scan(0)
    # Entries appended while we read commit together with a newer head: read on until the head is covered.
    while True:
        head = read_head()
        if head is None or head[0] <= last_seq or not scan(last_seq):
            break

    problems = _classify(session, kept, batch, last_seq)
    problems += _check_head(session, head, last_seq, last_hash, shift)
    if overflow and len(problems) < MAX_PROBLEMS:
        problems.append(Problem(None, "edited", f"异常记录过多，仅分析了前 {_MAX_KEPT} 条"))
    return VerifyResult(ok=not problems, checked=checked, head_seq=head[0] if head else 0,
                        problems=problems[:MAX_PROBLEMS])


def _locate(session: Session, hashes: set[str], batch: int, upto: int) -> dict[str, int]:
    """Where (stored seq) each of `hashes` is an entry's hash: one more keyset scan, over (seq, hash) only."""
    found: dict[str, int] = {}
    after = 0
    while hashes - found.keys():
        chunk = session.execute(select(_LOG.c.seq, _LOG.c.hash).where(_LOG.c.seq > after, _LOG.c.seq <= upto)
                                .order_by(_LOG.c.seq).limit(batch)).all()
        for seq, value in chunk:
            if value in hashes and value not in found:
                found[value] = seq
        if len(chunk) < batch:
            break
        after = chunk[-1][0]
    return found


def _classify(session: Session, kept: list[_Row], batch: int, upto: int) -> list[Problem]:
    if not kept:
        return []
    by_seq = {r.seq: r for r in kept}
    # An entry whose hash fits no nearby seq may have been moved far: its predecessor's hash tells where it was.
    lookups = {r.prev_hash for r in kept if (r.orig is None or not r.link_ok) and r.prev_hash != GENESIS_HASH}
    where = _locate(session, lookups, batch, upto) if lookups else {}
    for r in kept:
        if r.orig is None:
            candidates = [1] if r.prev_hash == GENESIS_HASH else []
            m = where.get(r.prev_hash)
            if m is not None:
                candidates.append(m + 1)
                if m in by_seq and by_seq[m].orig is not None:
                    candidates.append(by_seq[m].orig + 1)
            for candidate in dict.fromkeys(candidates):
                if _verifies(r.prev_hash, r.fields, candidate, r.hash):
                    r.orig = candidate
                    break

    problems: list[Problem] = []
    moved: set[int] = set()
    base: dict[int, int] = {}  # the shift in force before each kept entry, ignoring entries moved on their own
    for r in kept:
        s = r.seq
        before = by_seq.get(s - 1)
        shift_before = base[s - 1] if before is not None and s - 1 in moved else r.shift_before
        base[s] = shift_before
        if r.gap is not None:
            first, last = r.gap
            problems.append(Problem(first, "missing", f"{_seq_span(first, last)}记录缺失（被删除）"))
        if r.orig is None:
            problems.append(Problem(s, "edited", f"第 {s} 条记录内容被修改（哈希不符）"))
            continue
        new_shift = s - r.orig
        if new_shift != shift_before:
            if r.next_shift is not False and r.next_shift != new_shift:
                # The entries after it do not follow it: this one alone was moved (e.g. two entries swapped).
                moved.add(s)
                problems.append(Problem(s, "reordered",
                                        f"第 {s} 条记录的位置被改动（其内容原为第 {r.orig} 条，记录顺序被调换）"))
            elif new_shift > shift_before:
                d = new_shift - shift_before
                problems.append(Problem(s - d, "inserted",
                                        f"{_seq_span(s - d, s - 1)}记录是插入的（不在原链中；自第 {s} 条起的记录"
                                        f"序号被整体后移 {d} 位）"))
            else:
                d = shift_before - new_shift
                first = r.orig - d
                problems.append(Problem(first, "missing",
                                        f"原{_seq_span(first, r.orig - 1)}记录缺失（被删除；其后记录的序号被整体"
                                        f"前移 {d} 位，原第 {r.orig} 条现为第 {s} 条）"))
            continue
        if r.gap is not None or r.link_ok:
            continue
        # In its place and its own hash fine, but prev_hash is not the stored hash of the entry before it.
        if before is not None and (s - 1 in moved or before.orig is None):
            continue  # that entry was reported (moved or edited); this broken link follows from it
        m = where.get(r.prev_hash)
        if m is not None and m in moved:
            continue
        if m is not None:
            problems.append(Problem(s, "reordered", f"第 {s} 条记录的前序哈希指向第 {m} 条，而不是第 {s - 1} 条"
                                                    f"（记录顺序被调换）"))
        else:
            problems.append(Problem(s - 1, "edited", f"第 {s - 1} 条记录被改写或替换（其哈希被重新计算，与第 {s} 条"
                                                     f"记录的前序哈希不符）"))
    return problems


def _check_head(session: Session, head: tuple[int, str] | None, last_seq: int, last_hash: str,
                shift: int) -> list[Problem]:
    if head is None:
        return [Problem(None, "head_mismatch", "链头记录（audit_head id=1）不存在")]
    head_seq, head_hash = head
    if head_seq == last_seq:
        if head_hash == last_hash:
            return []
        what = f"第 {last_seq} 条记录的哈希" if last_seq else "创世哈希（日志为空）"
        return [Problem(last_seq or None, "head_mismatch", f"链头哈希与{what}不符（该记录或链头被篡改）")]
    if head_seq > last_seq:
        if head_hash == last_hash and shift < 0:
            return [Problem(last_seq, "head_mismatch", f"链头记录为第 {head_seq} 条，但日志最后一条为第 {last_seq} 条"
                                                       f"（记录序号被改动）")]
        tail = f"日志最后一条为第 {last_seq} 条" if last_seq else "日志中已没有记录"
        return [Problem(last_seq + 1, "truncated", f"{_seq_span(last_seq + 1, head_seq)}记录缺失（日志尾部被删除；"
                                                   f"链头记录为第 {head_seq} 条，{tail}）")]
    if head_hash == last_hash:
        return [Problem(head_seq, "head_mismatch", f"链头记录为第 {head_seq} 条，但日志最后一条为第 {last_seq} 条"
                                                   f"（记录序号被改动）")]
    at_head = GENESIS_HASH if head_seq == 0 else session.execute(
        select(_LOG.c.hash).where(_LOG.c.seq == head_seq)).scalar_one_or_none()
    if at_head == head_hash:
        return [Problem(head_seq + 1, "inserted", f"{_seq_span(head_seq + 1, last_seq)}记录是插入的（位于链头"
                                                  f"第 {head_seq} 条之后，未经审计写入）")]
    return [Problem(head_seq, "head_mismatch",
                    f"链头记录（第 {head_seq} 条）与日志不符：日志最后一条为第 {last_seq} 条，哈希也不一致")]
