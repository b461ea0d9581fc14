"""The hash-chained audit log (sharing/audit.py): append, group commit across workers, verify and its diagnoses."""
from __future__ import annotations

import asyncio
import datetime as dt
import multiprocessing
import os
import threading
import time
from concurrent.futures import Future

import pytest
import typer
from sqlalchemy import delete, func, insert, select, text, update
from typer.testing import CliRunner

from catalog.db import Database
from sharing import audit
from sharing.audit import GENESIS_HASH, HASHED_FIELDS, AuditWriter, append, entry_hash, verify
from sharing.cli import audit_app
from sharing.models import AuditEntry, AuditHead

LOG = AuditEntry.__table__
HEAD = AuditHead.__table__


def _entry(i: int, **over) -> dict:
    entry = {
        "kind": "gateway", "action": "rows.read", "status": 200, "actor_user_id": 3, "actor_department_id": 2,
        "grant_id": 10 + i % 3, "request_id": None, "dataset_id": 5, "provider_department_id": 2,
        "consumer_department_id": 4,
        "detail": {"i": i, "rows": 100, "fields": ["xm", "sfzh"], "scope": {"区县": "西湖区", "ok": True},
                   "elapsed": 0.125, "note": None},
    }
    entry.update(over)
    return entry


def _chain(db: Database, n: int = 20) -> None:
    with db.session() as session:
        append(session, [_entry(i) for i in range(1, n + 1)])


def _rows(db: Database) -> list[dict]:
    with db.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(LOG).order_by(LOG.c.seq))]


def _head(db: Database) -> tuple[int, str]:
    with db.engine.connect() as conn:
        return tuple(conn.execute(select(HEAD.c.seq, HEAD.c.hash)).one())


def _verify(db: Database, batch: int = 10_000):
    with db.session() as session:
        return verify(session, batch=batch)


def _problems(result) -> list[tuple[str, int | None]]:
    return [(p.kind, p.seq) for p in result.problems]


# --- append and hashing ---------------------------------------------------------------------------------------------

def test_append_then_verify(empty_db):
    assert _verify(empty_db).ok  # an empty chain is a whole chain
    with empty_db.session() as session:
        out = append(session, [_entry(1), _entry(2), _entry(3, kind="decision", action="request.approve", status=0)])
        assert [e.seq for e in out] == [1, 2, 3]
        assert all(e in session for e in out)  # attached, and not inserted twice at commit
    with empty_db.session() as session:
        append(session, [_entry(4)])
    rows = _rows(empty_db)
    assert [r["seq"] for r in rows] == [1, 2, 3, 4]
    assert rows[0]["prev_hash"] == GENESIS_HASH
    for before, row in zip(rows, rows[1:]):
        assert row["prev_hash"] == before["hash"]
    for row in rows:  # as read back from the database, every hash recomputes
        assert entry_hash(row["prev_hash"], row) == row["hash"]
    assert _head(empty_db) == (4, rows[-1]["hash"])
    result = _verify(empty_db)
    assert (result.ok, result.checked, result.head_seq, result.problems) == (True, 4, 4, [])


def test_a_batch_larger_than_one_insert_statement(empty_db, monkeypatch):
    """A batch goes in as multi-row INSERTs of a bounded size (SQLite's bound-parameter limit): split over several,
    the entries keep their order, values and one unbroken chain."""
    from sharing import audit as audit_module

    monkeypatch.setattr(audit_module, "_rows_per_insert", lambda conn: 3)
    with empty_db.session() as session:
        append(session, [_entry(i) for i in range(1, 11)])
    rows = _rows(empty_db)
    assert [r["seq"] for r in rows] == list(range(1, 11))
    assert [r["detail"]["i"] for r in rows] == list(range(1, 11))
    assert [r["grant_id"] for r in rows] == [10 + i % 3 for i in range(1, 11)]
    assert _verify(empty_db).ok and _head(empty_db)[0] == 10


def test_values_round_trip_unchanged_on_both_backends(empty_db):
    at = dt.datetime(2026, 11, 23, 23, 59, 58, 123456, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    detail = {"float": 0.1, "big": 2**53 + 1, "neg": -0.0, "exp": 1e300, "text": "数据 \"引号\" \\ \n\t😀",
              "nested": [[], {}, [1, 2.5, None, False]], 7: "int key", "tuple": (1, 2)}
    with empty_db.session() as session:
        written = append(session, [_entry(1, at=at, detail=detail), _entry(2, at=dt.datetime(2026, 1, 1, 0, 0, 0, 1))])
    row = _rows(empty_db)[0]
    assert row["at"] == at and row["at"].tzinfo is not None and row["at"].utcoffset() == dt.timedelta(0)
    assert row["at"].microsecond == 123456
    assert row["detail"]["7"] == "int key" and row["detail"]["tuple"] == [1, 2]  # normalised as JSON would
    assert row["detail"] == written[0].detail
    assert _rows(empty_db)[1]["at"] == dt.datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=dt.timezone.utc)  # naive = UTC
    assert _verify(empty_db).ok


def test_timestamps_are_stored_as_sqlalchemy_stores_them(empty_db):
    """Entries go in through the DB-API directly: `at` must still compare with SQLAlchemy-bound values."""
    whole = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.timezone.utc)  # no microseconds
    with empty_db.session() as session:
        append(session, [_entry(1, at=whole), _entry(2, at=whole + dt.timedelta(microseconds=5))])
    with empty_db.engine.connect() as conn:
        assert conn.execute(select(LOG.c.seq).where(LOG.c.at == whole)).scalars().all() == [1]
        assert conn.execute(select(LOG.c.seq).where(LOG.c.at > whole)).scalars().all() == [2]
        if empty_db.dialect == "sqlite":
            assert conn.exec_driver_sql("SELECT at FROM audit_log ORDER BY seq").scalars().all() == [
                "2026-03-01 12:00:00.000000", "2026-03-01 12:00:00.000005"]


def test_entry_hash_is_canonical():
    fields = {name: None for name in HASHED_FIELDS} | {"seq": 1, "kind": "k", "action": "a", "status": 0,
                                                       "at": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
                                                       "detail": {"b": 1, "a": {"d": 2, "c": 3}}}
    h = entry_hash(GENESIS_HASH, fields)
    assert len(h) == 64
    same = dict(reversed(list(fields.items())))
    same["detail"] = {"a": {"c": 3, "d": 2}, "b": 1}
    same["at"] = dt.datetime(2026, 1, 1, 8, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    assert entry_hash(GENESIS_HASH, same | {"prev_hash": "x", "hash": "y"}) == h  # only the hashed fields count
    assert entry_hash("1" * 64, fields) != h
    assert entry_hash(GENESIS_HASH, fields | {"status": 1}) != h


@pytest.mark.parametrize("bad", [
    {"unknown": 1}, {"seq": 5}, {"hash": "x"}, {"status": None}, {"status": "200"}, {"status": True},
    {"kind": "k" * 17}, {"action": ""}, {"grant_id": 2**31}, {"detail": {"x": float("nan")}},
    {"detail": {"x": {1, 2}}}, {"detail": {(1, 2): "tuple key"}}, {"detail": ["not a dict"]}, {"at": "2026-01-01"},
])
def test_invalid_entries_are_refused_before_anything_is_written(empty_db, bad):
    with pytest.raises(ValueError):
        with empty_db.session() as session:
            append(session, [_entry(1), _entry(2) | bad])
    assert _head(empty_db) == (0, GENESIS_HASH)
    assert _rows(empty_db) == []


def test_entries_roll_back_with_the_callers_transaction(empty_db):
    with pytest.raises(RuntimeError):
        with empty_db.session() as session:
            append(session, [_entry(1)])
            raise RuntimeError("the decision failed")
    assert _head(empty_db) == (0, GENESIS_HASH)
    _chain(empty_db, 2)
    assert [r["seq"] for r in _rows(empty_db)] == [1, 2]
    assert _verify(empty_db).ok


# --- the group-commit writer ----------------------------------------------------------------------------------------

def test_two_workers_with_concurrent_threads_form_one_chain(empty_db):
    """Two Database objects on one URL stand for two worker processes; each has its writer and 4 busy threads."""
    workers = [Database(empty_db.url), Database(empty_db.url)]
    writers = [AuditWriter(w, max_batch=64) for w in workers]
    per_thread, threads_per_worker = 200, 4
    results: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(len(writers) * threads_per_worker)

    def client(writer: AuditWriter, t: int) -> None:
        start.wait()
        futures = []
        for i in range(per_thread):
            futures.append(writer.submit(_entry(i, detail={"thread": t, "i": i})))
            if i % 50 == 49:  # now and then wait, as a request handler does
                futures[-1].result(timeout=60)
        seqs = [f.result(timeout=60) for f in futures]
        with lock:
            results.extend(seqs)

    threads = [threading.Thread(target=client, args=(w, k * 10 + t))
               for k, w in enumerate(writers) for t in range(threads_per_worker)]
    try:
        for th in threads:
            th.start()
        for th in threads:
            th.join(120)
    finally:
        for w in writers:
            w.close()
        for d in workers:
            d.dispose()
    total = len(writers) * threads_per_worker * per_thread
    assert sorted(results) == list(range(1, total + 1))
    rows = _rows(empty_db)
    assert [r["seq"] for r in rows] == list(range(1, total + 1))
    assert sorted((r["detail"]["thread"], r["detail"]["i"]) for r in rows) == sorted(
        (k * 10 + t, i) for k in range(2) for t in range(threads_per_worker) for i in range(per_thread))
    result = _verify(empty_db, batch=500)
    assert result.ok, result.problems
    assert (result.checked, result.head_seq) == (total, total)


def _forked_worker(writer: AuditWriter, n: int, out) -> None:
    seqs = [f.result(timeout=60) for f in [writer.submit(_entry(i, detail={"pid": os.getpid(), "i": i}))
                                            for i in range(n)]]
    writer.close()
    out.send(seqs)


def test_worker_processes_forked_from_an_app_with_a_running_writer(empty_db):
    """As uvicorn's workers: the writer was made (and here already used) before the fork; each child starts its own
    thread and connection, and all entries still form one chain."""
    writer = AuditWriter(empty_db)
    try:
        assert writer.submit(_entry(0)).result(timeout=30) == 1
        ctx = multiprocessing.get_context("fork")
        pipes, children = [], []
        for _ in range(2):
            receive, send = ctx.Pipe(duplex=False)
            child = ctx.Process(target=_forked_worker, args=(writer, 300, send))
            child.start()
            pipes.append(receive)
            children.append(child)
        got = [p.recv() for p in pipes if p.poll(120)]
        for child in children:
            child.join(30)
        assert [c.exitcode for c in children] == [0, 0]
        assert writer.submit(_entry(1)).result(timeout=30) == 602  # the parent's writer carries on after the fork
    finally:
        writer.close()
    assert len(got) == 2 and sorted(got[0] + got[1]) == list(range(2, 602))
    result = _verify(empty_db)
    assert result.ok and result.checked == 602


def test_a_future_resolves_only_once_its_entry_is_committed(empty_db):
    observer = Database(empty_db.url)  # another connection pool: sees only what was committed
    seen: list[tuple[int, bool]] = []

    def check(future: Future) -> None:  # runs in the writer thread the moment the future resolves
        seq = future.result()
        with observer.engine.connect() as conn:
            found = conn.execute(select(func.count()).select_from(LOG).where(LOG.c.seq == seq)).scalar()
        seen.append((seq, found == 1))

    writer = AuditWriter(empty_db, max_batch=10)
    try:
        futures = [writer.submit(_entry(i)) for i in range(40)]
        for f in futures:
            f.add_done_callback(check)
        assert sorted(f.result(timeout=30) for f in futures) == list(range(1, 41))
    finally:
        writer.close()
        observer.dispose()
    assert len(seen) == 40 and all(visible for _seq, visible in seen)


def test_the_writer_commits_synchronously(empty_db):
    conn = audit._Conn(empty_db.url)._open()
    try:
        if empty_db.dialect == "sqlite":
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        else:
            assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
    finally:
        conn.close()


def test_async_write(empty_db):
    writer = AuditWriter(empty_db)

    async def main() -> list[int]:
        return await asyncio.gather(*(writer.write(_entry(i)) for i in range(25)))

    try:
        assert sorted(asyncio.run(main())) == list(range(1, 26))
    finally:
        writer.close()
    assert _verify(empty_db).ok


def test_async_writes_of_one_loop_pass_share_one_commit(empty_db, monkeypatch):
    """Requests that each did blocking work (a Redis round trip) before writing their entry still share a commit:
    the entries of one pass of the event loop go to the writer as one job, committed in one transaction."""
    commits: list[int] = []
    real_append = audit._Conn.append

    def counting_append(self, rows):  # noqa: ANN001
        commits.append(len(rows))
        return real_append(self, rows)

    monkeypatch.setattr(audit._Conn, "append", counting_append)
    writer = AuditWriter(empty_db)

    async def request(i: int) -> int:
        time.sleep(0.002)  # blocking, as a synchronous Redis call is; the writer thread is free meanwhile
        return await writer.write(_entry(i))

    async def main() -> list[int]:
        return await asyncio.gather(*(request(i) for i in range(30)))

    try:
        assert sorted(asyncio.run(main())) == list(range(1, 31))
    finally:
        writer.close()
    assert commits == [30]
    assert _verify(empty_db).ok


def test_sqlite_writers_queue_on_the_file_lock(empty_db):
    """On a SQLite file every writer first takes `<database>.audit-lock` (so two workers' writers take turns instead
    of napping in SQLite's busy handler): while another process holds it, nothing is committed; then it is."""
    import fcntl

    from sqlalchemy import make_url

    if empty_db.dialect != "sqlite":
        pytest.skip("the file lock is for SQLite files")
    fd = os.open(make_url(empty_db.url).database + ".audit-lock", os.O_RDWR | os.O_CREAT, 0o600)
    writer = AuditWriter(empty_db)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            waiting = writer.submit(_entry(1))
            time.sleep(0.3)
            assert not waiting.done() and _rows(empty_db) == []
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
        assert waiting.result(timeout=30) == 1
    finally:
        writer.close()
        os.close(fd)
    assert _verify(empty_db).ok


def test_an_async_bad_entry_fails_alone_in_its_batch(empty_db):
    writer = AuditWriter(empty_db)

    async def main() -> list:
        return await asyncio.gather(writer.write(_entry(1)), writer.write({"kind": "gateway", "oops": 1}),
                                    writer.write(_entry(2)), return_exceptions=True)

    try:
        first, bad, second = asyncio.run(main())
    finally:
        writer.close()
    assert (first, second) == (1, 2) and isinstance(bad, ValueError)

    async def after_close() -> int:
        return await writer.write(_entry(3))

    with pytest.raises(RuntimeError):
        asyncio.run(after_close())
    assert _verify(empty_db).ok


def test_a_bad_entry_fails_alone_and_the_writer_goes_on(empty_db):
    writer = AuditWriter(empty_db)
    try:
        good, bad, after = writer.submit(_entry(1)), writer.submit({"kind": "gateway", "oops": 1}), None
        assert isinstance(bad.exception(timeout=30), ValueError)
        assert good.result(timeout=30) == 1
        after = writer.submit(_entry(2))
        assert after.result(timeout=30) == 2
    finally:
        writer.close()
    assert _verify(empty_db).ok


def test_a_failed_batch_fails_all_its_futures_and_the_writer_recovers(empty_db):
    writer = AuditWriter(empty_db)
    try:
        assert writer.submit(_entry(1)).result(timeout=30) == 1
        with empty_db.engine.begin() as conn:  # make the next transaction fail in the database
            conn.execute(delete(HEAD))
        failed = [writer.submit(_entry(i)) for i in range(5)]
        for f in failed:
            assert isinstance(f.exception(timeout=30), RuntimeError)
        with empty_db.engine.begin() as conn:
            head = _rows(empty_db)[-1]
            conn.execute(insert(HEAD).values(id=1, seq=head["seq"], hash=head["hash"]))
        assert [writer.submit(_entry(i)).result(timeout=30) for i in range(3)] == [2, 3, 4]  # no seq was used up
    finally:
        writer.close()
    assert _verify(empty_db).ok


def test_close_flushes_then_refuses(empty_db):
    writer = AuditWriter(empty_db, max_batch=7)
    futures = [writer.submit(_entry(i)) for i in range(50)]
    writer.close()
    assert all(f.done() for f in futures)
    assert sorted(f.result() for f in futures) == list(range(1, 51))
    with pytest.raises(RuntimeError):
        writer.submit(_entry(51))
    writer.close()  # twice is fine
    unused = AuditWriter(empty_db)
    unused.close()  # never started
    with pytest.raises(RuntimeError):
        unused.submit(_entry(1))


def test_the_writer_survives_a_dropped_connection(empty_db):
    if empty_db.dialect != "postgresql":
        pytest.skip("a server-side disconnect needs PostgreSQL")
    writer = AuditWriter(empty_db)
    try:
        assert writer.submit(_entry(1)).result(timeout=30) == 1
        with empty_db.engine.connect() as conn:  # the server restarts, say: every other session is gone
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
        assert writer.submit(_entry(2)).result(timeout=30) == 2  # retried on a fresh connection: nothing lost
    finally:
        writer.close()
    assert _verify(empty_db).ok


def test_verify_while_entries_are_appended(empty_db):
    stop = threading.Event()
    other = Database(empty_db.url)

    def appender() -> None:
        while not stop.is_set():
            with other.session() as session:
                append(session, [_entry(i) for i in range(3)])

    thread = threading.Thread(target=appender)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while _head(empty_db)[0] < 30 and time.monotonic() < deadline:
            time.sleep(0.01)
        results = [_verify(empty_db, batch=7) for _ in range(5)]
    finally:
        stop.set()
        thread.join(30)
        other.dispose()
    assert all(r.ok for r in results), [r.problems for r in results]
    assert 30 <= results[0].checked < results[-1].checked  # the log grew while verify read it


# --- tampering ------------------------------------------------------------------------------------------------------

def _set(db: Database, seq: int, **values) -> None:
    with db.engine.begin() as conn:
        conn.execute(update(LOG).where(LOG.c.seq == seq).values(**values))


def _renumber(db: Database, from_seq: int, by: int) -> None:
    """Shift the seq of every entry from `from_seq` on (two steps: the primary key is checked row by row)."""
    with db.engine.begin() as conn:
        conn.execute(update(LOG).where(LOG.c.seq >= from_seq).values(seq=-LOG.c.seq))
        conn.execute(update(LOG).where(LOG.c.seq < 0).values(seq=-LOG.c.seq + by))


def _forge(db: Database, seq: int, prev_hash: str) -> None:
    """A row as a forger would write it: plausible content and its own hash computed the published way."""
    row = _entry(99, detail={"forged": True}) | {"seq": seq, "at": dt.datetime.now(dt.timezone.utc)}
    with db.engine.begin() as conn:
        conn.execute(insert(LOG).values(**row, prev_hash=prev_hash, hash=entry_hash(prev_hash, row)))


def _swap(db: Database, a: int, b: int) -> None:
    rows = {r["seq"]: r for r in _rows(db)}
    for x, y in ((a, b), (b, a)):
        _set(db, x, **{k: v for k, v in rows[y].items() if k != "seq"})


def tamper_edit_detail(db):
    rows = _rows(db)
    _set(db, 7, detail=rows[6]["detail"] | {"rows": 100000})
    return [("edited", 7)]


def tamper_edit_status(db):
    _set(db, 9, status=403)
    return [("edited", 9)]


def tamper_edit_timestamp(db):
    _set(db, 3, at=_rows(db)[2]["at"] + dt.timedelta(microseconds=1))
    return [("edited", 3)]


def tamper_edit_and_rehash(db):
    rows = _rows(db)
    row = rows[7] | {"status": 500}
    _set(db, 8, status=500, hash=entry_hash(row["prev_hash"], row))  # own hash fine, the next link breaks
    return [("edited", 8)]


def tamper_delete_middle(db):
    with db.engine.begin() as conn:
        conn.execute(delete(LOG).where(LOG.c.seq == 10))
    return [("missing", 10)]


def tamper_delete_range(db):
    with db.engine.begin() as conn:
        conn.execute(delete(LOG).where(LOG.c.seq.between(4, 6)))
    return [("missing", 4)]


def tamper_delete_first(db):
    with db.engine.begin() as conn:
        conn.execute(delete(LOG).where(LOG.c.seq == 1))
    return [("missing", 1)]


def tamper_delete_last(db):
    with db.engine.begin() as conn:
        conn.execute(delete(LOG).where(LOG.c.seq == 20))
    return [("truncated", 20)]


def tamper_delete_last_two(db):
    with db.engine.begin() as conn:
        conn.execute(delete(LOG).where(LOG.c.seq >= 19))
    return [("truncated", 19)]


def tamper_delete_all(db):
    with db.engine.begin() as conn:
        conn.execute(delete(LOG))
    return [("truncated", 1)]


def tamper_delete_and_renumber(db):
    with db.engine.begin() as conn:
        conn.execute(delete(LOG).where(LOG.c.seq == 10))
    _renumber(db, 11, -1)
    return [("missing", 10), ("head_mismatch", 19)]


def tamper_swap_far(db):
    _swap(db, 5, 12)
    return [("reordered", 5), ("reordered", 12)]


def tamper_swap_adjacent(db):
    _swap(db, 5, 6)
    return [("reordered", 5), ("reordered", 6)]


def tamper_insert_forged_in_the_middle(db):
    _renumber(db, 11, +1)
    _forge(db, 11, prev_hash=_rows(db)[9]["hash"])
    return [("inserted", 11), ("head_mismatch", 20)]


def tamper_insert_forged_at_the_end(db):
    _forge(db, 21, prev_hash=_rows(db)[-1]["hash"])
    return [("inserted", 21)]


def tamper_replace_with_forged(db):
    with db.engine.begin() as conn:
        conn.execute(delete(LOG).where(LOG.c.seq == 14))
    _forge(db, 14, prev_hash=_rows(db)[12]["hash"])
    return [("edited", 14)]


def tamper_head(db):
    with db.engine.begin() as conn:
        conn.execute(update(HEAD).values(hash="f" * 64))
    return [("head_mismatch", 20)]


TAMPERING = [tamper_edit_detail, tamper_edit_status, tamper_edit_timestamp, tamper_edit_and_rehash,
             tamper_delete_middle, tamper_delete_range, tamper_delete_first, tamper_delete_last,
             tamper_delete_last_two, tamper_delete_all, tamper_delete_and_renumber, tamper_swap_far,
             tamper_swap_adjacent, tamper_insert_forged_in_the_middle, tamper_insert_forged_at_the_end,
             tamper_replace_with_forged, tamper_head]


@pytest.mark.parametrize("tamper", TAMPERING, ids=lambda f: f.__name__.removeprefix("tamper_"))
def test_verify_names_what_was_tampered_with_and_where(empty_db, tamper):
    _chain(empty_db, 20)
    assert _verify(empty_db).ok
    expected = tamper(empty_db)
    for batch in (10_000, 4):  # one read, and keyset pages that split the damage
        result = _verify(empty_db, batch=batch)
        assert not result.ok
        assert _problems(result) == expected, [p.message for p in result.problems]
        for problem in result.problems:
            assert f"第 {problem.seq} 条" in problem.message


def test_problem_messages_say_where(empty_db):
    _chain(empty_db, 20)
    tamper_edit_detail(empty_db)
    tamper_delete_middle(empty_db)
    tamper_delete_last_two(empty_db)
    messages = [p.message for p in _verify(empty_db).problems]
    assert messages == ["第 7 条记录内容被修改（哈希不符）", "第 10 条记录缺失（被删除）",
                        "第 19 条至第 20 条记录缺失（日志尾部被删除；链头记录为第 20 条，日志最后一条为第 18 条）"]


def test_the_problem_list_is_capped(empty_db):
    _chain(empty_db, 150)
    with empty_db.engine.begin() as conn:
        conn.execute(update(LOG).values(status=LOG.c.status + 1))
    result = _verify(empty_db, batch=40)
    assert not result.ok and result.checked == 150
    assert len(result.problems) == audit.MAX_PROBLEMS
    assert [p.seq for p in result.problems] == list(range(1, 101))


# --- the command ----------------------------------------------------------------------------------------------------

def test_audit_verify_command(empty_db):
    cli = typer.Typer()
    cli.add_typer(audit_app, name="audit")
    runner = CliRunner()
    args = ["audit", "verify", "--database-url", empty_db.url]
    _chain(empty_db, 20)
    r = runner.invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert "审计链完整：共 20 条" in r.output
    tamper_edit_status(empty_db)
    r = runner.invoke(cli, args)
    assert r.exit_code == 1, r.output
    assert "第 9 条记录内容被修改" in r.output
    r = runner.invoke(cli, ["audit", "verify", "--database-url", "postgresql://postgres@127.0.0.1:1/none"])
    assert r.exit_code == 2
    assert "无法连接数据库" in r.output
